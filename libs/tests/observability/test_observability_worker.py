"""The worker runtime's metrics and log context, on real jobs through the embedded bus: stage
durations by outcome, failures and retries, queue gauges, the stall clock, GPU seconds, and JSON log
lines that name the job, stage and attempt."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from photosplat_libs import topology
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import (
    Envelope,
    ImageInfo,
    ImagesValidated,
    SfmDone,
    Stage,
    StageFailed,
    TrainingDone,
    TrainingTimings,
)
from photosplat_libs.observability.logs import JobContextFilter, JsonFormatter
from photosplat_libs.observability.queues import QueueGauges
from photosplat_libs.service import Deps
from photosplat_libs.worker import JobContext, WorkError, Worker, WorkFn
from photosplat_testkit.harness import EventRecorder
from photosplat_testkit.metrics import current



@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The root logger's records as the JSON formatter writes them (the handler a service installs)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(JobContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def trigger() -> ImagesValidated:
    image = ImageInfo(key="jobs/x/images/0000.jpg", name="0000.jpg", width=640, height=480, bytes=1000)
    return ImagesValidated(job_id=uuid.uuid4(), attempt=2, images=(image,))


def sfm_done(event: Envelope) -> SfmDone:
    return SfmDone(
        job_id=event.job_id, sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.5
    )


async def start_worker(deps: Deps, work: WorkFn, stage: Stage = Stage.SFM) -> Worker:
    queue = topology.COLMAP_WORK if stage is Stage.SFM else topology.TRAINER_WORK
    worker = Worker("colmap", stage, queue, work, deps, worker_name="w1", retry_delay_seconds=0)
    await worker.start()
    return worker


async def test_a_finished_job_is_timed_and_its_log_lines_name_it(
    deps: Deps, recorder: EventRecorder, json_lines: io.StringIO
) -> None:
    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        ctx.log("matching features")  # logged by the context, in the event loop's thread
        await asyncio.to_thread(logging.getLogger("photosplat_colmap.test").info, "in the work thread")
        return sfm_done(event)

    before = current("photosplat_stage_duration_seconds_count", stage="sfm", outcome="done")
    worker = await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(lambda e: isinstance(e, SfmDone) and e.job_id == event.job_id)
    await worker.stop()

    assert current("photosplat_stage_duration_seconds_count", stage="sfm", outcome="done") == before + 1
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    ours = [line for line in lines if line.get("job_id") == str(event.job_id)]
    messages = {line["message"] for line in ours}
    assert "in the work thread" in messages and any("matching features" in m for m in messages)
    for line in ours:
        assert (line["stage"], line["attempt"]) == ("sfm", 2)
        assert {"time", "level", "logger", "message"} <= set(line)
    # Outside the job, no job fields: the context ends with the message.
    logging.getLogger("photosplat.test").info("after the job")
    after = json.loads(json_lines.getvalue().splitlines()[-1])
    assert after["message"] == "after the job" and "job_id" not in after


async def test_failures_count_retries_then_the_final_one(deps: Deps, recorder: EventRecorder) -> None:
    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        raise WorkError("the disk is full")  # retryable: redelivered up to the queue's limit

    retries = current("photosplat_stage_retries_total", stage="sfm")
    finals = current("photosplat_stage_failures_total", stage="sfm", final="true")
    failed_runs = current("photosplat_stage_duration_seconds_count", stage="sfm", outcome="failed")
    worker = await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await recorder.wait_for(lambda e: isinstance(e, StageFailed) and e.job_id == event.job_id and e.final)
    await worker.stop()

    limit = topology.COLMAP_WORK.delivery_limit
    assert current("photosplat_stage_retries_total", stage="sfm") == retries + limit - 1
    assert current("photosplat_stage_failures_total", stage="sfm", final="true") == finals + 1
    assert current("photosplat_stage_duration_seconds_count", stage="sfm", outcome="failed") == failed_runs + limit


async def test_the_stall_clock_runs_while_progress_stands_still(deps: Deps, recorder: EventRecorder) -> None:
    release = asyncio.Event()
    seen: dict[str, float] = {}

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        ctx.progress(0.1)
        await asyncio.sleep(0.3)
        seen["stalled"] = current("photosplat_worker_progress_stalled_seconds", stage="sfm")
        seen["running"] = current("photosplat_worker_jobs_running", stage="sfm")
        ctx.progress(0.2)
        seen["advanced"] = current("photosplat_worker_progress_stalled_seconds", stage="sfm")
        await release.wait()
        return sfm_done(event)

    worker = await start_worker(deps, work)
    event = trigger()
    await deps.bus.publish(event)
    await asyncio.sleep(0.5)
    release.set()
    await recorder.wait_for(lambda e: isinstance(e, SfmDone) and e.job_id == event.job_id)
    await worker.stop()
    assert seen["stalled"] >= 0.3 and seen["advanced"] < 0.1 and seen["running"] >= 1
    assert current("photosplat_worker_progress_stalled_seconds", stage="sfm") == 0.0


async def test_gpu_seconds_of_a_training_result(deps: Deps, recorder: EventRecorder) -> None:
    timings = TrainingTimings(
        download_seconds=1, train_seconds=42.5, train_stage_seconds=50, upload_seconds=1, total_seconds=52,
        gpu_seconds=42.5,
    )

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        return TrainingDone(job_id=event.job_id, exports=(), gaussian_count=1, timings=timings)

    before = current("photosplat_gpu_seconds_total", stage="train")
    worker = await start_worker(deps, work, Stage.TRAIN)
    event = sfm_done(trigger())
    await deps.bus.publish(event)
    await recorder.wait_for(lambda e: isinstance(e, TrainingDone) and e.job_id == event.job_id)
    await worker.stop()
    assert current("photosplat_gpu_seconds_total", stage="train") == before + 42.5


async def test_queue_gauges_on_the_embedded_bus(deps: Deps) -> None:
    bus = deps.bus
    assert isinstance(bus, MemoryBus)
    await topology.declare_topology(bus)
    await bus.publish(trigger())
    await bus.publish(trigger())
    gauges = QueueGauges(bus, ["colmap.work", "trainer.work", "photosplat.dead-letters", "no.such.queue"])
    await gauges.refresh()
    assert current("photosplat_queue_messages", queue="colmap.work") == 2
    assert current("photosplat_queue_consumers", queue="colmap.work") == 0
    assert current("photosplat_queue_messages", queue="trainer.work") == 0
    assert current("photosplat_queue_messages", queue="no.such.queue") == 0  # never set: it does not exist
