from photosplat_libs.db.job_statistics import HeldOutScores, JobStatistics
from photosplat_libs.db.models import JobStatus
from photosplat_libs.events import HomeView
from photosplat_libs.security import new_token


def assert_private(response) -> None:
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in response.headers["x-robots-tag"]


async def test_unknown_key_is_a_404_page(viewer) -> None:
    response = await viewer.client.get(f"/v/{new_token()}")
    assert response.status_code == 404
    assert "No scene here" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert_private(response)


async def test_malformed_key_is_a_404_page(viewer) -> None:
    response = await viewer.client.get("/v/not%20a%20key%3Cscript%3E")
    assert response.status_code == 404
    assert "No scene here" in response.text
    assert "<script>" not in response.text


async def test_running_job_shows_progress_and_refreshes(viewer) -> None:
    pub_key = await viewer.add_job(JobStatus.RUNNING, stage="train", progress=0.42, eta_seconds=600)
    response = await viewer.client.get(f"/v/{pub_key}")
    assert response.status_code == 200
    assert "not ready yet" in response.text
    assert '<meta http-equiv="refresh" content="5">' in response.text
    assert "Training the 3D scene" in response.text
    assert "42 %" in response.text
    assert "10 min" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert_private(response)


async def test_pending_job_is_not_ready_either(viewer) -> None:
    pub_key = await viewer.add_job(JobStatus.PENDING)
    response = await viewer.client.get(f"/v/{pub_key}")
    assert "not ready yet" in response.text
    assert "0 %" in response.text


async def test_failed_job_shows_the_escaped_error_and_stage(viewer) -> None:
    pub_key = await viewer.add_job(
        JobStatus.FAILED, error_stage="sfm", error_message="only 2 of 40 photos registered <img src=x onerror=alert(1)>"
    )
    response = await viewer.client.get(f"/v/{pub_key}")
    assert response.status_code == 200
    assert "could not be built" in response.text
    assert "<strong>sfm</strong>" in response.text
    assert "only 2 of 40 photos registered &lt;img src=x onerror=alert(1)&gt;" in response.text
    assert "<img" not in response.text
    assert "refresh" not in response.text
    assert_private(response)


async def test_cancelled_job_says_so(viewer) -> None:
    pub_key = await viewer.add_job(JobStatus.CANCELLED)
    response = await viewer.client.get(f"/v/{pub_key}")
    assert response.status_code == 200
    assert "was cancelled" in response.text


async def test_done_job_lists_its_files_and_loads_the_3d_viewer(viewer) -> None:
    pub_key = await viewer.add_job(
        JobStatus.DONE,
        files={"splat": ("scene.splat", b"s" * 2048), "ply": ("scene.ply", b"p" * 10)},
        file_sizes={"splat": 2048, "ply": 10},
        image_count=40,
        registered_image_count=38,
        gaussian_count=123456,
        held_out=HeldOutScores(psnr=27.123, ssim=0.9012),
        statistics=JobStatistics(home_view=HomeView(position=(1, 2, 3), target=(0, 0, 0), up=(0, -1, 0), fov_y_deg=40)),
    )
    response = await viewer.client.get(f"/v/{pub_key}")
    assert response.status_code == 200
    text = response.text
    assert f'href="/recon/pub/{pub_key}/scene.splat"' in text
    assert f'href="/recon/pub/{pub_key}/scene.ply"' in text
    assert "2.0 KB" in text
    # the viewer script, its import map (allowed by hash) and the scene data for it
    assert '<script type="importmap">' in text and "/static/app/viewer.js" in text
    assert f'"href": "/recon/pub/{pub_key}/scene.splat"' in text
    # the viewer opens at the photographer's camera the trainer chose
    assert '"home": {"fov_y_deg": 40.0, "position": [1.0, 2.0, 3.0], "target": [0.0, 0.0, 0.0]' in text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in csp and "'wasm-unsafe-eval'" in csp and "unsafe-inline" not in csp
    assert "38 of 40" in text and "123,456" in text and "27.12 dB" in text and "0.901" in text
    assert f"https://splat.example/v/{pub_key}" in text
    assert "refresh" not in text
    assert_private(response)


async def test_healthz(viewer) -> None:
    response = await viewer.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
