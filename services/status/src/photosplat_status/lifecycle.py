"""What clients (and recovery) do to a whole job: cancel it, delete it."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import keys
from photosplat_libs.bus import Bus
from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.db.outbox import add_to_outbox
from photosplat_libs.events import CancelRequested, JobDeleted
from photosplat_libs.store import ObjectStore
from photosplat_status import jobstate
from photosplat_status import repository as repo
from photosplat_status.webhooks import outbox as webhooks

log = logging.getLogger(__name__)


async def cancel(session: AsyncSession, store: ObjectStore, job: Job, now: datetime) -> None:
    """The caller checked the job is not terminal. The marker is written before the commit, so a
    worker that picks the job up after it sees it even if CancelRequested has not reached it yet."""
    jobstate.finish(job, JobStatus.CANCELLED, now)
    await store.put(keys.cancel_marker(job.id), b"cancelled\n", "text/plain")
    add_to_outbox(session, CancelRequested(job_id=job.id, attempt=job.attempt))
    await webhooks.announce_end(session, job, now)


async def delete_objects_and_rows(session: AsyncSession, store: ObjectStore, job_id: uuid.UUID) -> None:
    """Rows go in the caller's transaction; objects are removed before it commits, so a failure
    leaves the job visible (and the delete repeatable) rather than rows pointing at nothing."""
    await repo.delete_job_rows(session, job_id)
    await store.delete_prefix(keys.job_prefix(job_id))


async def announce_deleted(bus: Bus, job_id: uuid.UUID) -> None:
    """Published directly after the commit, not via the outbox: the outbox rows of the job are gone
    with it, and a stored JobDeleted would be the one row of the job that survives. Losing this
    message is harmless: a worker still running then publishes events of a job without a row,
    and status deletes whatever that worker wrote (see projection.forget_deleted)."""
    try:
        await bus.publish(JobDeleted(job_id=job_id))
    except Exception:
        log.exception("job %s deleted, but JobDeleted could not be published", job_id)
