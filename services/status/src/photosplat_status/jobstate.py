"""The rules every change of a job row follows: state only moves forward.

- a terminal status (DONE, FAILED, CANCELLED) never changes;
- the stage never goes back (upload < validate < sfm < train < export);
- progress only grows within one stage and attempt; a later attempt of the stage may restart it;
- times only move forward (a late event carries an older ``occurred_at``).
"""

from __future__ import annotations

from datetime import datetime

from photosplat_libs.db.models import TERMINAL, Job, JobStatus
from photosplat_libs.events import STAGE_ORDER, Stage

def is_terminal(job: Job) -> bool:
    return job.status in TERMINAL


def _restart_progress(job: Job, attempt: int) -> None:
    job.progress = 0.0
    job.eta_seconds = job.eta_at = None
    job.progress_attempt = attempt


def enter(job: Job, stage: Stage, attempt: int) -> bool:
    """Whether an event of ``stage``/``attempt`` is current for the job: it moves the job to a later
    stage, or restarts the stage for a later attempt (progress back to 0), or is the same stage and
    attempt. False for an event of an earlier stage or an older attempt: it must change nothing."""
    here = STAGE_ORDER[Stage(job.stage)]
    there = STAGE_ORDER[stage]
    if there > here:
        job.stage = stage.value
        _restart_progress(job, attempt)
        return True
    if there < here:
        return False
    if attempt > job.progress_attempt:
        _restart_progress(job, attempt)
        return True
    return attempt == job.progress_attempt


def set_running(job: Job, at: datetime) -> None:
    if job.status == JobStatus.PENDING:
        job.status = JobStatus.RUNNING
    if job.started_at is None:
        job.started_at = at


def heartbeat(job: Job, at: datetime) -> None:
    if job.heartbeat_at is None or at > job.heartbeat_at:
        job.heartbeat_at = at


def finish(job: Job, status: JobStatus, at: datetime) -> None:
    """Move a job that is not terminal yet to a terminal status."""
    job.status = status
    job.finished_at = at
    job.eta_seconds = job.eta_at = None
    begun = job.started_at or job.created_at
    job.processing_time_seconds = max(0.0, (at - begun).total_seconds())


def fail(job: Job, stage: str, message: str, at: datetime) -> None:
    finish(job, JobStatus.FAILED, at)
    job.error_message = message
    job.error_stage = stage
