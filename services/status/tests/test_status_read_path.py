"""The status answer passes the stored statistics on as the database keeps them: check that what a
client gets is exactly what was stored, on SQLite and Postgres."""

from __future__ import annotations

from typing import Any

from photosplat_libs.db.job_statistics import CurvePoint, HeldOutScores, JobStatistics, SfmSummary
from photosplat_libs.db.models import JobStatus
from photosplat_libs.events import HomeView
from photosplat_status.responses import JobStatusView

STATISTICS = JobStatistics(
    curve=tuple(CurvePoint(step=s * 10, loss=0.5 / (s + 1), psnr=20.0 + s / 7) for s in range(400)),
    sfm=SfmSummary(
        registered_images=48,
        total_images=50,
        points=12_000,
        reprojection_error=0.8,
        warnings=('IMG "1".jpg left out', "dir\\name.jpg", "写真_é.jpg"),
    ),
    home_view=HomeView(position=(0.1, -2.5e-7, 3.0), target=(0, 0, 0), up=(0, 1, 0), fov_y_deg=50),
    worker="gpu-1 \u2603",
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_status_answer_carries_the_stored_statistics_exactly(
    either_database: str, memory_bus: Any, folder_store: Any, kit: Any
) -> None:
    async with kit.running_status(either_database, memory_bus, folder_store) as status:
        job = await kit.insert_job(
            status.db,
            status=JobStatus.DONE,
            stage="export",
            statistics=STATISTICS,
            held_out=HeldOutScores(psnr=27.5),
            file_sizes={"ply": 1},
        )
        response = await status.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["stats"] == STATISTICS.model_dump(mode="json")
    assert (body["metrics"], body["file_sizes"], body["log_tail"]) == ({"psnr": 27.5, "ssim": None}, {"ply": 1}, [])
    assert body["viewer_url"].endswith(f"/v/{job.pub_key}")
    assert JobStatusView.model_validate(body).stats == STATISTICS


async def test_a_job_without_statistics_answers_empty_ones(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, status=JobStatus.RUNNING, stage="sfm")
    response = await embedded.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
    body = response.json()
    assert body["stats"] == JobStatistics().model_dump(mode="json") and body["stats"]["curve"] == []
    assert body["metrics"] == {"psnr": None, "ssim": None}
