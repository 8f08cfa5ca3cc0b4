"""Recovery on SQLite + the embedded bus: silent workers, crash loops, lost queues, stale uploads."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from photosplat_libs import keys, topology
from photosplat_libs.bus import Delivery
from photosplat_libs.db.models import ErrorLog, JobStatus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, Stage, StageStarted
from photosplat_status.projection import project

LONG_AGO = datetime.now(timezone.utc) - timedelta(hours=1)


def images_validated(job_id: uuid.UUID, when: datetime) -> ImagesValidated:
    image = ImageInfo(key=keys.image(job_id, 0, ".jpg"), name="0.jpg", width=64, height=48, bytes=1000)
    return ImagesValidated(job_id=job_id, images=(image,), occurred_at=when)


async def started_job(status: Any, kit: Any, when: datetime = LONG_AGO, **fields: Any) -> tuple[uuid.UUID, Envelope]:
    """A job whose SfM worker started at ``when`` and has been silent since."""
    job = await kit.insert_job(status.db, created_at=when, **fields)
    request = images_validated(job.id, when)
    for event in (request, StageStarted(job_id=job.id, stage=Stage.SFM, occurred_at=when)):
        await project(status.db, status.store, event)
    return job.id, request


async def collect_work(status: Any) -> list[Envelope]:
    received: list[Envelope] = []

    async def worker(event: Envelope, _delivery: Delivery) -> None:
        received.append(event)

    await status.bus.consume(topology.COLMAP_WORK, worker)
    return received


async def test_a_silent_worker_gets_its_job_again_as_the_next_attempt(embedded: Any, kit: Any) -> None:
    job_id, request = await started_job(embedded, kit)
    work = await collect_work(embedded)

    assert await embedded.service.recovery.run_once() == 1

    job = await kit.load_job(embedded.db, job_id)
    assert job.attempt == 2 and job.status == JobStatus.RUNNING
    assert job.heartbeat_at > datetime.now(timezone.utc) - timedelta(minutes=1)

    async def redelivered() -> bool:
        return len(work) == 1

    await kit.eventually(redelivered)
    retry = work[0]
    assert isinstance(retry, ImagesValidated)
    assert (retry.attempt, retry.images, retry.job_id) == (2, request.images, job_id)
    assert retry.event_id != request.event_id
    # the fresh lease holds: nothing more to do right now
    assert await embedded.service.recovery.run_once() == 0


async def test_a_request_still_waiting_in_its_queue_is_left_alone(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, created_at=LONG_AGO)
    await project(embedded.db, embedded.store, images_validated(job.id, LONG_AGO))
    assert await embedded.service.recovery.run_once() == 0
    assert (await kit.load_job(embedded.db, job.id)).attempt == 1


async def test_a_job_that_keeps_stopping_fails_after_max_attempts(embedded: Any, kit: Any) -> None:
    job_id, _ = await started_job(embedded, kit, attempt=embedded.settings.max_attempts)
    assert await embedded.service.recovery.run_once() == 1
    job = await kit.load_job(embedded.db, job_id)
    assert (job.status, job.error_stage) == (JobStatus.FAILED, "sfm")
    assert "stopped responding on all 3 attempts" in job.error_message
    async with embedded.db.transaction() as session:
        error = await session.scalar(select(ErrorLog).where(ErrorLog.job_id == job_id))
        assert error is not None and (error.error_type, error.final) == ("WorkerLost", True)


async def test_a_job_interrupted_before_any_work_request_fails(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, created_at=LONG_AGO, stage="validate")
    assert await embedded.service.recovery.run_once() == 1
    row = await kit.load_job(embedded.db, job.id)
    assert row.status == JobStatus.FAILED and "before processing started" in row.error_message


async def test_a_non_durable_bus_re_dispatches_unfinished_jobs_at_start(
    sqlite_url: str, memory_bus: Any, folder_store: Any, kit: Any
) -> None:
    async with kit.running_status(sqlite_url, memory_bus, folder_store, start=False) as status:
        just_now = datetime.now(timezone.utc)
        queued = await kit.insert_job(status.db, created_at=just_now)
        await project(status.db, status.store, images_validated(queued.id, just_now))
        finished = await kit.insert_job(status.db, created_at=just_now, status=JobStatus.DONE, stage="export")
        uploading = await kit.insert_job(status.db, created_at=just_now, stage="upload")
        await status.bus.declare(topology.COLMAP_WORK)
        work = await collect_work(status)

        await status.service.start()

        async def redelivered() -> bool:
            return len(work) == 1

        await kit.eventually(redelivered)
        assert (work[0].job_id, work[0].attempt) == (queued.id, 2)
        assert (await kit.load_job(status.db, queued.id)).attempt == 2
        assert (await kit.load_job(status.db, finished.id)).attempt == 1
        assert (await kit.load_job(status.db, uploading.id)).attempt == 1


async def test_an_abandoned_upload_expires_with_its_objects(embedded: Any, kit: Any) -> None:
    stale = await kit.insert_job(embedded.db, created_at=datetime.now(timezone.utc) - timedelta(days=2), stage="upload")
    fresh = await kit.insert_job(embedded.db, stage="upload")
    for job in (stale, fresh):
        await embedded.store.put(keys.incoming(job.id, 0, ".jpg"), b"photo")
    await embedded.service.recovery.run_once()
    assert await kit.load_job(embedded.db, stale.id) is None
    assert await embedded.store.list(keys.job_prefix(stale.id)) == []
    assert await kit.load_job(embedded.db, fresh.id) is not None
    assert await embedded.store.exists(keys.incoming(fresh.id, 0, ".jpg"))
