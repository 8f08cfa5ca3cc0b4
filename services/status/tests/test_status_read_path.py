"""The status answer passes the stored stats on as the database keeps them: check that what a client
gets is exactly what was stored, on SQLite and Postgres."""

from __future__ import annotations

from typing import Any

import pytest

from photosplat_libs.db.models import JobStatus
from photosplat_status.responses import JobStatusView

STATS = {
    "curve": [{"step": s * 10, "loss": 0.5 / (s + 1), "psnr": 20.0 + s / 7} for s in range(400)],
    "sfm": {"registered": 48, "left_out": ['IMG "1".jpg', "dir\\name.jpg", "写真_é.jpg"], "warnings": []},
    "home_view": {"position": [0.1, -2.5e-7, 3.0], "up": [0, 1, 0]},
    "worker": "gpu-1 \u2603",
    "empty": {},
    "flag": True,
    "nothing": None,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_status_answer_carries_the_stored_stats_exactly(
    either_database: str, memory_bus: Any, folder_store: Any, kit: Any
) -> None:
    async with kit.running_status(either_database, memory_bus, folder_store) as status:
        job = await kit.insert_job(
            status.db, status=JobStatus.DONE, stage="export", stats=STATS, metrics={"psnr": 27.5}, file_sizes={"ply": 1}
        )
        response = await status.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["stats"] == STATS
    assert (body["metrics"], body["file_sizes"], body["log_tail"]) == ({"psnr": 27.5}, {"ply": 1}, [])
    assert body["viewer_url"].endswith(f"/v/{job.pub_key}")
    JobStatusView.model_validate(body)


@pytest.mark.parametrize("stats", [{}, {"curve": []}])
async def test_a_job_without_stats_answers_empty_ones(embedded: Any, kit: Any, stats: dict[str, Any]) -> None:
    job = await kit.insert_job(embedded.db, status=JobStatus.RUNNING, stage="sfm", stats=stats)
    response = await embedded.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
    assert response.json()["stats"] == stats
