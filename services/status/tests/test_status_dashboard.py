"""The admin dashboard: filters, totals, error logs, and its cancel / delete forms."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from photosplat_libs.db.models import ErrorLog, JobStatus
from photosplat_status.totals import stage_times


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def form_token(page: str) -> str:
    match = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert match, "the page has no action form"
    return match.group(1)


def test_stage_times_average_what_jobs_report_and_count_gpu_time_where_a_gpu_ran() -> None:
    times = stage_times(
        [
            {"sfm": {"timings": {"extraction": 10.0, "matching": 20.0}}, "timings": {"train_seconds": 1800.0, "gpu_seconds": 1800.0, "export_seconds": 4}},
            {"sfm": {"timings": {"extraction": 30.0}}, "timings": {"train_seconds": 5400.0, "gpu_seconds": 5400.0}},
            {"timings": {"train_seconds": 3600.0}},  # trained on a CPU: no GPU time
            {"curve": []},
            {"timings": {"train_seconds": "not a number"}},
        ]
    )
    assert times.mean_seconds == {"SfM": 30.0, "training": 3600.0, "GPU training": 3600.0, "export": 4.0}
    assert times.gpu_hours == 2.0


async def test_dashboard_filters_searches_and_totals(embedded: Any, kit: Any) -> None:
    failed = await kit.insert_job(
        embedded.db, status=JobStatus.FAILED, stage="sfm", error_stage="sfm", error_message="too few matches"
    )
    done = await kit.insert_job(
        embedded.db, status=JobStatus.DONE, stage="export", stats={"timings": {"train_seconds": 7200.0, "gpu_seconds": 7200.0}}
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
