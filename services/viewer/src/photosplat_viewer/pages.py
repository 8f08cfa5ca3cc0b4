"""The HTML pages of /v/{pub_key}. Everything shown comes from the job row and is escaped by the
template engine (autoescape), error messages included: they may quote user input."""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader

from photosplat_libs.db.models import Job, JobStatus
from photosplat_viewer.scene_files import scene_files

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
    # No script runs on these pages yet; the 3D viewer will widen this for its own script.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}

_STAGE_LABELS = {
    "upload": "Waiting for the photos",
    "validate": "Checking the photos",
    "sfm": "Finding where each photo was taken",
    "train": "Training the 3D scene",
    "export": "Exporting the scene",
}

_templates = Environment(loader=PackageLoader("photosplat_viewer", "templates"), autoescape=True)


def _render(template: str, status_code: int = 200, **context: object) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=_PAGE_HEADERS)


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
    for name in ("psnr", "ssim"):
        value = (job.metrics or {}).get(name)
        if isinstance(value, (int, float)):
            facts.append((f"Held-out {name.upper()}", f"{value:.3f}" if name == "ssim" else f"{value:.2f} dB"))
    if job.processing_time_seconds is not None:
        facts.append(("Processing time", _duration(job.processing_time_seconds)))
    return facts


def missing_page() -> HTMLResponse:
    return _render("missing.html", status_code=404)


def job_page(job: Job, pub_key: str, public_base_url: str) -> HTMLResponse:
    if job.status == JobStatus.DONE:
        files = [
            {
                "filename": f.filename,
                "format": f.format,
                "size": _size(f.size) if f.size is not None else "",
                "href": f"/recon/pub/{pub_key}/{quote(f.filename)}",
            }
            for f in scene_files(job)
        ]
        share_url = f"{public_base_url.rstrip('/')}/v/{pub_key}"
        return _render("scene.html", files=files, facts=_facts(job), share_url=share_url)
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
        eta=_duration(job.eta_seconds) if job.eta_seconds else "",
    )
