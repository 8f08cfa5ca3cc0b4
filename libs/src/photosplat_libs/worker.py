"""The runtime of the worker services (colmap, trainer): it takes one job at a time from a work
queue and applies the reliability rules of docs/architecture.md §5 around a plain work function.

A work function gets the trigger event and a :class:`JobContext` and returns the result event
(``SfmDone``, ``TrainingDone``); the runtime stores that result, then publishes it, then acks.
Heavy code runs in a thread (``asyncio.to_thread``) and talks to the runtime only through the
context, whose ``progress``/``log``/``check_cancelled`` are safe to call from any thread.

Failures: :class:`UserError` (the photos cannot give a result) and any :class:`WorkError` with
``retryable=False`` fail the job at once; any other exception is retried through the bus's
redelivery until the queue's ``delivery_limit``; every failure is published as ``StageFailed``.
A delivery lost while the job was progressing does not count against that limit (see
:mod:`photosplat_libs.deliveries`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from fastapi import APIRouter

from photosplat_libs import deliveries, keys, topology
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.errors import UserError, WorkError
from photosplat_libs.deliveries import ProgressLedger, ProgressMarks
from photosplat_libs.events import (
    CancelRequested,
    Envelope,
    JobDeleted,
    LogLines,
    Stage,
    StageFailed,
    StageProgress,
    StageStarted,
    decode,
    encode,
)
from photosplat_libs.scratch import ScratchRoot
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

# At most one StageProgress per second however often the work reports; log lines go out in batches.
PROGRESS_INTERVAL_SECONDS = 1.0
LOG_INTERVAL_SECONDS = 0.5
LOG_BATCH_MAX = 200
# A cancelled job gets this long to notice (at its next check_cancelled) before it is abandoned.
CANCEL_GRACE_SECONDS = 2.0
# Tracebacks travel in events and end up in the database: keep the end, where the cause is.
TRACEBACK_MAX_CHARS = 20_000
_REMEMBERED_CANCELS = 10_000
# How often the worker puts Python's SIGTERM/SIGINT handlers back (see _rearm_signal_handlers).
SIGNAL_REARM_SECONDS = 1.0


class JobCancelled(Exception):
    """Raised by :meth:`JobContext.check_cancelled` once the job was cancelled or deleted."""


class _WorkerStopping(Exception):
    """The process is shutting down: the job is interrupted, not failed."""


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class _Reporter:
    """Publishes a job's progress, log lines and heartbeats from one task, so that calls from the
    work's thread only record values and wake the task (never touch the bus themselves)."""

    def __init__(
        self, deps: Deps, trigger: Envelope, stage: Stage, heartbeat_seconds: float, marks: ProgressMarks
    ) -> None:
        self._bus, self._trigger, self._stage, self._heartbeat = deps.bus, trigger, stage, heartbeat_seconds
        self._marks = marks
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._fraction: float = 0.0
        self._eta: float | None = None
        self._metrics: dict[str, float] = {}
        self._progress_dirty = False
        self._lines: list[str] = []
        self._wake = asyncio.Event()
        self._stopping = False
        # StageStarted was just published: it counts as the first sign of life.
        self._progress_sent_at = self._log_sent_at = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"reporter-{trigger.job_id}")

    def progress(self, fraction: float, eta_seconds: float | None, metrics: dict[str, float]) -> None:
        with self._lock:
            self._fraction = min(1.0, max(0.0, fraction)) if math.isfinite(fraction) else self._fraction
            self._eta = eta_seconds if eta_seconds is None or math.isfinite(eta_seconds) else None
            self._metrics = {**self._metrics, **{k: float(v) for k, v in metrics.items()}}
            poke = not self._progress_dirty
            self._progress_dirty = True
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
            fraction, eta, metrics = self._fraction, self._eta, dict(self._metrics)
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
        reporter: _Reporter,
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
        """Fraction of this stage done (0..1); metrics so far (e.g. ``iteration=500, psnr=24.1``)."""
        self._reporter.progress(fraction, eta_seconds, metrics)

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


class Worker:
    """Consumes ``queue`` one job at a time and runs ``work`` for each; satisfies the ``Service``
    protocol (``name``, ``router``, ``start``, ``stop``), so a worker service's ``create`` can return it."""

    router: APIRouter | None = None

    def __init__(
        self,
        service: str,
        stage: Stage,
        queue: QueueSpec,
        work: WorkFn,
        deps: Deps,
        *,
        worker_name: str,
        heartbeat_seconds: float = 20,
        retry_delay_seconds: float = 5.0,
        work_root: Path | None = None,
    ) -> None:
        self.name = service
        self.stage, self.queue, self.deps = stage, queue, deps
        self.worker_name = worker_name
        self._work = work
        self._heartbeat = heartbeat_seconds
        # A transient failure (store or network blip) is retried after a pause, not in a hot loop.
        self._retry_delay = retry_delay_seconds
        self._scratch = ScratchRoot(work_root, service)
        self._running: dict[uuid.UUID, tuple[JobContext, asyncio.Future[Envelope]]] = {}
        self._cancelled_jobs: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._stopping = False
        self._signal_guard: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # Before the first job: folders of workers that were killed go, this process's are locked.
        await asyncio.to_thread(self._scratch.open)
        self._signal_guard = asyncio.create_task(_keep_signal_handlers(), name=f"{self.name}-signals")
        await topology.declare_topology(self.deps.bus)
        # Cancels first, so that no job starts before this worker can hear its cancellation.
        await self.deps.bus.consume(topology.cancel_queue(self.name, self.worker_name), self._on_control)
        await self.deps.bus.consume(self.queue, self._on_work)

    async def stop(self) -> None:
        """Interrupt running jobs without acking them: the broker gives them to another worker
        when this process's connection closes."""
        self._stopping = True
        for ctx, _ in list(self._running.values()):
            ctx.cancel()
        # Jobs leave ``_running`` once their work has stopped and their scratch folder is gone.
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS + 2.0
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self._signal_guard is not None:
            self._signal_guard.cancel()
        if not self._running:
            await asyncio.to_thread(self._scratch.close)

    async def _on_control(self, event: Envelope, _delivery: Delivery) -> None:
        if not isinstance(event, (CancelRequested, JobDeleted)):
            return
        self._cancelled_jobs[event.job_id] = None
        while len(self._cancelled_jobs) > _REMEMBERED_CANCELS:
            self._cancelled_jobs.popitem(last=False)
        running = self._running.get(event.job_id)
        if running is not None:
            log.info("%s: cancelling running job %s (%s)", self.worker_name, event.job_id, event.type)
            running[0].cancel()

    async def _on_work(self, event: Envelope, delivery: Delivery) -> None:
        if self._stopping:
            await _hold_until_connection_closes()
        try:
            result = await self._result_of(event, delivery)
        except _WorkerStopping:
            await _hold_until_connection_closes()
        except JobCancelled:
            await self.deps.bus.publish(self._log_event(event, f"{self.stage}: cancelled"))
            return
        except Exception as exc:
            await self._failed(event, delivery, exc)
            return
        if result is not None:
            await self.deps.bus.publish(result)

    async def _result_of(self, event: Envelope, delivery: Delivery) -> Envelope | None:
        """The stored result of this attempt, or a new one; None if the job was cancelled before."""
        if await self._is_cancelled(event.job_id):
            log.info("%s: skipping job %s: it was cancelled", self.worker_name, event.job_id)
            await self.deps.bus.publish(self._log_event(event, f"{self.stage}: skipped, the job was cancelled"))
            return None
        stored = await self._stored_result(event)
        if stored is not None:
            log.info("%s: job %s already done, republishing its result", self.worker_name, event.job_id)
            return stored
        ledger = await deliveries.load(self.deps.store, event.job_id, self.stage, event.attempt)
        if delivery.delivery_count > 1 and ledger.may_renew():
            await self._renew(event, ledger)
            return None
        ledger.started_from = ledger.best
        await deliveries.save(self.deps.store, event.job_id, self.stage, ledger)
        await self.deps.bus.publish(
            StageStarted(job_id=event.job_id, attempt=event.attempt, stage=self.stage, worker=self.worker_name)
        )
        return await self._run(event, delivery, ledger)

    async def _renew(self, event: Envelope, ledger: ProgressLedger) -> None:
        """Put the request back as a fresh message (the caller acks this one): the deliveries the
        broker counted so far ended while the job was getting further, so they were no crash of it.
        The copy goes first, so a crash in between leaves two (a duplicate is harmless) rather than none."""
        line = (
            f"{self.stage}: the last worker stopped after reaching {ledger.best:.0%}; "
            "continuing from there without using up an attempt"
        )
        log.info("%s: job %s: %s", self.worker_name, event.job_id, line)
        await self.deps.bus.publish(event)
        ledger.renewals += 1
        ledger.started_from = ledger.best
        await deliveries.save(self.deps.store, event.job_id, self.stage, ledger)
        await self.deps.bus.publish(self._log_event(event, line))

    async def _failed(self, event: Envelope, delivery: Delivery, exc: Exception) -> None:
        """Publish StageFailed; re-raise (the bus redelivers) if another delivery may help."""
        retryable = not (isinstance(exc, WorkError) and not exc.retryable)
        at_limit = delivery.delivery_count >= self.queue.delivery_limit
        # A failure after progress at the last delivery starts afresh instead of failing the job.
        renewable = await self._renewable(event) if retryable and at_limit else None
        final = not retryable or (at_limit and renewable is None)
        log.warning(
            "%s: job %s failed in %s (delivery %d, final=%s): %r",
            self.worker_name,
            event.job_id,
            self.stage,
            delivery.delivery_count,
            final,
            exc,
        )
        tb = "".join(traceback.format_exception(exc))[-TRACEBACK_MAX_CHARS:]
        await self.deps.bus.publish(
            StageFailed(
                job_id=event.job_id,
                attempt=event.attempt,
                stage=self.stage,
                error_type=type(exc).__name__,
                message=str(exc) or type(exc).__name__,
                traceback=tb,
                retryable=retryable,
                final=final,
            )
        )
        if final:
            return
        await asyncio.sleep(self._retry_delay)
        if renewable is None:
            raise exc
        await self._renew(event, renewable)

    async def _renewable(self, event: Envelope) -> ProgressLedger | None:
        try:
            ledger = await deliveries.load(self.deps.store, event.job_id, self.stage, event.attempt)
        except Exception:
            log.warning("could not read the progress ledger of job %s", event.job_id, exc_info=True)
            return None
        return ledger if ledger.may_renew() else None

    async def _run(self, event: Envelope, delivery: Delivery, ledger: ProgressLedger) -> Envelope:
        """Run the work with a reporter and a work dir; store its result (not yet published)."""
        work_dir = await asyncio.to_thread(self._scratch.job_dir, event.job_id)
        marks = ProgressMarks(self.deps.store, event.job_id, self.stage, ledger)
        reporter = _Reporter(self.deps, event, self.stage, self._heartbeat, marks)
        ctx = JobContext(event, self.stage, self.deps.store, work_dir, delivery.delivery_count, reporter)
        task = asyncio.ensure_future(self._work(event, ctx))
        self._running[event.job_id] = (ctx, task)
        if event.job_id in self._cancelled_jobs:  # cancelled between the check and now
            ctx.cancel()
        try:
            result = await _until_done_or_cancelled(task, ctx)
            # Finished work is kept on shutdown, but not for a job the user cancelled meanwhile.
            if event.job_id in self._cancelled_jobs:
                raise JobCancelled()
            result = result.model_copy(update={"job_id": event.job_id, "attempt": event.attempt})
            await self.deps.store.put(keys.stage_result(event.job_id, self.stage), encode(result), "application/json")
            return result
        except JobCancelled:
            if self._stopping:
                raise _WorkerStopping() from None
            raise
        finally:
            try:
                await reporter.close()
                await asyncio.to_thread(self._scratch.remove, work_dir)
            finally:
                del self._running[event.job_id]
                # The work may have loaded a library that took over SIGTERM (pycolmap does).
                _rearm_signal_handlers()

    async def _is_cancelled(self, job_id: uuid.UUID) -> bool:
        return job_id in self._cancelled_jobs or await self.deps.store.exists(keys.cancel_marker(job_id))

    async def _stored_result(self, event: Envelope) -> Envelope | None:
        """The result this attempt already produced (an earlier delivery died between storing and acking)."""
        try:
            stored = decode(await self.deps.store.get(keys.stage_result(event.job_id, self.stage)))
        except ObjectNotFound:
            return None
        except ValueError:
            log.warning("ignoring unreadable stored result of job %s", event.job_id, exc_info=True)
            return None
        # A new attempt is an explicit request to run the stage again.
        return stored if stored.job_id == event.job_id and stored.attempt == event.attempt else None

    def _log_event(self, event: Envelope, line: str) -> LogLines:
        return LogLines(job_id=event.job_id, attempt=event.attempt, stage=self.stage, lines=(line,))


async def _until_done_or_cancelled(task: asyncio.Future[Envelope], ctx: JobContext) -> Envelope:
    """The work's result, or :class:`JobCancelled` within ``CANCEL_GRACE_SECONDS`` of a cancel even
    if the work never checks (its thread, if any, is then abandoned and stops at its next check)."""
    cancel = asyncio.create_task(ctx.cancel_requested.wait())
    first: set[asyncio.Future[Any]] = {task, cancel}
    try:
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # The consumer itself is going away (bus closed): the work must not outlive it.
        ctx.cancel()
        task.cancel()
        task.add_done_callback(_retrieve_exception)
        raise
    finally:
        cancel.cancel()
    if not task.done():
        await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)
    if not task.done():
        task.cancel()
        task.add_done_callback(_retrieve_exception)
        raise JobCancelled()
    if ctx.cancelled and (task.cancelled() or task.exception() is not None):
        raise JobCancelled()
    return task.result()


def _rearm_signal_handlers() -> None:
    """Put Python's own SIGTERM/SIGINT handlers back at the C level. Native libraries install
    theirs behind Python's back: importing pycolmap installs glog's failure handler, which on
    SIGTERM prints a stack and kills the process, skipping the graceful stop (the job's scratch
    folder stays, its message is not handed back cleanly). ``signal.getsignal`` still reports
    Python's handler then, so it is simply installed again."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals belong to the main thread (the runner's loop runs there)
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if callable(handler):
            signal.signal(sig, handler)


async def _keep_signal_handlers() -> None:
    """A library can take over SIGTERM in the middle of a job (pycolmap on first import), so the
    handlers are put back every second, not only between jobs."""
    while True:
        _rearm_signal_handlers()
        await asyncio.sleep(SIGNAL_REARM_SECONDS)


def _retrieve_exception(task: asyncio.Future[Any]) -> None:
    # Abandoned work: its outcome no longer matters, asyncio must not report it as unhandled.
    if not task.cancelled():
        task.exception()


async def _hold_until_connection_closes() -> NoReturn:
    """Keep the message unacked: closing the connection returns it to the queue for another worker,
    whereas a nack now could hand it straight back to this stopping worker and burn its deliveries."""
    await asyncio.Future()
    raise AssertionError("unreachable")
