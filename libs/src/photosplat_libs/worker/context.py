"""What a work function gets besides its trigger event: :class:`JobContext`, and the work
function's type."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pydantic import ValidationError

from photosplat_libs.errors import WorkError
from photosplat_libs.events import Envelope, ProgressMetrics, Stage
from photosplat_libs.store import ObjectStore

if TYPE_CHECKING:  # the reporter records metrics, whose module needs JobCancelled from here
    from photosplat_libs.worker.reporter import JobReporter

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check_cancelled` once the job was cancelled or deleted."""


class JobContext:
    """What a work function may use. ``progress``, ``log``, ``cancelled`` and ``check_cancelled``
    are safe to call from any thread; the rest is plain data."""

    def __init__(
        self,
        event: Envelope,
        stage: Stage,
        store: ObjectStore,
        work_dir: Path,
        delivery_count: int,
        reporter: JobReporter,
    ) -> None:
        self.event = event
        self.stage = stage
        self.store = store
        # A private temporary folder, removed when the job ends.
        self.work_dir = work_dir
        # 1 on the first delivery of this attempt; >1 after a crash or a transient failure.
        self.delivery_count = delivery_count
        self._reporter = reporter
        self._cancelled = threading.Event()
        self.cancel_requested = asyncio.Event()

    @property
    def job_id(self) -> uuid.UUID:
        return self.event.job_id

    @property
    def attempt(self) -> int:
        return self.event.attempt

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None:
        """Fraction of this stage done (0..1); figures so far, named as in :class:`ProgressMetrics`
        (e.g. ``step=500, psnr=24.1``). A figure the contract does not name fails the job here, in
        the caller, rather than travelling on as a key no consumer reads (another attempt would
        report it again: not retryable)."""
        try:
            typed = ProgressMetrics.model_validate(metrics)
        except ValidationError as error:
            wrong = ", ".join(f"{'.'.join(map(str, e['loc']))} ({e['msg']})" for e in error.errors())
            raise WorkError(f"progress figures the event contract refuses: {wrong}", retryable=False) from error
        self._reporter.progress(fraction, eta_seconds, typed)

    def log(self, *lines: str) -> None:
        """Lines for the job's log tail (shown to the user)."""
        for line in lines:
            log.info("job %s: %s", self.job_id, line)
        self._reporter.lines(tuple(lines))

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def check_cancelled(self) -> None:
        """Call often (every few hundred ms of work): raises :class:`JobCancelled` once cancelled."""
        if self._cancelled.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def cancel(self) -> None:
        """Called by the runtime on the event loop's thread."""
        self._cancelled.set()
        self.cancel_requested.set()


WorkFn = Callable[[Envelope, JobContext], Awaitable[Envelope]]
E = TypeVar("E", bound=Envelope)


def expecting(event_type: type[E], fn: Callable[[E, JobContext], Awaitable[Envelope]]) -> WorkFn:
    """Adapts a work function typed for its trigger event (e.g. ``ImagesValidated``) to :data:`WorkFn`."""

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        if not isinstance(event, event_type):
            raise WorkError(f"expected {event_type.__name__}, got {event.type}", retryable=False)
        return await fn(event, ctx)

    return work
