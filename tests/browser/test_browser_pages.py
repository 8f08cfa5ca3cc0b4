"""The upload page, the owner's job page and the admin dashboard in headless Chromium, against a
real `photosplat up` (every page also checked for console errors and foreign requests: conftest)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from photosplat_libs.db.job_statistics import CurvePoint, HeldOutScores, JobStatistics, SfmSummary
from photosplat_libs.events import SfmTimings, TrainingTimings

expect = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra").expect

pytestmark = pytest.mark.browser


def photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def jpeg(name: str, data: bytes) -> dict[str, object]:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


def test_upload_three_photos_and_follow_the_job(server, watched) -> None:
    page = watched.page
    page.goto(f"{server.base}/")
    files = [jpeg(f"p{i}.jpg", photo(i)) for i in range(3)]
    # A file of another type is named and left out; two photos are not enough.
    page.locator("#file-input").set_input_files(
        [files[0], files[1], {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}]
    )
    expect(page.locator("#problems")).to_contain_text("notes.txt: not a JPEG, PNG or WebP photo")
    expect(page.locator("#selection-summary")).to_contain_text("at least 3 are needed")
    expect(page.get_by_role("button", name="Upload and build the scene")).to_be_disabled()

    page.locator("#file-input").set_input_files(files)
    expect(page.locator("#selection-summary")).to_contain_text("3 photo(s) ready")
    page.get_by_role("button", name="Upload and build the scene").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"), timeout=30_000)

    expect(page.locator("#status-badge")).to_have_text(re.compile("Queued|Running|Failed|Ready"), timeout=15_000)
    expect(page.locator("#overall-progress")).to_be_visible()
    expect(page.locator("#progress-text")).to_contain_text("% done")
    expect(page.locator("#stats")).to_contain_text("Photos")
    job_id = page.url.rsplit("/", 1)[1]
    token = page.evaluate("() => localStorage.getItem('photosplat.token')")
    assert token and len(token) >= 22
    # the page's token is the owner's: the API agrees
    status = page.request.get(f"{server.base}/recon/jobs/{job_id}/status", headers={"Authorization": f"Bearer {token}"})
    assert status.ok and status.json()["image_count"] == 3


def test_upload_one_video_instead_of_photos(server, watched, tmp_path) -> None:
    from photosplat_testkit.video import render_video

    walk = render_video(tmp_path / "walk.mp4", seconds=3.2, fps=5, seed=4).path
    video = {"name": "walk.mp4", "mimeType": "video/mp4", "buffer": walk.read_bytes()}
    page = watched.page
    page.goto(f"{server.base}/")
    # A video goes alone: with a photo beside it nothing is uploaded.
    page.locator("#file-input").set_input_files([video, jpeg("p0.jpg", photo(0))])
    expect(page.locator("#selection-summary")).to_contain_text("a video is uploaded alone")
    expect(page.get_by_role("button", name="Upload and build the scene")).to_be_disabled()

    page.locator("#file-input").set_input_files([video])
    expect(page.locator("#selection-summary")).to_contain_text("1 video ready")
    page.get_by_role("button", name="Upload and build the scene").click()
    # The server checked the video (container, codec, length, size) before the job page opens.
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"), timeout=30_000)
    job_id = page.url.rsplit("/", 1)[1]
    token = page.evaluate("() => localStorage.getItem('photosplat.token')")
    status = page.request.get(f"{server.base}/recon/jobs/{job_id}/status", headers={"Authorization": f"Bearer {token}"})
    assert status.ok and status.json()["status"] in {"PENDING", "RUNNING", "FAILED", "DONE"}
    assert status.json()["error_stage"] != "validate"
    # The walk-around would be reconstructed and trained on this machine's CPU for minutes while the
    # rest of the suite runs: the job has shown what this test is about.
    page.request.post(f"{server.base}/recon/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"})


def test_upload_shows_the_servers_rejection_by_file_and_rule(server, watched) -> None:
    watched.expected.append("status of 400 (Bad Request)")
    page = watched.page
    page.goto(f"{server.base}/")
    good = [jpeg(f"g{i}.jpg", photo(10 + i)) for i in range(3)]
    cut = jpeg("cut.jpg", photo(20)[:1500])
    page.locator("#file-input").set_input_files([*good, cut])
    page.get_by_role("button", name="Upload and build the scene").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server refused the photos", timeout=30_000)
    expect(alert).to_contain_text(re.compile(r"cut\.jpg: .*\(rule: \w+\)"))
    expect(page.locator("#total-progress")).to_have_attribute("value", "100")


def training_timings(train_seconds: float) -> TrainingTimings:
    return TrainingTimings(
        download_seconds=5.0,
        train_seconds=train_seconds,
        train_stage_seconds=train_seconds + 30,
        upload_seconds=5.0,
        total_seconds=train_seconds + 40,
    )


def test_job_page_of_a_finished_job(server, watched, done_job) -> None:
    curve = tuple(CurvePoint(step=s, loss=0.3 / (1 + s / 100), psnr=18 + s / 100) for s in range(0, 1000, 50))
    sfm = SfmSummary(
        registered_images=11,
        total_images=12,
        points=900,
        reprojection_error=0.6,
        timings=SfmTimings(extraction=20.0, matching=40.0),
        warnings=("3 photos are blurry",),
    )
    job = done_job(
        {"scene.splat": b"\0" * 320, "scene.ply": b"ply\n"},
        gaussian_count=10,
        image_count=12,
        registered_image_count=11,
        held_out=HeldOutScores(psnr=27.5, ssim=0.91),
        statistics=JobStatistics(curve=curve, sfm=sfm, timings=training_timings(600.0)),
    )
    page = watched.page
    page.goto(f"{server.base}/")
    page.evaluate("token => localStorage.setItem('photosplat.token', token)", job.token)
    page.goto(f"{server.base}/jobs/{job.job_id}")
    expect(page.locator("#status-badge")).to_have_text("Ready")
    expect(page.locator("#stats")).to_contain_text("11 of 12")
    expect(page.locator("#stats")).to_contain_text("27.50 dB")
    expect(page.locator("#stats")).to_contain_text("Time: training")
    expect(page.locator("#stats")).to_contain_text("Time: feature extraction")
    expect(page.locator("#stats")).not_to_contain_text("_seconds")
    expect(page.locator("#stats")).to_contain_text("0.60 px")
    expect(page.locator("#warning-list")).to_contain_text("3 photos are blurry")
    expect(page.locator("#curve-caption")).to_contain_text("step 950")
    expect(page.get_by_role("link", name="Open the 3D viewer")).to_have_attribute("href", f"/v/{job.pub_key}")
    expect(page.locator("#download-list")).to_contain_text("scene.splat")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("#deleted")).to_be_visible()
    assert page.request.get(f"{server.base}/v/{job.pub_key}").status == 404


def test_admin_lists_cancels_and_deletes(server, watched, done_job) -> None:
    done = done_job(
        {"scene.splat": b"\0" * 64}, gaussian_count=2, statistics=JobStatistics(timings=training_timings(3600.0))
    )
    page = watched.page
    # a job still waiting for its photos: cancellable
    declared = page.request.post(
        f"{server.base}/recon/uploads",
        data={"files": [{"name": f"w{i}.jpg", "size": 1000, "content_type": "image/jpeg"} for i in range(3)]},
    )
    assert declared.status == 201
    waiting = declared.json()["job_id"]

    page.goto(f"{server.base}/admin")
    page.get_by_label("Admin token").fill(server.admin_token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="PhotoSplat jobs")).to_be_visible()
    expect(page.locator(f"#job-{done.job_id}")).to_contain_text("DONE")
    expect(page.locator(f"#job-{waiting}")).to_contain_text("PENDING")

    page.get_by_label("Status").select_option("DONE")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f"#job-{done.job_id}")).to_be_visible()
    expect(page.locator(f"#job-{waiting}")).to_have_count(0)
    page.get_by_role("link", name="clear").click()

    page.get_by_role("button", name=f"Cancel job {waiting}").click()
    expect(page.get_by_role("status")).to_contain_text(f"job {waiting} cancelled")
    expect(page.locator(f"#job-{waiting}")).to_contain_text("CANCELLED")

    page.get_by_role("button", name=f"Delete job {done.job_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"job {done.job_id} deleted")
    expect(page.locator(f"#job-{done.job_id}")).to_have_count(0)


def _requests_to(watched, suffix: str) -> int:
    return sum(url.split("?")[0].endswith(suffix) for url in watched.requests)


def test_job_page_follows_the_event_stream(server, watched, done_job, edit_job) -> None:
    job = done_job(
        {},
        status="RUNNING",
        stage="train",
        progress=0.2,
        finished_at=None,
        statistics=JobStatistics(curve=(CurvePoint(step=100, loss=0.2),)),
    )
    page = watched.page
    page.goto(f"{server.base}/")
    page.evaluate("token => localStorage.setItem('photosplat.token', token)", job.token)
    page.goto(f"{server.base}/jobs/{job.job_id}")
    expect(page.locator("#job")).to_have_attribute("data-transport", "stream")
    expect(page.locator("#progress-text")).to_contain_text("stage train: 20 %")
    expect(page.locator("#curve-caption")).to_contain_text("step 100")

    # Written as another replica would: the stream finds it in the database (within a second).
    curve = (CurvePoint(step=100, loss=0.2), CurvePoint(step=600, loss=0.1, psnr=21.0))
    stats = JobStatistics(curve=curve)
    edit_job(job.job_id, ("step 600: loss 0.1",), progress=0.6, eta_seconds=120.0, statistics=stats)
    expect(page.locator("#progress-text")).to_contain_text("stage train: 60 %")
    expect(page.locator("#progress-text")).to_contain_text("2 min left")
    expect(page.locator("#log-tail")).to_contain_text("step 600: loss 0.1")
    expect(page.locator("#curve-caption")).to_contain_text("step 600, loss 0.100, PSNR 21.00 dB (2 points)")
    assert _requests_to(watched, "/status") == 1  # the first look only: the rest came pushed

    edit_job(job.job_id, ("exported",), status="DONE", stage="export", progress=1.0, gaussian_count=7)
    expect(page.locator("#status-badge")).to_have_text("Ready")
    expect(page.locator("#stats")).to_contain_text("Gaussians")
    expect(page.locator("#log-tail")).to_contain_text("exported")
    assert _requests_to(watched, "/events") == 1  # one stream from start to end


def test_job_page_polls_when_the_server_offers_no_event_stream(server, watched, done_job, edit_job) -> None:
    watched.expected.append("404 (Not Found)")
    job = done_job({}, status="RUNNING", stage="sfm", progress=0.1, finished_at=None)
    page = watched.page
    page.route("**/events", lambda route: route.fulfill(status=404, json={"detail": "Not Found"}))
    page.goto(f"{server.base}/")
    page.evaluate("token => localStorage.setItem('photosplat.token', token)", job.token)
    page.goto(f"{server.base}/jobs/{job.job_id}")
    expect(page.locator("#job")).to_have_attribute("data-transport", "polling")
    expect(page.locator("#progress-text")).to_contain_text("stage sfm: 10 %")
    edit_job(job.job_id, progress=0.7)
    expect(page.locator("#progress-text")).to_contain_text("stage sfm: 70 %")
    assert _requests_to(watched, "/status") >= 2


def _seconds_left(page) -> int:
    text = page.locator("#progress-text").inner_text()
    found = re.search(r"about (\d+) s left", text)
    assert found, text
    return int(found.group(1))


def test_the_eta_counts_down_between_reports(server, watched, done_job) -> None:
    """SfM's matching reports nothing for up to a minute: the page counts the worker's estimate down
    from when the worker made it (eta_at), on the server's clock."""
    made = datetime.now(UTC) - timedelta(seconds=20)
    job = done_job({}, status="RUNNING", stage="sfm", progress=0.35, finished_at=None, eta_seconds=80.0, eta_at=made)
    page = watched.page
    page.goto(f"{server.base}/")
    page.evaluate("token => localStorage.setItem('photosplat.token', token)", job.token)
    page.goto(f"{server.base}/jobs/{job.job_id}")
    expect(page.locator("#progress-text")).to_contain_text("s left in this stage")
    first = _seconds_left(page)
    assert 50 <= first <= 61, first  # 80 s made 20 s ago, less the page's own start
    page.wait_for_timeout(3000)
    assert 2 <= first - _seconds_left(page) <= 4
