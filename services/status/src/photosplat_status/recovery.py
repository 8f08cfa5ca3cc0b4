"""Recovery of interrupted jobs (docs/architecture.md §5): re-dispatch the work request of a job whose worker went
silent, fail a job that keeps stopping, expire abandoned uploads.

A job is re-dispatched when a worker started its current work request and has then been silent for
``lease_seconds`` (workers report progress at least every ~30 s). A request still waiting in a
durable queue is not lost and is left alone: re-sending it would duplicate the work and use up
attempts of jobs that merely wait for a busy worker. A non-durable bus (embedded mode) loses its
queues with the process, so at start every unfinished job is re-dispatched.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.bus import Bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import ErrorLog, Job
from photosplat_libs.db.outbox import OutboxRelay, add_to_outbox
from photosplat_libs.events import Envelope, ImagesValidated, Stage, retry_of
from photosplat_libs.store import ObjectStore
from photosplat_status import jobstate, lifecycle
from photosplat_status import repository as repo
from photosplat_status.projection import drop_checkpoint
from photosplat_status.settings import StatusSettings
from photosplat_status.webhooks import outbox as webhooks

log = logging.getLogger(__name__)

GAVE_UP = "WorkerLost"


class Recovery:
    def __init__(
        self, settings: StatusSettings, db: Database, store: ObjectStore, bus: Bus, relay: OutboxRelay
    ) -> None:
        self._settings, self._db, self._store, self._bus, self._relay = settings, db, store, bus, relay
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, *, at_start: bool = False) -> int:
        """One pass; returns how many jobs it re-dispatched or failed."""
        now = datetime.now(timezone.utc)
        everything = at_start and not self._bus.durable
        silent_since = None if everything else now - timedelta(seconds=self._settings.lease_seconds)
        async with self._db.transaction() as session:
            ids = [job.id for job in await repo.stale_jobs(session, silent_since)]
        changed = 0
        for job_id in ids:
            # One transaction per job: a job that cannot be recovered does not block the others.
            async with self._db.transaction() as session:
                job = await repo.lock_job(session, job_id)
                # Another replica may have recovered it, or its worker spoken, since the query.
                if job is not None and not jobstate.is_terminal(job) and _silent(job, silent_since):
                    changed += await self._recover(session, job, now, lost_queues=everything)
        if changed:
            self._relay.notify()
        await self._expire_uploads(now)
        return changed

    async def _recover(self, session: AsyncSession, job: Job, now: datetime, *, lost_queues: bool) -> int:
        if await repo.has_unpublished(session, job.id):
            return 0  # its next message is on the way (outbox)
        request = await repo.latest_work_request(session, job.id)
        if request is None:
            message = f"the job was interrupted in stage {job.stage} before processing started"
            await self._give_up(session, job, now, message)
            return 1
        stage = _stage_of(request)
        if not lost_queues and not await repo.was_started(session, request, stage):
            return 0  # still queued
        if job.attempt >= self._settings.max_attempts:
            await self._give_up(
                session,
                job,
                now,
                f"the {stage} worker stopped responding on all {self._settings.max_attempts} attempts "
                f"(no sign of life for {self._settings.lease_seconds:.0f} s, or the service restarted)",
            )
            return 1
        job.attempt += 1
        job.heartbeat_at = now
        add_to_outbox(session, retry_of(request, attempt=job.attempt))
        log.warning("job %s: %s re-dispatched as attempt %d", job.id, request.type, job.attempt)
        return 1

    async def _give_up(self, session: AsyncSession, job: Job, now: datetime, message: str) -> None:
        session.add(
            ErrorLog(
                job_id=job.id, stage=job.stage, error_type=GAVE_UP, message=message, attempt=job.attempt, created_at=now
            )
        )
        jobstate.fail(job, job.stage, message, now)
        await drop_checkpoint(self._store, job.id)
        await webhooks.announce_end(session, job, now)
        log.error("job %s failed: %s", job.id, message)

    async def _expire_uploads(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=self._settings.upload_ttl_seconds)
        async with self._db.transaction() as session:
            expired = await repo.expired_uploads(session, cutoff)
        for job_id in expired:
            async with self._db.transaction() as session:
                job = await repo.lock_job(session, job_id)
                # The upload may have finished since the query above.
                if job is None or job.stage != Stage.UPLOAD.value or jobstate.is_terminal(job):
                    continue
                await lifecycle.delete_objects_and_rows(session, self._store, job_id)
            await lifecycle.announce_deleted(self._bus, job_id)
            log.info("job %s: upload never finished, removed", job_id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.recovery_interval_seconds)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recovery pass failed, will retry")

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="status-recovery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


def _silent(job: Job, since: datetime | None) -> bool:
    return since is None or (job.heartbeat_at or job.created_at) < since


def _stage_of(request: Envelope) -> str:
    return Stage.SFM.value if isinstance(request, ImagesValidated) else Stage.TRAIN.value
