"""The projection of every event into the job rows (docs/architecture.md §3-§5).

The edge (:func:`project`) owns the transaction: it locks the job row, skips an event it has
applied before (by event id), records it and calls the one handler registered for its type.
Handlers are plain ``async (event, ctx)`` functions that follow :mod:`photosplat_status.jobstate`,
so late, duplicated or reordered events change nothing they should not.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import keys
from photosplat_libs.db import Database
from photosplat_libs.db.job_statistics import CurvePoint, LatestProgress, SfmSummary
from photosplat_libs.db.models import ErrorLog, Job, JobStatus, LogLine
from photosplat_libs.events import (
    CancelRequested,
    Envelope,
    ImagesValidated,
    JobDeleted,
    JobSubmitted,
    LogLines,
    ProgressMetrics,
    SfmDone,
    Stage,
    StageFailed,
    StageProgress,
    StageStarted,
    TrainingDone,
)
from photosplat_libs.store import ObjectStore
from photosplat_status import jobstate
from photosplat_status import repository as repo
from photosplat_status.webhooks import outbox as webhooks

log = logging.getLogger(__name__)

MAX_CURVE_POINTS = 400
MAX_LOG_LINE_CHARS = 2000


@dataclass
class Projecting:
    session: AsyncSession
    job: Job
    now: datetime


Handler = Callable[[Any, Projecting], Awaitable[None]]


async def record_only(event: Envelope, ctx: Projecting) -> None:
    """Kept in the events table (audit trail); the row already says what the event means."""


async def on_images_validated(event: ImagesValidated, ctx: Projecting) -> None:
    job = ctx.job
    if jobstate.is_terminal(job):
        return
    job.image_count = len(event.images)
    jobstate.enter(job, Stage.SFM, event.attempt)
    # The lease of a queued job counts from its dispatch.
    jobstate.heartbeat(job, event.occurred_at)


async def on_stage_started(event: StageStarted, ctx: Projecting) -> None:
    job = ctx.job
    if jobstate.is_terminal(job):
        return
    jobstate.heartbeat(job, event.occurred_at)
    if jobstate.enter(job, event.stage, event.attempt):
        jobstate.set_running(job, event.occurred_at)
        if event.worker:
            job.statistics = job.statistics.replaced(worker=event.worker)


async def on_stage_progress(event: StageProgress, ctx: Projecting) -> None:
    job = ctx.job
    if jobstate.is_terminal(job):
        return
    jobstate.heartbeat(job, event.occurred_at)
    if not jobstate.enter(job, event.stage, event.attempt) or event.fraction < job.progress:
        return
    jobstate.set_running(job, event.occurred_at)
    job.progress = event.fraction
    job.eta_seconds = event.eta_seconds
    job.eta_at = event.occurred_at if event.eta_seconds is not None else None
    reported = event.metrics.reported()
    if reported:
        latest = LatestProgress(stage=event.stage, **reported)
        job.statistics = job.statistics.replaced(latest=latest, curve=_extended_curve(job, event.metrics))


def _extended_curve(job: Job, metrics: ProgressMetrics) -> tuple[CurvePoint, ...]:
    curve = job.statistics.curve
    if metrics.step is None or (metrics.loss is None and metrics.psnr is None):
        return curve
    point = CurvePoint(step=metrics.step, loss=metrics.loss, psnr=metrics.psnr)
    # A restarted attempt resumes from a checkpoint: its points replace those from that step on.
    kept = [p for p in curve if p.step < point.step] + [point]
    if len(kept) > MAX_CURVE_POINTS:
        # Halve the resolution rather than drop the start: the whole run stays visible.
        kept = kept[:-1][::2] + [kept[-1]]
    return tuple(kept)


async def on_log_lines(event: LogLines, ctx: Projecting) -> None:
    stage = event.stage.value if event.stage else None
    for line in event.lines:
        ctx.session.add(
            LogLine(job_id=event.job_id, stage=stage, line=line[:MAX_LOG_LINE_CHARS], created_at=event.occurred_at)
        )


async def on_sfm_done(event: SfmDone, ctx: Projecting) -> None:
    job = ctx.job
    if jobstate.is_terminal(job):
        return
    job.registered_image_count = event.registered_images
    if not job.image_count:
        # A video capture: its photos are the frames SfM chose.
        job.image_count = event.total_images
    sfm = SfmSummary(
        registered_images=event.registered_images,
        total_images=event.total_images,
        points=event.points,
        reprojection_error=event.reprojection_error,
        **dict(event.stats),
    )
    job.statistics = job.statistics.replaced(sfm=sfm)
    # SfmDone is the trainer's work request: the job now waits for (or runs) training.
    jobstate.enter(job, Stage.TRAIN, event.attempt)
    jobstate.heartbeat(job, event.occurred_at)


async def on_training_done(event: TrainingDone, ctx: Projecting) -> None:
    job = ctx.job
    if jobstate.is_terminal(job):
        return
    jobstate.enter(job, Stage.EXPORT, event.attempt)
    job.progress = 1.0
    job.gaussian_count = event.gaussian_count
    job.file_sizes = {e.format: e.bytes for e in event.exports}
    job.outputs = {e.format: e.key for e in event.exports}
    job.held_out = job.held_out.replaced(psnr=event.psnr, ssim=event.ssim)
    job.statistics = job.statistics.replaced(
        timings=event.timings, thumbnail_key=event.thumbnail_key or None, home_view=event.home_view
    )
    jobstate.set_running(job, event.occurred_at)
    jobstate.finish(job, JobStatus.DONE, event.occurred_at)


async def on_stage_failed(event: StageFailed, ctx: Projecting) -> None:
    # Every failure is kept, also a retried one and one that arrives after the job ended.
    ctx.session.add(
        ErrorLog(
            job_id=event.job_id,
            stage=event.stage.value,
            error_type=event.error_type[:200],
            message=event.message,
            traceback=event.traceback,
            attempt=event.attempt,
            final=event.final,
            created_at=event.occurred_at,
        )
    )
    # The log tail is what a user reads first: the failure belongs there too.
    outcome = "" if event.final else ", will retry"
    ctx.session.add(
        LogLine(
            job_id=event.job_id,
            stage=event.stage.value,
            line=f"{event.stage.value} failed (attempt {event.attempt}{outcome}): {event.message}"[:MAX_LOG_LINE_CHARS],
            created_at=event.occurred_at,
        )
    )
    job = ctx.job
    if jobstate.is_terminal(job):
        return
    jobstate.heartbeat(job, event.occurred_at)
    if event.final:
        jobstate.fail(job, event.stage.value, event.message, event.occurred_at)


HANDLERS: dict[type[Envelope], Handler] = {
    JobSubmitted: record_only,
    ImagesValidated: on_images_validated,
    StageStarted: on_stage_started,
    StageProgress: on_stage_progress,
    LogLines: on_log_lines,
    SfmDone: on_sfm_done,
    TrainingDone: on_training_done,
    StageFailed: on_stage_failed,
    CancelRequested: record_only,
    JobDeleted: record_only,
}


async def project(db: Database, store: ObjectStore, event: Envelope) -> None:
    """Apply one event exactly once. Raising leaves the message for redelivery."""
    now = datetime.now(timezone.utc)
    async with db.transaction() as session:
        job = await repo.lock_job(session, event.job_id)
        if job is not None:
            if await repo.is_processed(session, event.event_id):
                return
            repo.add_processed(session, event, now)
            was_terminal = jobstate.is_terminal(job)
            await HANDLERS[type(event)](event, Projecting(session, job, now))
            if jobstate.is_terminal(job) and (not was_terminal or _may_follow_a_checkpoint(event)):
                await drop_checkpoint(store, job.id)
            if jobstate.is_terminal(job) and not was_terminal:
                await webhooks.announce_end(session, job, now)
            return
    await forget_deleted(store, event)


async def drop_checkpoint(store: ObjectStore, job_id: uuid.UUID) -> None:
    """An ended job never resumes: its training checkpoint (hundreds of MB) goes. Called before
    the commit that ends the job, so a failure leaves the event to be applied again."""
    await store.delete(keys.train_checkpoint(job_id))


def _may_follow_a_checkpoint(event: Envelope) -> bool:
    """An event of a trainer that was still stopping when its job ended (cancel): it may have saved
    one more checkpoint before it noticed, and it reports after that. The cancel itself arrives
    here as CancelRequested (the API ended the job)."""
    return isinstance(event, CancelRequested) or getattr(event, "stage", None) == Stage.TRAIN


async def forget_deleted(store: ObjectStore, event: Envelope) -> None:
    """Ingest creates every job row before its first event, so a missing row means the job was
    deleted. A worker that was still running may have written objects since: remove them again."""
    removed = await store.delete_prefix(keys.job_prefix(event.job_id))
    log.info("ignored %s of deleted job %s (removed %d late objects)", event.type, event.job_id, removed)
