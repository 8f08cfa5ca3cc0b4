"""A job's progress, log lines and heartbeats, batched and published from one task."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time

from photosplat_libs.deliveries import ProgressMarks
from photosplat_libs.events import Envelope, LogLines, ProgressMetrics, Stage, StageProgress
from photosplat_libs.service import Deps
from photosplat_libs.worker.metrics import StallClock

log = logging.getLogger(__name__)

# At most one StageProgress per second however often the work reports; log lines go out in batches.
PROGRESS_INTERVAL_SECONDS = 1.0
LOG_INTERVAL_SECONDS = 0.5
LOG_BATCH_MAX = 200


class JobReporter:
    """Publishes a job's progress, log lines and heartbeats from one task, so that calls from the
    work's thread only record values and wake the task (never touch the bus themselves)."""

    def __init__(
        self, deps: Deps, trigger: Envelope, stage: Stage, heartbeat_seconds: float, marks: ProgressMarks
    ) -> None:
        self._bus, self._trigger, self._stage, self._heartbeat = deps.bus, trigger, stage, heartbeat_seconds
        self._marks = marks
        self._stall = StallClock(stage)
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._fraction: float = 0.0
        self._eta: float | None = None
        self._metrics = ProgressMetrics()
        self._progress_dirty = False
        self._lines: list[str] = []
        self._wake = asyncio.Event()
        self._stopping = False
        # StageStarted was just published: it counts as the first sign of life.
        self._progress_sent_at = self._log_sent_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"reporter-{trigger.job_id}")

    def progress(self, fraction: float, eta_seconds: float | None, metrics: ProgressMetrics) -> None:
        with self._lock:
            self._fraction = min(1.0, max(0.0, fraction)) if math.isfinite(fraction) else self._fraction
            self._eta = eta_seconds if eta_seconds is None or math.isfinite(eta_seconds) else None
            # A figure reported once stays until it is reported again (SfM steps report different ones).
            self._metrics = self._metrics.model_copy(update=metrics.reported())
            poke = not self._progress_dirty
            self._progress_dirty = True
            self._stall.note(self._fraction)
        if poke:
            self._poke()

    def lines(self, lines: tuple[str, ...]) -> None:
        with self._lock:
            poke = not self._lines
            self._lines.extend(lines)
        if poke:
            self._poke()

    def _poke(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is gone: a work thread outlived its job
            pass

    async def close(self) -> None:
        """Stop the task, then publish whatever is still pending (before the result event)."""
        self._stopping = True
        self._wake.set()
        self._stall.close()
        await self._task
        await self._flush(force=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._seconds_to_next_send())
            except TimeoutError:
                pass
            self._wake.clear()
            if not self._stopping:
                await self._flush(force=False)

    def _seconds_to_next_send(self) -> float:
        now = time.monotonic()
        due = [self._progress_sent_at + self._heartbeat]
        if self._progress_dirty:
            due.append(self._progress_sent_at + PROGRESS_INTERVAL_SECONDS)
        if self._lines:
            due.append(self._log_sent_at + LOG_INTERVAL_SECONDS)
        return max(0.0, min(due) - now)

    async def _flush(self, *, force: bool) -> None:
        now = time.monotonic()
        with self._lock:
            send_lines = bool(self._lines) and (
                force or len(self._lines) >= LOG_BATCH_MAX or now - self._log_sent_at >= LOG_INTERVAL_SECONDS
            )
            lines, self._lines = (tuple(self._lines), []) if send_lines else ((), self._lines)
            since = now - self._progress_sent_at
            send_progress = (self._progress_dirty and (force or since >= PROGRESS_INTERVAL_SECONDS)) or (
                not force and since >= self._heartbeat
            )
            if send_progress:
                self._progress_dirty = False
            fraction, eta, metrics = self._fraction, self._eta, self._metrics
        job_id, attempt = self._trigger.job_id, self._trigger.attempt
        if send_progress or force:
            # Stored before it is announced: whoever saw the progress can count on the mark.
            await self._marks.note(fraction, force=force)
        if lines:
            self._log_sent_at = now
            await self._publish(LogLines(job_id=job_id, attempt=attempt, stage=self._stage, lines=lines))
        if send_progress:
            self._progress_sent_at = now
            await self._publish(
                StageProgress(
                    job_id=job_id,
                    attempt=attempt,
                    stage=self._stage,
                    fraction=fraction,
                    eta_seconds=eta,
                    metrics=metrics,
                )
            )

    async def _publish(self, event: Envelope) -> None:
        # Progress is advisory: a lost one must not fail the job (the result publish will tell).
        try:
            await self._bus.publish(event)
        except Exception:
            log.warning("could not publish %s of job %s", event.type, event.job_id, exc_info=True)
