"""What the job's event stream (``GET /recon/jobs/{id}/events``) sends, and the id of each event.

Kinds (the SSE ``event:`` field), each with its typed ``data``:

- ``state``: where the job stands (a :class:`StateEvent`), sent when anything in it changed;
- ``log``: the job's new log lines (:class:`LogEvent`);
- ``curve``: new training curve points (:class:`CurveEvent`);
- ``final``: the job ended (:class:`FinalEvent`); the stream closes after it.

An event's id is a :class:`Cursor`: how far the client got in each of the three sources, all
derived from what the database keeps. Any replica, also after a restart, resumes a stream from the
``Last-Event-ID`` a client sends back, sending only what came later.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from photosplat_libs.db.job_statistics import CurvePoint, HeldOutScores, LatestProgress
from photosplat_status.responses import JobSummary


class EventKind(StrEnum):
    STATE = "state"
    LOG = "log"
    CURVE = "curve"
    FINAL = "final"


class StateEvent(JobSummary):
    # the newest figures the worker reported (step, loss, PSNR; SfM's counts)
    latest: LatestProgress | None
    # the held-out scores, once the scene is trained
    metrics: HeldOutScores


class FinalEvent(StateEvent):
    """The state of an ended job (DONE, FAILED or CANCELLED): the last event of the stream."""


class LogLineView(BaseModel):
    stage: str | None
    line: str
    time: datetime


class LogEvent(BaseModel):
    lines: list[LogLineView]


class CurveEvent(BaseModel):
    # True: ``points`` are the whole curve (a restarted training, or the curve was thinned);
    # False: they follow the points sent before.
    reset: bool
    points: list[CurvePoint]


_CURSOR = re.compile(r"(\d{1,18})\.(-1|\d{1,18})\.([0-9a-f]{0,32})\.([0-9a-f]{0,32})")
CURSOR_SHAPE = "LOG.STEP.CURVE.STATE"


@dataclass(frozen=True)
class Cursor:
    """How far a client got. ``log_id``: the newest log line it has (``log_lines.id``; within one
    job ids grow in commit order, because every writer of a job's lines holds the job row's lock);
    ``curve_step`` and ``curve_digest``: the last curve step it has and a digest of its points up to
    there (a curve that changed before that step is sent whole again); ``state_digest``: a digest
    of the last state it got."""

    log_id: int = 0
    curve_step: int = -1
    curve_digest: str = ""
    state_digest: str = ""

    def __str__(self) -> str:
        return f"{self.log_id}.{self.curve_step}.{self.curve_digest}.{self.state_digest}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Raises ValueError for anything this server did not issue."""
        found = _CURSOR.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"Last-Event-ID {text[:80]!r} is not an event id of this stream ({CURSOR_SHAPE})")
        log_id, step, curve, state = found.groups()
        return cls(int(log_id), int(step), curve, state)

    def after_log(self, log_id: int) -> Cursor:
        return replace(self, log_id=log_id)

    def after_curve(self, points: tuple[CurvePoint, ...]) -> Cursor:
        return replace(self, curve_step=points[-1].step if points else -1, curve_digest=curve_digest(points))

    def after_state(self, state: StateEvent) -> Cursor:
        return replace(self, state_digest=state_digest(state))


def _digest(data: bytes) -> str:
    # Tells versions apart, nothing more: collisions only cost an event not sent again.
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def state_digest(state: StateEvent) -> str:
    # A final event has exactly a state's fields: the same state gives the same digest.
    return _digest(state.model_dump_json().encode())


def curve_digest(points: tuple[CurvePoint, ...]) -> str:
    # repr of plain tuples: exact for floats, and a few times cheaper than JSON per point.
    return _digest(repr([(p.step, p.loss, p.psnr) for p in points]).encode()) if points else ""


def curve_news(curve: tuple[CurvePoint, ...], cursor: Cursor) -> CurveEvent | None:
    """The points a client at ``cursor`` lacks: those after its last step when its points are
    still the start of the curve, else the whole curve."""
    held = tuple(p for p in curve if p.step <= cursor.curve_step)
    if curve_digest(held) == cursor.curve_digest:
        new = [p for p in curve if p.step > cursor.curve_step]
        return CurveEvent(reset=False, points=new) if new else None
    return CurveEvent(reset=True, points=list(curve))
