"""The worker runtime on the embedded adapters (memory bus, folder store)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from photosplat_libs import keys, topology
from photosplat_libs.events import (
    CancelRequested,
    Envelope,
    ImageInfo,
    ImagesValidated,
    JobDeleted,
    LogLines,
    ProgressMetrics,
    SfmDone,
    Stage,
    StageFailed,
    StageProgress,
    StageStarted,
    decode,
)
from photosplat_libs.service import Deps
from photosplat_testkit.embedded import PROBE
from photosplat_testkit.harness import EventRecorder
from photosplat_libs.worker import JobContext, UserError, Worker, WorkFn



def trigger(job_id: uuid.UUID | None = None, attempt: int = 1) -> ImagesValidated:
    image = ImageInfo(key="jobs/x/images/0000.jpg", name="0000.jpg", width=640, height=480, bytes=1000)
    return ImagesValidated(job_id=job_id or uuid.uuid4(), attempt=attempt, images=(image,))


def sfm_done(event: Envelope) -> SfmDone:
    return SfmDone(
        job_id=event.job_id,
        sparse_key="jobs/x/sfm/sparse.zip",
        registered_images=1,
        total_images=1,
        points=10,
        reprojection_error=0.5,
    )


async def start_worker(deps: Deps, work: WorkFn, *, name: str = "w1", heartbeat_seconds: float = 20) -> Worker:
    worker = Worker(
        "colmap",
        Stage.SFM,
        topology.COLMAP_WORK,
        work,
        deps,
        worker_name=name,
        heartbeat_seconds=heartbeat_seconds,
        retry_delay_seconds=0,
    )
    await worker.start()
    return worker


def is_(kind: type[Envelope], job_id: uuid.UUID, **fields: object) -> Callable[[Envelope], bool]:
    return lambda e: isinstance(e, kind) and e.job_id == job_id and all(getattr(e, k) == v for k, v in fields.items())


async def test_success_publishes_start_progress_logs_and_stored_result(deps: Deps, recorder: EventRecorder) -> None:
    seen: dict[str, object] = {}

    def heavy(ctx: JobContext) -> None:
        # The SfM / training code runs in a thread and reports from there.
        seen["thread"] = threading.current_thread() is not threading.main_thread()
        seen["work_dir_exists"] = ctx.work_dir.is_dir()
        for i in range(1, 31):
            ctx.progress(i / 30, eta_seconds=(30 - i) * 0.05, step=i)
            ctx.log(f"step {i}")
            time.sleep(0.05)

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        seen["work_dir"] = ctx.work_dir
        await asyncio.to_thread(heavy, ctx)
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    done = await recorder.wait_for(is_(SfmDone, event.job_id))

    assert done.attempt == event.attempt and seen["thread"] and seen["work_dir_exists"]
    job_events = [e for e in recorder.events if e.job_id == event.job_id and not isinstance(e, ImagesValidated)]
    assert isinstance(job_events[0], StageStarted) and job_events[0].worker == "w1"
    assert job_events[-1] == done, "nothing of the job may follow its result"
    progress = recorder.of(StageProgress)
    # 1.5 s of reports every 50 ms: throttled to about one a second, the last value flushed.
    assert 1 <= len(progress) <= 4
    assert progress[-1].fraction == 1.0 and progress[-1].metrics == ProgressMetrics(step=30)
    lines = [line for batch in recorder.of(LogLines) for line in batch.lines]
    assert lines == [f"step {i}" for i in range(1, 31)]
    assert len(recorder.of(LogLines)) < 10, "log lines go out in batches"
    assert decode(await deps.store.get(keys.stage_result(event.job_id, Stage.SFM))) == done
    assert not Path(str(seen["work_dir"])).exists()


async def test_user_error_is_final_with_message_and_traceback(deps: Deps, recorder: EventRecorder) -> None:
    calls = 0

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        nonlocal calls
        calls += 1
        raise UserError("only 2 of 40 photos could be placed: take more overlapping photos")

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    failed = await recorder.wait_for(is_(StageFailed, event.job_id))

    assert (failed.final, failed.retryable, failed.stage) == (True, False, Stage.SFM)
    assert failed.error_type == "UserError"
    assert failed.message == "only 2 of 40 photos could be placed: take more overlapping photos"
    assert "Traceback" in failed.traceback and "raise UserError" in failed.traceback
    await asyncio.sleep(0.2)
    assert calls == 1 and deps.bus.dead_letters() == []


async def test_a_progress_figure_the_contract_does_not_name_fails_the_job_at_once(
    deps: Deps, recorder: EventRecorder
) -> None:
    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        ctx.progress(0.5, registered=3, images=4)
        await asyncio.sleep(0)
        ctx.progress(0.6, iteration=400)  # the trainer calls it ``step``
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    failed = await recorder.wait_for(is_(StageFailed, event.job_id))
    assert (failed.final, failed.retryable, failed.error_type) == (True, False, "WorkError")
    assert "iteration" in failed.message and not recorder.of(SfmDone)


async def test_transient_error_is_redelivered_then_succeeds(deps: Deps, recorder: EventRecorder) -> None:
    deliveries: list[int] = []

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        deliveries.append(ctx.delivery_count)
        if len(deliveries) == 1:
            raise ConnectionError("store unreachable")
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(is_(SfmDone, event.job_id))

    assert deliveries == [1, 2]
    [failed] = recorder.of(StageFailed)
    assert (failed.final, failed.retryable, failed.error_type) == (False, True, "ConnectionError")
    assert "store unreachable" in failed.message


async def test_transient_error_fails_finally_at_the_delivery_limit(deps: Deps, recorder: EventRecorder) -> None:
    deliveries: list[int] = []

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        deliveries.append(ctx.delivery_count)
        raise RuntimeError("CUDA out of memory")

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(is_(StageFailed, event.job_id, final=True))
    await asyncio.sleep(0.2)

    limit = topology.COLMAP_WORK.delivery_limit
    assert deliveries == list(range(1, limit + 1))
    assert [f.final for f in recorder.of(StageFailed)] == [False] * (limit - 1) + [True]
    assert all(f.retryable for f in recorder.of(StageFailed))
    # The failure is recorded by StageFailed and the message acked: nothing to dead-letter.
    assert deps.bus.dead_letters() == []


async def test_cancel_requested_stops_a_running_job(deps: Deps, recorder: EventRecorder) -> None:
    stopped = threading.Event()

    def heavy(ctx: JobContext) -> None:
        try:
            while True:
                ctx.check_cancelled()
                ctx.progress(0.5)
                time.sleep(0.05)
        finally:
            stopped.set()

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        await asyncio.to_thread(heavy, ctx)
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(is_(StageStarted, event.job_id))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await deps.bus.publish(CancelRequested(job_id=event.job_id))
    await recorder.wait_for(lambda e: is_(LogLines, event.job_id)(e) and "sfm: cancelled" in e.lines, timeout=3)

    assert time.monotonic() - started < 3 and stopped.wait(1)
    assert not recorder.of(SfmDone) and not recorder.of(StageFailed)


async def test_job_deleted_stops_work_that_never_checks(deps: Deps, recorder: EventRecorder) -> None:
    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        await asyncio.sleep(3600)
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(is_(StageStarted, event.job_id))
    started = time.monotonic()
    await deps.bus.publish(JobDeleted(job_id=event.job_id))
    await recorder.wait_for(lambda e: is_(LogLines, event.job_id)(e) and "sfm: cancelled" in e.lines, timeout=4)

    assert time.monotonic() - started < 4


async def test_job_with_cancel_marker_is_skipped(deps: Deps, recorder: EventRecorder) -> None:
    calls = 0

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        nonlocal calls
        calls += 1
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.store.put(keys.cancel_marker(event.job_id), b"")
    await deps.bus.publish(event)
    await recorder.wait_for(is_(LogLines, event.job_id, lines=("sfm: skipped, the job was cancelled",)))

    assert calls == 0 and not recorder.of(StageStarted) and deps.bus.depth(topology.COLMAP_WORK.name) == 0


async def test_redelivery_after_success_republishes_the_stored_result(deps: Deps, recorder: EventRecorder) -> None:
    calls = 0

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        nonlocal calls
        calls += 1
        return sfm_done(event)

    await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    first = await recorder.wait_for(is_(SfmDone, event.job_id))
    # The same message again, as after a crash between publishing the result and acking.
    await deps.bus.publish(event)
    await recorder.wait_for(lambda e: e is not first and is_(SfmDone, event.job_id)(e))

    assert calls == 1
    first_again, second = recorder.of(SfmDone)
    assert second == first_again, "the identical event (same event_id): status dedupes it"
    # A new attempt is an explicit request to run the stage again.
    await deps.bus.publish(trigger(event.job_id, attempt=2))
    await recorder.wait_for(is_(SfmDone, event.job_id, attempt=2))
    assert calls == 2


async def test_heartbeat_keeps_progress_coming_during_long_work(deps: Deps, recorder: EventRecorder) -> None:
    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        ctx.progress(0.25, registered=3)
        await asyncio.sleep(1.3)
        return sfm_done(event)

    await start_worker(deps, work, heartbeat_seconds=0.2)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(is_(SfmDone, event.job_id))

    beats = recorder.of(StageProgress)
    assert len(beats) >= 4
    assert all(b.fraction == 0.25 and b.metrics == ProgressMetrics(registered=3) for b in beats[1:])


async def test_stopped_worker_leaves_its_job_to_the_next_one(deps: Deps, recorder: EventRecorder) -> None:
    runs: list[tuple[str, int]] = []

    def work_of(name: str) -> WorkFn:
        async def work(event: Envelope, ctx: JobContext) -> Envelope:
            runs.append((name, ctx.delivery_count))
            while name == "first":
                ctx.check_cancelled()
                await asyncio.sleep(0.05)
            return sfm_done(event)

        return work

    first = await start_worker(deps, work_of("first"), name="first")
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(is_(StageStarted, event.job_id))
    await first.stop()
    assert not recorder.of(StageFailed) and not recorder.of(LogLines)
    # The process ends: its connection closes and the unacked job goes back to the queue.
    await deps.bus.close()
    await deps.bus.start()
    recorder.events.clear()
    await deps.bus.consume(PROBE, recorder.handler)
    await start_worker(deps, work_of("second"), name="second")
    await recorder.wait_for(is_(SfmDone, event.job_id))

    assert runs == [("first", 1), ("second", 2)]
