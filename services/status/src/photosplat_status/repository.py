"""The queries of the status service. Functions take the session of the edge; none commits."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Row, Text, bindparam, cast, delete, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from photosplat_libs.db.models import (
    TERMINAL,
    AdminSession,
    ErrorLog,
    Job,
    JobStatus,
    LogLine,
    OutboxMessage,
    ProcessedEvent,
)
from photosplat_libs.events import (
    Envelope,
    ImagesValidated,
    SfmDone,
    SfmTimings,
    StageStarted,
    TrainingTimings,
    decode,
)

# The events that ask a worker to do a stage: what recovery sends again.
WORK_REQUEST_TYPES = (ImagesValidated.__name__, SfmDone.__name__)
UNFINISHED = tuple(s.value for s in JobStatus if s not in TERMINAL)
# What a status answer shows of a job (see responses.StatusColumns): not the outputs, options and
# uploads, and the statistics as the JSON text the database keeps. The status queries are built
# once: building a statement and its cache key cost more than running it.
_STATUS_QUERY = select(
    *(Job.id, Job.owner_hash, Job.pub_key_sealed, Job.status, Job.stage, Job.progress, Job.eta_seconds),
    *(Job.eta_at, Job.error_message, Job.error_stage, Job.created_at, Job.started_at, Job.finished_at, Job.attempt),
    *(Job.processing_time_seconds, Job.image_count, Job.registered_image_count, Job.gaussian_count),
    *(Job.file_sizes, Job.held_out, cast(Job.statistics, Text).label("statistics_json")),
).where(Job.id == bindparam("job_id"))
_TAIL_QUERY = (
    select(LogLine.line)
    .where(LogLine.job_id == bindparam("job_id"))
    .order_by(LogLine.id.desc())
    .limit(bindparam("lines"))
)
# Never read by a listing: the JSON a summary does not show (statistics hold the training curve).
_NOT_LISTED = (Job.statistics, Job.outputs, Job.options, Job.uploads)
# The timings of every job, for the dashboard's totals: read out of the JSON by the database, so
# that the curves stay where they are.
_TIMINGS_QUERY = select(
    type_coerce(Job.statistics[("sfm", "timings")], JSON), type_coerce(Job.statistics["timings"], JSON)
)


async def lock_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """The job, locked for this transaction on Postgres, so that replicas (and the API) apply their
    changes one after another instead of overwriting each other (SQLite serialises writers anyway)."""
    return await session.scalar(select(Job).where(Job.id == job_id).with_for_update())


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


async def status_row(session: AsyncSession, job_id: uuid.UUID) -> Row[Any] | None:
    return (await session.execute(_STATUS_QUERY, {"job_id": job_id})).one_or_none()


async def is_processed(session: AsyncSession, event_id: uuid.UUID) -> bool:
    found = await session.scalar(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event_id))
    return found is not None


def add_processed(session: AsyncSession, event: Envelope, received_at: datetime) -> None:
    session.add(
        ProcessedEvent(
            event_id=event.event_id,
            job_id=event.job_id,
            type=event.type,
            attempt=event.attempt,
            payload=event.model_dump(mode="json"),
            occurred_at=event.occurred_at,
            received_at=received_at,
        )
    )


async def has_error(session: AsyncSession, job_id: uuid.UUID, error_type: str, attempt: int) -> bool:
    query = select(ErrorLog.id).where(
        ErrorLog.job_id == job_id, ErrorLog.error_type == error_type, ErrorLog.attempt == attempt
    )
    return (await session.scalar(query.limit(1))) is not None


async def log_tail(session: AsyncSession, job_id: uuid.UUID, lines: int) -> list[str]:
    return list(reversed((await session.scalars(_TAIL_QUERY, {"job_id": job_id, "lines": lines})).all()))


async def errors_of(session: AsyncSession, job_id: uuid.UUID) -> Sequence[ErrorLog]:
    query = select(ErrorLog).where(ErrorLog.job_id == job_id).order_by(ErrorLog.id)
    return (await session.scalars(query)).all()


async def list_jobs(
    session: AsyncSession, *, owner_hash: str | None, status: str | None, limit: int, offset: int
) -> tuple[Sequence[Job], int]:
    """Newest first; ``owner_hash`` None means every job (admin)."""
    where = []
    if owner_hash is not None:
        where.append(Job.owner_hash == owner_hash)
    if status is not None:
        where.append(Job.status == status)
    total = await session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    query = (
        select(Job)
        .options(*(defer(column, raiseload=True) for column in _NOT_LISTED))
        .where(*where)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(query)).all(), total


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: count for status, count in rows.all()}


async def all_job_timings(session: AsyncSession) -> list[tuple[SfmTimings | None, TrainingTimings | None]]:
    """The SfM and training timings of every job, for the dashboard's totals."""
    return [
        (
            SfmTimings.model_validate(sfm) if sfm is not None else None,
            TrainingTimings.model_validate(training) if training is not None else None,
        )
        for sfm, training in (await session.execute(_TIMINGS_QUERY)).all()
    ]


async def errors_of_jobs(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[ErrorLog]]:
    found: dict[uuid.UUID, list[ErrorLog]] = {job_id: [] for job_id in job_ids}
    if job_ids:
        query = select(ErrorLog).where(ErrorLog.job_id.in_(job_ids)).order_by(ErrorLog.id)
        for error in (await session.scalars(query)).all():
            found[error.job_id].append(error)
    return found


async def delete_job_rows(session: AsyncSession, job_id: uuid.UUID) -> None:
    """Every row of the job. Explicit rather than relying on ON DELETE CASCADE: the outbox has no
    foreign key (it also carries events of jobs that do not exist yet)."""
    for model in (LogLine, ErrorLog, ProcessedEvent):
        await session.execute(delete(model).where(model.job_id == job_id))
    await session.execute(delete(OutboxMessage).where(OutboxMessage.job_id == job_id))
    await session.execute(delete(Job).where(Job.id == job_id))


async def stale_jobs(session: AsyncSession, silent_since: datetime | None) -> Sequence[Job]:
    """Unfinished jobs past their upload whose last sign of life is older than ``silent_since``
    (None: all of them)."""
    query = select(Job).where(Job.status.in_(UNFINISHED), Job.stage != "upload").order_by(Job.created_at)
    if silent_since is not None:
        query = query.where(func.coalesce(Job.heartbeat_at, Job.created_at) < silent_since)
    return (await session.scalars(query)).all()


async def expired_uploads(session: AsyncSession, created_before: datetime) -> Sequence[uuid.UUID]:
    query = select(Job.id).where(
        Job.status == JobStatus.PENDING, Job.stage == "upload", Job.created_at < created_before
    )
    return (await session.scalars(query)).all()


async def latest_work_request(session: AsyncSession, job_id: uuid.UUID) -> Envelope | None:
    """The newest ImagesValidated / SfmDone of the job that status has seen, else the newest one that
    was published from the outbox (in embedded mode a restart may have lost it before status did)."""
    query = (
        select(ProcessedEvent.payload)
        .where(ProcessedEvent.job_id == job_id, ProcessedEvent.type.in_(WORK_REQUEST_TYPES))
        .order_by(ProcessedEvent.occurred_at.desc())
        .limit(1)
    )
    payload = await session.scalar(query)
    if payload is not None:
        return decode_payload(payload)
    published = select(OutboxMessage.payload).where(
        OutboxMessage.job_id == job_id, OutboxMessage.published_at.is_not(None)
    )
    candidates = [decode(row) for row in (await session.scalars(published)).all()]
    requests = [e for e in candidates if e.type in WORK_REQUEST_TYPES]
    return max(requests, key=lambda e: e.occurred_at, default=None)


async def has_unpublished(session: AsyncSession, job_id: uuid.UUID) -> bool:
    query = select(OutboxMessage.id).where(OutboxMessage.job_id == job_id, OutboxMessage.published_at.is_(None))
    return (await session.scalar(query.limit(1))) is not None


async def was_started(session: AsyncSession, request: Envelope, stage: str) -> bool:
    """Whether a worker picked ``request`` (or a later attempt of it) up: StageStarted of its stage."""
    query = select(ProcessedEvent.payload).where(
        ProcessedEvent.job_id == request.job_id,
        ProcessedEvent.type == StageStarted.__name__,
        ProcessedEvent.attempt >= request.attempt,
    )
    return any(payload.get("stage") == stage for payload in (await session.scalars(query)).all())


def add_admin_session(session: AsyncSession, id_hash: str, now: datetime, expires_at: datetime) -> None:
    session.add(AdminSession(id_hash=id_hash, created_at=now, expires_at=expires_at))


async def admin_session_expiry(session: AsyncSession, id_hash: str) -> datetime | None:
    return await session.scalar(select(AdminSession.expires_at).where(AdminSession.id_hash == id_hash))


async def delete_admin_session(session: AsyncSession, id_hash: str) -> None:
    await session.execute(delete(AdminSession).where(AdminSession.id_hash == id_hash))


async def delete_expired_admin_sessions(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))


def decode_payload(payload: dict[str, object]) -> Envelope:
    return decode(json.dumps(payload))


async def log_backlog(session: AsyncSession, job_id: uuid.UUID, lines: int) -> list[LogLine]:
    """The job's newest ``lines`` log lines, oldest first."""
    query = select(LogLine).where(LogLine.job_id == job_id).order_by(LogLine.id.desc()).limit(lines)
    return list(reversed((await session.scalars(query)).all()))


async def log_lines_after(session: AsyncSession, job_id: uuid.UUID, after_id: int, lines: int) -> Sequence[LogLine]:
    """Up to ``lines`` of the job's log lines after the one with id ``after_id``, oldest first."""
    query = (
        select(LogLine).where(LogLine.job_id == job_id, LogLine.id > after_id).order_by(LogLine.id).limit(lines)
    )
    return (await session.scalars(query)).all()
