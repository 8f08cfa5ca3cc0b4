"""What the worker runtime records in the metrics (photosplat_libs.observability.metrics): how long
each run of the work took and how it ended, failures and retries, GPU seconds, and how long the
running job's progress has stood still."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from photosplat_libs.events import Envelope, Stage, TrainingDone
from photosplat_libs.observability.metrics import (
    GPU_SECONDS,
    STAGE_DURATION,
    STAGE_FAILURES,
    STAGE_RETRIES,
    WORKER_JOBS_RUNNING,
    WORKER_PROGRESS_STALLED,
)
from photosplat_libs.worker.context import JobCancelled


def declare(stage: Stage) -> None:
    """Export the stage's series at 0 from the start: a dashboard then shows an idle worker, not
    no data, and ``increase()`` sees the first failure."""
    WORKER_JOBS_RUNNING.labels(stage.value)
    WORKER_PROGRESS_STALLED.labels(stage.value)
    STAGE_RETRIES.labels(stage.value)
    for final in ("true", "false"):
        STAGE_FAILURES.labels(stage.value, final)


@contextmanager
def stage_run(stage: Stage, stopping: Callable[[], bool]) -> Iterator[None]:
    """Times one run of the work: ``done``, ``failed``, ``cancelled`` (by the user), or
    ``interrupted`` (the worker is shutting down or its consumer went away)."""
    running = WORKER_JOBS_RUNNING.labels(stage.value)
    running.inc()
    started = time.monotonic()
    outcome = "failed"
    try:
        yield
        outcome = "done"
    except JobCancelled:
        outcome = "interrupted" if stopping() else "cancelled"
        raise
    except asyncio.CancelledError:
        outcome = "interrupted"
        raise
    finally:
        running.dec()
        STAGE_DURATION.labels(stage.value, outcome).observe(time.monotonic() - started)


def stage_failed(stage: Stage, *, final: bool) -> None:
    STAGE_FAILURES.labels(stage.value, "true" if final else "false").inc()
    if not final:
        STAGE_RETRIES.labels(stage.value).inc()


def result_produced(stage: Stage, result: Envelope) -> None:
    """Called once per result the work produced (a republished stored result is not counted again)."""
    if isinstance(result, TrainingDone) and result.timings is not None and result.timings.gpu_seconds:
        GPU_SECONDS.labels(stage.value).inc(result.timings.gpu_seconds)


class StallClock:
    """Seconds since the job's progress last advanced, exported while the job runs. The worker's
    heartbeats keep coming from a job whose work hangs; this is what shows it."""

    def __init__(self, stage: Stage) -> None:
        self._gauge = WORKER_PROGRESS_STALLED.labels(stage.value)
        self._last_advance = time.monotonic()
        self._fraction = -1.0
        self._gauge.set_function(self.seconds)

    def seconds(self) -> float:
        return time.monotonic() - self._last_advance

    def note(self, fraction: float) -> None:
        if fraction > self._fraction:
            self._fraction, self._last_advance = fraction, time.monotonic()

    def close(self) -> None:
        self._gauge.set_function(lambda: 0.0)
