"""The status service's two consumers: every event of the jobs (projected by
:func:`photosplat_status.projection.project`, retried with a growing pause) and the dead letters of
every queue (a work request that died in its worker's queue fails its job; anything else is
projected now)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import topology
from photosplat_libs.bus import Death, Delivery
from photosplat_libs.db import Database
from photosplat_libs.db.models import ErrorLog, Job
from photosplat_libs.events import Envelope, ImagesValidated, SfmDone, Stage
from photosplat_libs.store import ObjectStore
from photosplat_status import jobstate
from photosplat_status import repository as repo
from photosplat_status.projection import drop_checkpoint, project
from photosplat_status.webhooks import outbox as webhooks

log = logging.getLogger(__name__)

WORKER_CRASHED = "WorkerCrashed"
RETRY_BASE_SECONDS = 0.2
RETRY_MAX_SECONDS = 20.0


# The stage whose worker consumes each work request, and how often its queue delivers one.
_WORK_QUEUES: dict[type[Envelope], tuple[Stage, topology.QueueSpec]] = {
    ImagesValidated: (Stage.SFM, topology.COLMAP_WORK),
    SfmDone: (Stage.TRAIN, topology.TRAINER_WORK),
}


async def on_dead_letter(db: Database, store: ObjectStore, event: Envelope, death: Death | None) -> None:
    """A message some queue gave up on. A work request that died in its worker's queue failed the
    job: the worker stopped on every delivery without getting further (see
    photosplat_libs.deliveries). Anything else died in status's own queue (e.g. the database was
    down through every delivery), so it is applied now (projection is idempotent)."""
    work = _WORK_QUEUES.get(type(event))
    if work is not None and death is not None and death.queue == work[1].name:
        stage, queue = work
        log.error(
            "job %s: %s dead-lettered by %s (%s); recording it as the job's failure",
            event.job_id,
            event.type,
            death.queue,
            death.reason,
        )
        async with db.transaction() as session:
            job = await repo.lock_job(session, event.job_id)
            if job is not None:
                await _record_crash(session, store, job, event, stage, _reason(stage, queue, death))
                return
    await project(db, store, event)


def _reason(stage: Stage, queue: topology.QueueSpec, death: Death) -> str:
    if death.reason == "delivery_limit":
        return (
            f"the {stage.value} work request was dead-lettered after {queue.delivery_limit} deliveries: "
            "its worker stopped on each without getting further"
        )
    return f"the {stage.value} work request was dead-lettered ({death.reason})"


async def _record_crash(
    session: AsyncSession, store: ObjectStore, job: Job, event: Envelope, stage: Stage, message: str
) -> None:
    # A terminal job has its outcome already (a worker that rejects a job reports StageFailed
    # first); the same dead letter twice is recorded once.
    if jobstate.is_terminal(job) or await repo.has_error(session, job.id, WORKER_CRASHED, event.attempt):
        return
    # Recovery may already have sent a later attempt: then this one is history, not the end.
    final = event.attempt >= job.attempt
    now = datetime.now(timezone.utc)
    session.add(
        ErrorLog(
            job_id=job.id,
            stage=stage.value,
            error_type=WORKER_CRASHED,
            message=message,
            attempt=event.attempt,
            final=final,
            created_at=now,
        )
    )
    if final:
        jobstate.fail(job, stage.value, message, now)
        await drop_checkpoint(store, job.id)
        await webhooks.announce_end(session, job, now)


def _with_backoff(
    apply: Callable[[Envelope, Delivery], Awaitable[None]],
) -> Callable[[Envelope, Delivery], Awaitable[None]]:
    """The bus redelivers a failed message at once; waiting a little longer after each failure
    spreads the delivery limit over about a minute, so a short database outage does not send
    every event in flight to the dead letters."""

    async def consume(event: Envelope, delivery: Delivery) -> None:
        try:
            await apply(event, delivery)
        except Exception:
            await asyncio.sleep(min(RETRY_BASE_SECONDS * 2 ** (delivery.delivery_count - 1), RETRY_MAX_SECONDS))
            raise

    return consume


def _nobody(_job_id: uuid.UUID) -> None:
    pass


def event_consumer(
    db: Database, store: ObjectStore, changed: Callable[[uuid.UUID], None] = _nobody
) -> Callable[[Envelope, Delivery], Awaitable[None]]:
    """``changed`` hears of each job after its event committed (it wakes the job's event streams)."""

    async def consume(event: Envelope, _delivery: Delivery) -> None:
        await project(db, store, event)
        changed(event.job_id)

    return _with_backoff(consume)


def dead_letter_consumer(
    db: Database, store: ObjectStore, changed: Callable[[uuid.UUID], None] = _nobody
) -> Callable[[Envelope, Delivery], Awaitable[None]]:
    async def consume(event: Envelope, delivery: Delivery) -> None:
        await on_dead_letter(db, store, event, delivery.death)
        changed(event.job_id)

    return _with_backoff(consume)
