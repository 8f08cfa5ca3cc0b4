"""The HTML pages of /v/{pub_key}. Everything shown comes from the job row and is escaped by the
template engine (autoescape), error messages included: they may quote user input."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from photosplat_libs.db.models import Job, JobStatus
from photosplat_viewer import assets
from photosplat_viewer.scene_files import SceneFile, scene_files, thumbnail

REFRESH_SECONDS = 5

# The page URL is the secret that grants access: never leak it in a Referer, never let it be indexed.
PRIVATE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS = {
    **PRIVATE_HEADERS,
    # Status changes while a job runs, and the page is nobody else's to keep.
    "Cache-Control": "no-store",
}
# Viewer pages open a download or a splat file; the 3D viewer sizes its scene by these formats.
SPLAT_FORMATS = ("sog", "spz", "splat", "ply")

_STAGE_LABELS = {
    "upload": "Waiting for the photos",
    "validate": "Checking the photos",
    "sfm": "Finding where each photo was taken",
    "train": "Training the 3D scene",
    "export": "Exporting the scene",
}

_templates = Environment(loader=PackageLoader("photosplat_viewer", "templates"), autoescape=True)


def _render(
    template: str, status_code: int = 200, *, scripts: bool = False, connect: tuple[str, ...] = (), **context: object
) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    csp = assets.content_security_policy(scripts=scripts, connect=connect)
    return HTMLResponse(html, status_code=status_code, headers={**_PAGE_HEADERS, "Content-Security-Policy": csp})


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value = n / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _facts(job: Job) -> list[tuple[str, str]]:
    facts = []
    if job.registered_image_count is not None:
        facts.append(("Photos used", f"{job.registered_image_count} of {job.image_count}"))
    elif job.image_count:
        facts.append(("Photos", str(job.image_count)))
    if job.gaussian_count is not None:
        facts.append(("Gaussians", f"{job.gaussian_count:,}"))
    if job.held_out.psnr is not None:
        facts.append(("Held-out PSNR", f"{job.held_out.psnr:.2f} dB"))
    if job.held_out.ssim is not None:
        facts.append(("Held-out SSIM", f"{job.held_out.ssim:.3f}"))
    if job.processing_time_seconds is not None:
        facts.append(("Processing time", _duration(job.processing_time_seconds)))
    return facts


def missing_page() -> HTMLResponse:
    return _render("missing.html", status_code=404)


def file_href(pub_key: str, f: SceneFile) -> str:
    return f"/recon/pub/{pub_key}/{quote(f.filename)}"


def file_list(job: Job, pub_key: str) -> list[dict[str, object]]:
    return [
        {
            "format": f.format,
            "filename": f.filename,
            "bytes": f.size,
            "size": _size(f.size) if f.size is not None else "",
            "href": file_href(pub_key, f),
        }
        for f in scene_files(job)
    ]


def upload_page(connect: tuple[str, ...]) -> HTMLResponse:
    return _render("upload.html", scripts=True, connect=connect)


def owner_job_page(job_id: str) -> HTMLResponse:
    return _render("job.html", scripts=True, job_id=job_id)


def job_page(job: Job, pub_key: str, public_base_url: str, *, viewer_installed: bool) -> HTMLResponse:
    base = public_base_url.rstrip("/")
    if job.status == JobStatus.DONE:
        files = file_list(job, pub_key)
        thumb = thumbnail(job)
        scene = {
            "files": [f for f in files if f["format"] in SPLAT_FORMATS],
            "gaussians": job.gaussian_count,
            "shareUrl": f"{base}/v/{pub_key}",
            "home": home.model_dump(mode="json") if (home := job.statistics.home_view) else None,
        }
        return _render(
            "scene.html",
            scripts=viewer_installed,
            files=files,
            facts=_facts(job),
            share_url=scene["shareUrl"],
            scene=scene,
            viewer_installed=viewer_installed,
            import_map=assets.IMPORT_MAP_JSON,
            og_image=f"{base}{file_href(pub_key, thumb)}" if thumb else None,
        )
    if job.status == JobStatus.FAILED:
        return _render("failed.html", job=job)
    if job.status == JobStatus.CANCELLED:
        return _render("cancelled.html", job=job)
    return _render(
        "progress.html",
        job=job,
        refresh_seconds=REFRESH_SECONDS,
        stage_label=_STAGE_LABELS.get(job.stage, "Working"),
        percent=round(max(0.0, min(1.0, job.progress or 0.0)) * 100),
        eta=_duration(left) if (left := job.eta_left(datetime.now(timezone.utc))) else "",
    )
