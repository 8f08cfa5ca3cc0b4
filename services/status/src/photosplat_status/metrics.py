"""Status's metrics: jobs by status and stuck jobs, read from the database, and every queue of the
topology (status consumes everything, so it is the one that sees a work queue with no worker left).

The job gauges are recounted from the database rather than kept up to date by the projection: a
count kept in memory would start at zero after a restart and, with several replicas, each would see
only the events it consumed. Every replica reports the same database-wide values (dashboards and
alerts take ``max``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import topology
from photosplat_libs.bus import DEAD_LETTER_QUEUE, Bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import JobStatus
from photosplat_libs.events import ImagesValidated, Stage
from photosplat_libs.observability.metrics import JOBS, JOBS_STUCK
from photosplat_libs.observability.queues import QueueGauges
from photosplat_libs.periodic import Periodic
from photosplat_status import repository as repo
from photosplat_status.settings import StatusSettings

# Counting scans the jobs table: twice a scrape interval is fresh enough for a gauge.
REFRESH_SECONDS = 30.0
WATCHED_QUEUES = (*(spec.name for spec in topology.DURABLE_QUEUES), DEAD_LETTER_QUEUE)


async def stuck_jobs(session: AsyncSession, silent_since: datetime) -> int:
    """Jobs that recovery would act on (docs/architecture.md §5.5): a worker started their current
    work request (or none was ever sent), then nothing was heard for the lease. A request still
    waiting in its queue is not stuck, only queued."""
    stuck = 0
    for job in await repo.stale_jobs(session, silent_since):
        request = await repo.latest_work_request(session, job.id)
        if request is None:
            stuck += 1
            continue
        stage = Stage.SFM if isinstance(request, ImagesValidated) else Stage.TRAIN
        stuck += await repo.was_started(session, request, stage.value)
    return stuck


class StatusMetrics:
    def __init__(self, settings: StatusSettings, db: Database, bus: Bus) -> None:
        self._settings, self._db = settings, db
        self._queues = QueueGauges(bus, WATCHED_QUEUES)
        self._periodic = Periodic("status-metrics", self.refresh, REFRESH_SECONDS)

    async def refresh(self) -> None:
        silent_since = datetime.now(timezone.utc) - timedelta(seconds=self._settings.lease_seconds)
        async with self._db.transaction() as session:
            counts = await repo.count_by_status(session)
            stuck = await stuck_jobs(session, silent_since)
        for status in JobStatus:
            JOBS.labels(status.value).set(counts.get(status.value, 0))
        JOBS_STUCK.set(stuck)
        await self._queues.refresh()

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
