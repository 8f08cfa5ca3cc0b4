"""The status answer's optional cache (status_cache_seconds): many pollers of one job cost one
database read per interval; off by default, and a cancel through the API is seen at once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from photosplat_libs.db.models import Job, JobStatus


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _set_progress(db: Any, job_id: Any, progress: float) -> None:
    async with db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(progress=progress))


async def _progress(status: Any, job: Any) -> float:
    response = await status.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
    assert response.status_code == 200, response.text
    return response.json()["progress"]


async def test_answers_are_reused_for_the_configured_seconds_only(sqlite_url: str, memory_bus: Any, folder_store: Any, kit: Any) -> None:
    async with kit.running_status(sqlite_url, memory_bus, folder_store, status_cache_seconds=0.5) as status:
        job = await kit.insert_job(status.db, status=JobStatus.RUNNING, stage="train", progress=0.25)
        assert await _progress(status, job) == 0.25
        await _set_progress(status.db, job.id, 0.5)
        assert await _progress(status, job) == 0.25  # within the half second: the same answer
        await asyncio.sleep(0.6)
        assert await _progress(status, job) == 0.5
        other = await status.client.get(f"/recon/jobs/{job.id}/status", headers=bearer("x" * 43))
        assert other.status_code == 404  # the cache never skips the owner check


async def test_off_by_default_and_a_cancel_is_seen_at_once(sqlite_url: str, memory_bus: Any, folder_store: Any, kit: Any) -> None:
    async with kit.running_status(sqlite_url, memory_bus, folder_store) as status:
        job = await kit.insert_job(status.db, status=JobStatus.RUNNING, stage="train", progress=0.25)
        assert await _progress(status, job) == 0.25
        await _set_progress(status.db, job.id, 0.5)
        assert await _progress(status, job) == 0.5
    async with kit.running_status(sqlite_url, memory_bus, folder_store, status_cache_seconds=5.0) as status:
        job = await kit.insert_job(status.db, status=JobStatus.RUNNING, stage="train", progress=0.25)
        assert await _progress(status, job) == 0.25
        cancel = await status.client.post(f"/recon/jobs/{job.id}/cancel", headers=bearer(job.token))
        assert cancel.status_code == 202
        answer = await status.client.get(f"/recon/jobs/{job.id}/status", headers=bearer(job.token))
        assert answer.json()["status"] == "CANCELLED"
