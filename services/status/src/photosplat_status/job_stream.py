"""Follows one job for its event stream: reads what the database holds and sends what the client
lacks (see :mod:`photosplat_status.stream_events`), until the job ends or the stream's time is up.

The stream is woken by this process's projection (:class:`JobChanges`) and otherwise reads the
database every ``events_poll_seconds``. It ends after ``events_max_seconds`` without a final event;
the client comes back with ``Last-Event-ID`` and loses nothing. That bound is what lets a server
stop (uvicorn waits for open responses before it shuts the application down) and what spreads
long-lived streams over the replicas that come and go.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from fastapi.sse import format_sse_event
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from photosplat_libs.db.job_statistics import CurvePoint, JobStatistics
from photosplat_libs.db.models import TERMINAL, JobStatus, LogLine
from photosplat_status import repository as repo
from photosplat_status import responses
from photosplat_status.auth import Caller
from photosplat_status.changes import JobChanges
from photosplat_status.settings import StatusSettings
from photosplat_status.stream_events import (
    Cursor,
    EventKind,
    FinalEvent,
    LogEvent,
    LogLineView,
    StateEvent,
    curve_news,
    state_digest,
)

# A new stream starts with the job's newest log lines, not its whole log.
LOG_BACKLOG_LINES = 100
# Lines per log event when a client catches up; a full page is followed by the next at once.
LOG_PAGE_LINES = 500
# A comment this often on a quiet stream, so that proxies and load balancers keep it open.
KEEPALIVE_SECONDS = 15.0
# How long a client waits before it reconnects (the SSE ``retry`` field, milliseconds).
RETRY_MS = 1000


@dataclass(frozen=True)
class Frame:
    kind: EventKind
    data: BaseModel
    # where the client stands once it has this event: the event's id
    cursor: Cursor

    def encode(self) -> bytes:
        return format_sse_event(data_str=self.data.model_dump_json(), event=self.kind.value, id=str(self.cursor))


@dataclass(frozen=True)
class Snapshot:
    state: StateEvent
    stats: JobStatistics
    # the statistics as stored: unchanged text, unchanged curve (nothing to parse or compare)
    stats_json: str

    @property
    def curve(self) -> tuple[CurvePoint, ...]:
        return self.stats.curve

    @property
    def terminal(self) -> bool:
        return JobStatus(self.state.status) in TERMINAL


@dataclass
class Batch:
    """What one look at ``snapshot`` found to send."""

    snapshot: Snapshot
    cursor: Cursor
    frames: list[Frame] = field(default_factory=list)
    # more log lines wait: look again at once
    more: bool = False
    # the final event is among the frames: the stream ends
    final: bool = False

    def add(self, kind: EventKind, data: BaseModel, cursor: Cursor) -> None:
        self.cursor = cursor
        self.frames.append(Frame(kind, data, cursor))


def _log_event(lines: Sequence[LogLine]) -> LogEvent:
    return LogEvent(lines=[LogLineView(stage=line.stage, line=line.line, time=line.created_at) for line in lines])


class JobStream:
    def __init__(self, settings: StatusSettings, reads: async_sessionmaker[AsyncSession], changes: JobChanges) -> None:
        self.settings, self.reads, self.changes = settings, reads, changes

    async def snapshot(self, job_id: uuid.UUID, caller: Caller, previous: Snapshot | None = None) -> Snapshot | None:
        """The job as ``caller`` may see it; None when it does not exist (any more) or is not theirs."""
        async with self.reads() as session:
            row = await repo.status_row(session, job_id)
        if row is None or not caller.may_see(row):
            return None
        if previous is not None and previous.stats_json == row.statistics_json:
            stats = previous.stats
        else:
            stats = JobStatistics.model_validate_json(row.statistics_json)
        summary = responses.summary(row, caller.viewer_url(row, self.settings.public_base_url))
        state = StateEvent(**dict(summary), latest=stats.latest, metrics=row.held_out)
        return Snapshot(state, stats, row.statistics_json)

    async def news(
        self, job_id: uuid.UUID, snapshot: Snapshot, cursor: Cursor, *, fresh: bool, previous: Snapshot | None = None
    ) -> Batch:
        """What a client at ``cursor`` lacks: state, log lines, curve points, then (once nothing
        else waits) the final event of an ended job. ``fresh``: a new stream without an id;
        ``previous``: the snapshot the client got everything of."""
        batch = Batch(snapshot, cursor)
        if not snapshot.terminal and state_digest(snapshot.state) != cursor.state_digest:
            batch.add(EventKind.STATE, snapshot.state, batch.cursor.after_state(snapshot.state))
        async with self.reads() as session:
            if fresh:
                lines = await repo.log_backlog(session, job_id, LOG_BACKLOG_LINES)
            else:
                lines = await repo.log_lines_after(session, job_id, cursor.log_id, LOG_PAGE_LINES)
                batch.more = len(lines) == LOG_PAGE_LINES
        if lines:
            batch.add(EventKind.LOG, _log_event(lines), batch.cursor.after_log(lines[-1].id))
        same_curve = previous is not None and previous.stats_json == snapshot.stats_json
        curve = None if same_curve else curve_news(snapshot.curve, batch.cursor)
        if curve is not None:
            batch.add(EventKind.CURVE, curve, batch.cursor.after_curve(snapshot.curve))
        ended = snapshot.terminal and not batch.more
        if ended and (batch.frames or state_digest(snapshot.state) != batch.cursor.state_digest):
            final = FinalEvent(**dict(snapshot.state))
            batch.add(EventKind.FINAL, final, batch.cursor.after_state(final))
            batch.final = True
        return batch

    async def follow(self, job_id: uuid.UUID, caller: Caller, first: Batch) -> AsyncIterator[bytes]:
        """The stream's bytes: ``first`` (the request already looked), then every change."""
        yield format_sse_event(comment=f"events of job {job_id}", retry=RETRY_MS)
        deadline = time.monotonic() + self.settings.events_max_seconds
        last_sent = time.monotonic()
        batch, seen = first, first.snapshot
        with self.changes.watch(job_id) as woken:
            while True:
                for frame in batch.frames:
                    yield frame.encode()
                now = time.monotonic()
                if batch.final or now >= deadline:
                    return
                if batch.frames:
                    last_sent = now
                elif now - last_sent >= KEEPALIVE_SECONDS:
                    yield format_sse_event(comment="keep-alive")
                    last_sent = now
                if not batch.more:
                    await self._pause(woken, min(self.settings.events_poll_seconds, deadline - now))
                snapshot = await self.snapshot(job_id, caller, seen)
                if snapshot is None:
                    return  # deleted: a reconnect answers 404
                batch = await self.news(job_id, snapshot, batch.cursor, fresh=False, previous=seen)
                seen = snapshot

    @staticmethod
    async def _pause(woken: asyncio.Event, seconds: float) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), seconds)
        # Cleared before the next read: a change committed while it reads wakes the next pause.
        woken.clear()
