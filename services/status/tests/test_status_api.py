"""The HTTP API and the admin dashboard, through httpx's ASGI transport on the embedded adapters."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from photosplat_libs import keys, security, topology
from photosplat_libs.bus import Delivery
from photosplat_libs.db.job_statistics import HeldOutScores
from photosplat_libs.db.models import ErrorLog, JobStatus, LogLine, OutboxMessage, ProcessedEvent
from photosplat_libs.events import CancelRequested, Envelope, JobDeleted, LogLines, Stage, StageFailed
from photosplat_status.projection import project
from photosplat_status.settings import StatusSettings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def listen_for_cancels(status: Any) -> list[Envelope]:
    heard: list[Envelope] = []

    async def worker(event: Envelope, _delivery: Delivery) -> None:
        heard.append(event)

    await status.bus.consume(topology.cancel_queue("test", "w1"), worker)
    return heard


async def test_the_owner_reads_the_status_of_a_finished_job(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(
        embedded.db,
        status=JobStatus.DONE,
        stage="export",
        progress=1.0,
        image_count=30,
        registered_image_count=28,
        gaussian_count=123_456,
        file_sizes={"ply": 8 * 1024 * 1024, "splat": 3 * 1024 * 1024},
        held_out=HeldOutScores(psnr=27.1, ssim=0.9),
    )
    lines = tuple(f"line {i}" for i in range(15))
    await project(embedded.db, embedded.store, LogLines(job_id=job.id, stage=Stage.TRAIN, lines=lines))

    response = await embedded.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
    assert response.status_code == 200
    body = response.json()
    assert body["job_id"] == str(job.id)
    assert (body["status"], body["stage"], body["progress"], body["overall_progress"]) == ("DONE", "export", 1.0, 1.0)
    assert body["log_tail"] == [f"line {i}" for i in range(5, 15)]
    assert (body["image_count"], body["registered_image_count"], body["gaussian_count"]) == (30, 28, 123_456)
    assert body["file_size_mb"] == 3.0
    assert body["file_sizes"] == {"ply": 8 * 1024 * 1024, "splat": 3 * 1024 * 1024}
    assert body["metrics"] == {"psnr": 27.1, "ssim": 0.9}
    assert body["viewer_url"] == f"http://127.0.0.1:8000/v/{job.pub_key}"
    assert (body["error"], body["error_stage"], body["attempt"]) == (None, None, 1)
    expected = {
        "job_id", "status", "stage", "progress", "overall_progress", "eta_seconds", "eta_at", "log_tail", "created_at",
        "started_at", "finished_at", "processing_time_seconds", "image_count", "registered_image_count",
        "gaussian_count", "file_size_mb", "file_sizes", "metrics", "stats", "viewer_url", "error", "error_stage",
        "attempt",
    }  # fmt: skip
    assert set(body) == expected


async def test_a_running_job_has_no_viewer_url_and_a_failed_one_says_why(embedded: Any, kit: Any) -> None:
    running = await kit.insert_job(embedded.db, status=JobStatus.RUNNING, stage="train", progress=0.5)
    body = (await embedded.client.get(f"/recon/jobs/{running.id}/status", headers=bearer(running.token))).json()
    assert body["viewer_url"] is None and body["overall_progress"] == pytest.approx(0.625)

    failed = await kit.insert_job(
        embedded.db, status=JobStatus.FAILED, stage="sfm", error_message="too few images", error_stage="sfm"
    )
    body = (await embedded.client.get(f"/recon/jobs/{failed.id}/status", headers=bearer(failed.token))).json()
    assert (body["status"], body["error"], body["error_stage"]) == ("FAILED", "too few images", "sfm")


async def test_without_a_token_the_api_answers_401(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db)
    for method, path in (
        ("GET", f"/recon/jobs/{job.id}/status"),
        ("GET", "/recon/jobs"),
        ("GET", f"/recon/jobs/{job.id}/errors"),
        ("POST", f"/recon/jobs/{job.id}/cancel"),
        ("DELETE", f"/recon/jobs/{job.id}"),
    ):
        response = await embedded.client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    response = await embedded.client.get(f"/recon/jobs/{job.id}/status", headers={"Authorization": "Basic abc"})
    assert response.status_code == 401


async def test_another_clients_job_looks_like_no_job_at_all(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db)
    stranger = security.new_token()
    for method, path in (
        ("GET", f"/recon/jobs/{job.id}/status"),
        ("GET", f"/recon/jobs/{job.id}/errors"),
        ("POST", f"/recon/jobs/{job.id}/cancel"),
        ("DELETE", f"/recon/jobs/{job.id}"),
        ("GET", f"/recon/jobs/{uuid.uuid4()}/status"),
    ):
        response = await embedded.client.request(method, path, headers=bearer(stranger))
        assert (response.status_code, response.json()) == (404, {"detail": "job not found"}), path
    assert (await kit.load_job(embedded.db, job.id)).status == JobStatus.PENDING


async def test_the_admin_sees_every_job_but_gets_no_viewer_link(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, status=JobStatus.DONE, stage="export")
    response = await embedded.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(kit.admin_token))
    assert response.status_code == 200 and response.json()["viewer_url"] is None


async def test_listing_shows_the_callers_jobs_newest_first(embedded: Any, kit: Any) -> None:
    token = security.new_token()
    base = datetime.now(timezone.utc)
    mine = [
        await kit.insert_job(embedded.db, token=token, created_at=base - timedelta(minutes=i), status=status)
        for i, status in enumerate([JobStatus.RUNNING, JobStatus.DONE, JobStatus.DONE, JobStatus.FAILED])
    ]
    await kit.insert_job(embedded.db)  # someone else's

    page = (await embedded.client.get("/recon/jobs?limit=2&offset=1", headers=bearer(token))).json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert [item["job_id"] for item in page["items"]] == [str(mine[1].id), str(mine[2].id)]
    assert page["items"][0]["viewer_url"] == f"http://127.0.0.1:8000/v/{mine[1].pub_key}"

    done = (await embedded.client.get("/recon/jobs?status=DONE", headers=bearer(token))).json()
    assert done["total"] == 2 and {i["status"] for i in done["items"]} == {"DONE"}

    response = await embedded.client.get("/recon/jobs?status=FINISHED", headers=bearer(token))
    assert response.status_code == 400 and "FINISHED" in response.json()["detail"]

    everyone = (await embedded.client.get("/recon/jobs", headers=bearer(kit.admin_token))).json()
    assert everyone["total"] == 5

    nobody = (await embedded.client.get("/recon/jobs", headers=bearer(security.new_token()))).json()
    assert (nobody["total"], nobody["items"]) == (0, [])


async def test_the_error_log_of_a_job(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, status=JobStatus.RUNNING, stage="train")
    failure = StageFailed(
        job_id=job.id, stage=Stage.TRAIN, error_type="CudaOOM", message="out of memory", traceback="Traceback ..."
    )
    await project(embedded.db, embedded.store, failure)
    errors = (await embedded.client.get(f"/recon/jobs/{job.id}/errors", headers=bearer(job.token))).json()
    assert len(errors) == 1
    error = errors[0]
    assert (error["stage"], error["error_type"], error["message"], error["traceback"]) == (
        "train",
        "CudaOOM",
        "out of memory",
        "Traceback ...",
    )
    assert (error["attempt"], error["final"]) == (1, True) and error["time"]


async def test_cancel_stops_a_running_job_once(embedded: Any, kit: Any) -> None:
    heard = await listen_for_cancels(embedded)
    job = await kit.insert_job(
        embedded.db, status=JobStatus.RUNNING, stage="train", started_at=datetime.now(timezone.utc)
    )

    response = await embedded.client.post(f"/recon/jobs/{job.id}/cancel", headers=bearer(job.token))
    assert (response.status_code, response.json()) == (202, {"job_id": str(job.id), "status": "CANCELLED"})
    row = await kit.load_job(embedded.db, job.id)
    assert row.status == JobStatus.CANCELLED and row.finished_at is not None
    assert await embedded.store.exists(keys.cancel_marker(job.id))

    async def announced() -> bool:
        return any(isinstance(e, CancelRequested) and e.job_id == job.id for e in heard)

    await kit.eventually(announced)

    again = await embedded.client.post(f"/recon/jobs/{job.id}/cancel", headers=bearer(job.token))
    assert again.status_code == 409 and "CANCELLED" in again.json()["detail"]


async def test_cancel_of_a_finished_job_is_a_conflict(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, status=JobStatus.DONE, stage="export")
    response = await embedded.client.post(f"/recon/jobs/{job.id}/cancel", headers=bearer(kit.admin_token))
    assert response.status_code == 409 and "DONE" in response.json()["detail"]
    assert not await embedded.store.exists(keys.cancel_marker(job.id))


async def test_delete_removes_every_row_and_object_of_the_job(embedded: Any, kit: Any) -> None:
    heard = await listen_for_cancels(embedded)
    job = await kit.insert_job(embedded.db, status=JobStatus.RUNNING, stage="train")
    other = await kit.insert_job(embedded.db)
    for owner in (job, other):
        await embedded.store.put(keys.image(owner.id, 0, ".jpg"), b"photo")
        await embedded.store.put(keys.output(owner.id, "scene.ply"), b"ply")
        await project(embedded.db, embedded.store, LogLines(job_id=owner.id, lines=("hello",)))
        await project(
            embedded.db,
            embedded.store,
            StageFailed(job_id=owner.id, stage=Stage.TRAIN, error_type="E", message="m", final=False),
        )
    await embedded.client.post(f"/recon/jobs/{job.id}/cancel", headers=bearer(job.token))  # leaves an outbox row

    response = await embedded.client.delete(f"/recon/jobs/{job.id}", headers=bearer(job.token))
    assert response.status_code == 204 and response.content == b""

    assert await kit.load_job(embedded.db, job.id) is None
    assert await embedded.store.list(keys.job_prefix(job.id)) == []
    async with embedded.db.transaction() as session:
        for model in (ProcessedEvent, LogLine, ErrorLog, OutboxMessage):
            left = await session.scalar(select(func.count()).select_from(model).where(model.job_id == job.id))
            assert left == 0, model.__name__
            kept = await session.scalar(select(func.count()).select_from(model).where(model.job_id == other.id))
            assert kept > 0 or model is OutboxMessage, model.__name__
    assert await kit.load_job(embedded.db, other.id) is not None
    assert len(await embedded.store.list(keys.job_prefix(other.id))) == 2

    async def announced() -> bool:
        return any(isinstance(e, JobDeleted) and e.job_id == job.id for e in heard)

    await kit.eventually(announced)
    gone = await embedded.client.delete(f"/recon/jobs/{job.id}", headers=bearer(job.token))
    assert gone.status_code == 404


async def test_the_dashboard_needs_the_admin_token(embedded: Any, kit: Any) -> None:
    await kit.insert_job(
        embedded.db, status=JobStatus.FAILED, stage="sfm", error_stage="sfm", error_message="<script>alert(1)</script>"
    )
    await kit.insert_job(embedded.db, status=JobStatus.DONE, stage="export", held_out=HeldOutScores(psnr=27.25))

    login = await embedded.client.get("/admin")
    # the login form, not the jobs (200: a browser asked for a page, no HTTP auth challenge)
    assert login.status_code == 200 and 'name="token"' in login.text and "<table" not in login.text
    stranger = await embedded.client.get("/admin", headers=bearer(security.new_token()))
    assert 'name="token"' in stranger.text and "<table" not in stranger.text

    page = await embedded.client.get("/admin", headers=bearer(kit.admin_token))
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert "27.25" in page.text and "[sfm]" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_the_dashboard_login_sets_a_strict_http_only_cookie(embedded: Any, kit: Any) -> None:
    wrong = await embedded.client.post("/admin/login", data={"token": "x" * 30})
    assert wrong.status_code == 401 and "not the admin token" in wrong.text

    response = await embedded.client.post("/admin/login", data={"token": kit.admin_token})
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
    assert kit.admin_token not in cookie
    page = await embedded.client.get("/admin")  # the client keeps the cookie
    assert page.status_code == 200 and "PhotoSplat jobs" in page.text

    await embedded.client.post("/admin/logout")
    assert 'name="token"' in (await embedded.client.get("/admin")).text


async def test_without_an_admin_token_admin_is_disabled(
    sqlite_url: str, memory_bus: Any, folder_store: Any, kit: Any
) -> None:
    async with kit.running_status(sqlite_url, memory_bus, folder_store, admin_token=None) as status:
        assert (await status.client.get("/admin")).status_code == 403
        assert (await status.client.get("/admin", headers=bearer(kit.admin_token))).status_code == 403
        assert (await status.client.post("/admin/login", data={"token": kit.admin_token})).status_code == 403
        listing = await status.client.get("/recon/jobs", headers=bearer(kit.admin_token))
        assert listing.json()["total"] == 0  # just an unknown client token now


@pytest.mark.parametrize("weak", ["admin", "changeme", "password", "secret", "short-token-123", "a" * 40])
def test_a_weak_admin_token_is_refused(weak: str) -> None:
    with pytest.raises(ValidationError, match="admin_token is too weak"):
        StatusSettings(admin_token=weak)


def test_settings_come_from_the_status_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    token = security.new_token()
    monkeypatch.setenv("PHOTOSPLAT_STATUS_ADMIN_TOKEN", token)
    monkeypatch.setenv("PHOTOSPLAT_STATUS_LEASE_SECONDS", "120")
    monkeypatch.setenv("PHOTOSPLAT_STATUS_PUBLIC_BASE_URL", "https://splat.example/")
    settings = StatusSettings()
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == token
    assert (settings.lease_seconds, settings.public_base_url) == (120, "https://splat.example")
    assert (settings.max_attempts, settings.upload_ttl_seconds) == (3, 86400)
    assert StatusSettings(_env_file=None, admin_token=None).admin_token is None
