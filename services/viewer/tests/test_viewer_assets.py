"""The pages' scripts, the npm packages they import (from a node_modules folder), the import map
and the Content-Security-Policy that lets exactly those run."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from pathlib import Path

from photosplat_libs import keys
from photosplat_libs.db.job_statistics import JobStatistics
from photosplat_libs.db.models import JobStatus
from photosplat_viewer import assets


def fake_node_modules(root: Path) -> Path:
    spark = root / "@sparkjsdev" / "spark" / "dist"
    spark.mkdir(parents=True)
    (spark / "spark.module.js").write_text("export const SplatMesh = 1;\n")
    (spark / "package.json").write_text("{}")
    (root / "three" / "build").mkdir(parents=True)
    (root / "three" / "build" / "three.module.js").write_text("export const REVISION = '187';\n")
    (root / "left-pad").mkdir()
    (root / "left-pad" / "index.js").write_text("module.exports = 1;\n")
    return root


async def test_app_files_are_served_with_their_types(viewer) -> None:
    js = await viewer.client.get("/static/app/viewer.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "SplatMesh" in js.text
    css = await viewer.client.get("/static/app/site.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for bad in ("/static/app/../app.py", "/static/app/%2e%2e/app.py", "/static/app/missing.js", "/static/app/"):
        assert (await viewer.client.get(bad)).status_code == 404, bad


def test_only_allowlisted_vendor_folders_are_served(tmp_path: Path) -> None:
    modules = fake_node_modules(tmp_path / "node_modules")
    ok = assets.vendor_file(modules, "@sparkjsdev/spark/dist/spark.module.js")
    assert ok.status_code == 200 and ok.media_type.startswith("text/javascript")
    assert assets.vendor_file(modules, "three/build/three.module.js").status_code == 200
    assert assets.vendor_file(modules, "left-pad/index.js").status_code == 404
    assert assets.vendor_file(modules, "@sparkjsdev/spark/dist/package.json").status_code == 404
    assert assets.vendor_file(modules, "three/build/../../left-pad/index.js").status_code == 404
    assert assets.vendor_file(None, "three/build/three.module.js").status_code == 404
    assert assets.vendor_installed(modules) and not assets.vendor_installed(tmp_path)


def test_the_csp_hash_is_that_of_the_import_map() -> None:
    digest = base64.b64encode(hashlib.sha256(assets.IMPORT_MAP_JSON.encode()).digest()).decode()
    csp = assets.content_security_policy(scripts=True, connect=("https://minio.example",))
    assert f"'sha256-{digest}'" in csp
    assert "connect-src 'self' https://minio.example blob: data:" in csp
    assert "worker-src blob:" in csp
    assert "script-src 'none'" in assets.content_security_policy(scripts=False)
    imports = assets.IMPORT_MAP["imports"]
    assert set(imports) == {"three", "three/addons/", "@sparkjsdev/spark"}
    assert all(v.startswith("/static/vendor/") for v in imports.values())


async def test_the_import_map_in_the_page_is_the_hashed_text(viewer) -> None:
    pub_key = await viewer.add_job(JobStatus.DONE, files={"spz": ("scene.spz", b"z" * 10)})
    page = (await viewer.client.get(f"/v/{pub_key}")).text
    match = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    assert match and match.group(1) == assets.IMPORT_MAP_JSON


async def test_upload_and_job_pages(viewer) -> None:
    upload = await viewer.client.get("/")
    assert upload.status_code == 200 and "/static/app/upload.js" in upload.text
    assert 'id="file-input"' in upload.text and "webkitdirectory" in upload.text
    job = await viewer.client.get("/jobs/5d0f8a5e-7d3c-4f57-9a43-9bb3c1f6a3c1")
    assert job.status_code == 200 and 'data-job-id="5d0f8a5e-7d3c-4f57-9a43-9bb3c1f6a3c1"' in job.text
    assert "script-src 'self'" in job.headers["content-security-policy"]
    assert (await viewer.client.get("/jobs/not-a-uuid")).status_code == 404


async def test_files_manifest_and_thumbnail_as_social_image(viewer) -> None:
    pub_key = await viewer.add_job(
        JobStatus.DONE,
        files={"splat": ("scene.splat", b"s" * 64), "thumbnail": ("thumbnail.jpg", b"\xff\xd8")},
        file_sizes={"splat": 64},
    )
    manifest = (await viewer.client.get(f"/v/{pub_key}/files.json")).json()
    assert {f["filename"] for f in manifest["files"]} == {"scene.splat", "thumbnail.jpg"}
    page = (await viewer.client.get(f"/v/{pub_key}")).text
    assert f'<meta property="og:image" content="https://splat.example/recon/pub/{pub_key}/thumbnail.jpg">' in page
    running = await viewer.add_job(JobStatus.RUNNING)
    assert (await viewer.client.get(f"/v/{running}/files.json")).status_code == 404


async def test_the_thumbnail_the_trainer_reports_beside_the_exports_is_served(viewer) -> None:
    key = keys.output(uuid.uuid4(), "thumbnail.png")
    await viewer.store.put(key, b"\x89PNG")
    pub_key = await viewer.add_job(
        JobStatus.DONE, files={"splat": ("scene.splat", b"s" * 64)}, statistics=JobStatistics(thumbnail_key=key)
    )
    manifest = (await viewer.client.get(f"/v/{pub_key}/files.json")).json()
    assert {f["filename"] for f in manifest["files"]} == {"scene.splat", "thumbnail.png"}
    assert (await viewer.client.get(f"/recon/pub/{pub_key}/thumbnail.png")).content == b"\x89PNG"
