"""The consume loop: :class:`Worker` takes one job at a time from its queue, runs the work function
with a :class:`JobContext`, stores and publishes the result, and handles cancels, failures and
redeliveries (see the package's docstring)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import NoReturn

from fastapi import APIRouter

from photosplat_libs import deliveries, keys, topology
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.deliveries import ProgressLedger, ProgressMarks
from photosplat_libs.errors import WorkError
from photosplat_libs.events import (
    CancelRequested,
    Envelope,
    JobDeleted,
    LogLines,
    Stage,
    StageFailed,
    StageStarted,
    decode,
    encode,
)
from photosplat_libs.observability.logs import log_context
from photosplat_libs.observability.queues import QueueGauges
from photosplat_libs.scratch import ScratchRoot
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectNotFound
from photosplat_libs.worker import metrics
from photosplat_libs.worker.cancelling import CANCEL_GRACE_SECONDS, until_done_or_cancelled
from photosplat_libs.worker.context import JobCancelled, JobContext, WorkFn
from photosplat_libs.worker.reporter import JobReporter
from photosplat_libs.worker.signals import keep_signal_handlers, rearm_signal_handlers

log = logging.getLogger(__name__)

# Tracebacks travel in events and end up in the database: keep the end, where the cause is.
TRACEBACK_MAX_CHARS = 20_000
_REMEMBERED_CANCELS = 10_000


class _WorkerStopping(Exception):
    """The process is shutting down: the job is interrupted, not failed."""


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


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
        self._queue_gauges = QueueGauges(deps.bus, [queue.name])
        metrics.declare(stage)

    async def start(self) -> None:
        # Before the first job: folders of workers that were killed go, this process's are locked.
        await asyncio.to_thread(self._scratch.open)
        self._signal_guard = asyncio.create_task(keep_signal_handlers(), name=f"{self.name}-signals")
        await topology.declare_topology(self.deps.bus)
        # Cancels first, so that no job starts before this worker can hear its cancellation.
        await self.deps.bus.consume(topology.cancel_queue(self.name, self.worker_name), self._on_control)
        await self.deps.bus.consume(self.queue, self._on_work)
        self._queue_gauges.start()

    async def stop(self) -> None:
        """Interrupt running jobs without acking them: the broker gives them to another worker
        when this process's connection closes."""
        self._stopping = True
        await self._queue_gauges.stop()
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
        with log_context(job_id=event.job_id, stage=self.stage, attempt=event.attempt):
            await self._handle_work(event, delivery)

    async def _handle_work(self, event: Envelope, delivery: Delivery) -> None:
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
        metrics.stage_failed(self.stage, final=final)
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
        reporter = JobReporter(self.deps, event, self.stage, self._heartbeat, marks)
        ctx = JobContext(event, self.stage, self.deps.store, work_dir, delivery.delivery_count, reporter)
        task = asyncio.ensure_future(self._work(event, ctx))
        self._running[event.job_id] = (ctx, task)
        if event.job_id in self._cancelled_jobs:  # cancelled between the check and now
            ctx.cancel()
        try:
            with metrics.stage_run(self.stage, stopping=lambda: self._stopping):
                result = await until_done_or_cancelled(task, ctx)
            # Finished work is kept on shutdown, but not for a job the user cancelled meanwhile.
            if event.job_id in self._cancelled_jobs:
                raise JobCancelled()
            result = result.model_copy(update={"job_id": event.job_id, "attempt": event.attempt})
            await self.deps.store.put(keys.stage_result(event.job_id, self.stage), encode(result), "application/json")
            metrics.result_produced(self.stage, result)
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
                rearm_signal_handlers()

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


async def _hold_until_connection_closes() -> NoReturn:
    """Keep the message unacked: closing the connection returns it to the queue for another worker,
    whereas a nack now could hand it straight back to this stopping worker and burn its deliveries."""
    await asyncio.Future()
    raise AssertionError("unreachable")
