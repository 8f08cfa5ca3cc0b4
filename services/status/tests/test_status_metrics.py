"""Status's metrics, read from the database and the bus: jobs by status, stuck jobs (started, then
silent past the lease; a queued one is not stuck), and the depth of every queue of the topology,
on SQLite and on Postgres."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from photosplat_libs import keys
from photosplat_libs.bus import Bus
from photosplat_libs.db.models import JobStatus
from photosplat_libs.events import ImageInfo, ImagesValidated, SfmDone, Stage, StageStarted
from photosplat_libs.store import ObjectStore
from photosplat_status.projection import project
from photosplat_testkit.metrics import current

LONG_AGO = datetime.now(timezone.utc) - timedelta(hours=1)


def images_validated(job_id: uuid.UUID, when: datetime) -> ImagesValidated:
    image = ImageInfo(key=keys.image(job_id, 0, ".jpg"), name="0.jpg", width=64, height=48, bytes=1000)
    return ImagesValidated(job_id=job_id, images=(image,), occurred_at=when)


async def test_jobs_by_status_and_stuck_jobs_come_from_the_database(
    either_database: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    async with kit.running_status(either_database, memory_bus, folder_store) as status:
        await status.service.metrics.stop()  # the test refreshes when its rows are in place
        for state in (JobStatus.DONE, JobStatus.DONE, JobStatus.FAILED):
            await kit.insert_job(status.db, status=state, stage="export")
        # started by its worker an hour ago, silent since: stuck
        stuck = await kit.insert_job(status.db, created_at=LONG_AGO)
        started = StageStarted(job_id=stuck.id, stage=Stage.SFM, occurred_at=LONG_AGO)
        for event in (images_validated(stuck.id, LONG_AGO), started):
            await project(status.db, status.store, event)
        # waiting in its queue for an hour: queued, not stuck
        queued = await kit.insert_job(status.db, created_at=LONG_AGO)
        await project(status.db, status.store, images_validated(queued.id, LONG_AGO))
        # started a moment ago: fine
        fresh = await kit.insert_job(status.db)
        now = datetime.now(timezone.utc)
        for event in (images_validated(fresh.id, now), StageStarted(job_id=fresh.id, stage=Stage.SFM, occurred_at=now)):
            await project(status.db, status.store, event)

        await status.service.metrics.refresh()

        assert current("photosplat_jobs", status="DONE") == 2
        assert current("photosplat_jobs", status="FAILED") == 1
        assert current("photosplat_jobs", status="RUNNING") == 2
        assert current("photosplat_jobs", status="PENDING") == 1
        assert current("photosplat_jobs", status="CANCELLED") == 0
        assert current("photosplat_jobs_stuck") == 1


async def test_every_queue_is_watched_even_without_its_consumers(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    async with kit.running_status(sqlite_url, memory_bus, folder_store) as status:
        done = SfmDone(
            job_id=uuid.uuid4(), sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
        )
        await memory_bus.publish(done)
        await status.service.metrics.refresh()
        # No trainer runs: the trainer queue fills and nobody consumes it; status says so.
        assert current("photosplat_queue_messages", queue="trainer.work") == 1
        assert current("photosplat_queue_consumers", queue="trainer.work") == 0
        assert current("photosplat_queue_consumers", queue="status.events") == 1
        assert current("photosplat_queue_messages", queue="photosplat.dead-letters") == 0
