"""The admin dashboard: filters, totals, error logs, and its cancel / delete forms."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from photosplat_libs.db.models import ErrorLog, JobStatus
from photosplat_libs.db.job_statistics import JobStatistics
from photosplat_libs.events import SfmTimings, TrainingTimings
from photosplat_status.totals import LABELS, stage_times


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def form_token(page: str) -> str:
    match = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert match, "the page has no action form"
    return match.group(1)


def timings(train_seconds: float, gpu_seconds: float | None = None) -> TrainingTimings:
    return TrainingTimings(
        download_seconds=2.0,
        train_seconds=train_seconds,
        train_stage_seconds=train_seconds + 60,
        upload_seconds=4.0,
        total_seconds=train_seconds + 66,
        gpu_seconds=gpu_seconds,
    )


def test_stage_times_average_what_jobs_report_and_count_gpu_time_where_a_gpu_ran() -> None:
    times = stage_times(
        [
            (SfmTimings(extraction=10.0, matching=20.0), timings(1800.0, gpu_seconds=1800.0)),
            (SfmTimings(extraction=30.0), timings(5400.0, gpu_seconds=5400.0)),
            (None, timings(3600.0)),  # trained on a CPU: no GPU time
            (SfmTimings(), None),  # SfM ran but timed nothing, no training
        ]
    )
    assert times.mean_seconds == {
        "SfM": 30.0,
        "trainer download": 2.0,
        "training": 3600.0,
        "training stage (with exports)": 3660.0,
        "upload of results": 4.0,
        "trainer total": 3666.0,
        "GPU training": 3600.0,
    }
    assert times.gpu_hours == 2.0


def test_every_training_timing_has_a_label() -> None:
    assert set(LABELS) == set(TrainingTimings.model_fields)


async def test_dashboard_filters_searches_and_totals(embedded: Any, kit: Any) -> None:
    failed = await kit.insert_job(
        embedded.db, status=JobStatus.FAILED, stage="sfm", error_stage="sfm", error_message="too few matches"
    )
    done = await kit.insert_job(
        embedded.db,
        status=JobStatus.DONE,
        stage="export",
        statistics=JobStatistics(timings=timings(7200.0, gpu_seconds=7200.0)),
    )
    async with embedded.db.transaction() as session:
        session.add(
            ErrorLog(
                job_id=failed.id, stage="sfm", error_type="SfmFailed", message="too few matches",
                traceback="Traceback (most recent call last):\n  boom", created_at=datetime.now(timezone.utc),
            )
        )
    admin = bearer(kit.admin_token)

    page = (await embedded.client.get("/admin", headers=admin)).text
    assert str(failed.id) in page and str(done.id) in page
    assert '<td class="n" id="gpu-hours">2.00</td>' in page
    assert "7200.0 s" in page and "<th scope=\"col\">GPU training</th>" in page and "train_seconds" not in page
    assert "<details><summary>error log (1)</summary>" in page and "Traceback (most recent call last)" in page

    only_failed = (await embedded.client.get("/admin?status=failed", headers=admin)).text
    assert str(failed.id) in only_failed and str(done.id) not in only_failed
    searched = (await embedded.client.get(f"/admin?q={str(done.id)[:8]}", headers=admin)).text
    assert str(done.id) in searched and str(failed.id) not in searched
    by_error = (await embedded.client.get("/admin?q=FEW+MATCHES", headers=admin)).text
    assert str(failed.id) in by_error and str(done.id) not in by_error


async def test_dashboard_cancels_and_deletes_with_its_form_token(embedded: Any, kit: Any) -> None:
    running = await kit.insert_job(embedded.db, status=JobStatus.RUNNING, stage="train")
    admin = bearer(kit.admin_token)
    token = form_token((await embedded.client.get("/admin", headers=admin)).text)

    forged = await embedded.client.post(f"/admin/jobs/{running.id}/cancel", data={"form_token": "0" * 64}, headers=admin)
    assert forged.status_code == 403
    anonymous = await embedded.client.post(f"/admin/jobs/{running.id}/cancel", data={"form_token": token})
    assert anonymous.status_code == 401
    assert (await kit.load_job(embedded.db, running.id)).status == JobStatus.RUNNING

    cancelled = await embedded.client.post(f"/admin/jobs/{running.id}/cancel", data={"form_token": token}, headers=admin)
    assert cancelled.status_code == 303 and "cancelled" in cancelled.headers["location"]
    assert (await kit.load_job(embedded.db, running.id)).status == JobStatus.CANCELLED
    again = await embedded.client.post(f"/admin/jobs/{running.id}/cancel", data={"form_token": token}, headers=admin)
    assert "already+ended" in again.headers["location"]

    deleted = await embedded.client.post(f"/admin/jobs/{running.id}/delete", data={"form_token": token}, headers=admin)
    assert deleted.status_code == 303 and "deleted" in deleted.headers["location"]
    assert await kit.load_job(embedded.db, running.id) is None
