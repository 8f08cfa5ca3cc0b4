"""Two trainer replicas, separate processes on the real RabbitMQ and S3 server, share one work queue.

Each of ``JOBS`` training jobs gets a synthetic scene with its true cameras as its SfM output (no SfM
cost) and trains ``MAX_STEPS`` CPU steps on 48×36 images. Every job is trained exactly once (one
``StageStarted``, one ``TrainingDone``, nothing left in the queue), both replicas take work, and
while both are busy the other jobs wait in the queue: a replica holds one job at a time (prefetch 1),
so a replica busy with a long job never sits on a second one while the other replica idles.
The throughput of 1 against 2 replicas is measured by services/trainer/bench/bench_scaling.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from photosplat_libs import topology
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.events import SfmDone, StageStarted, TrainingDone
from photosplat_libs.store import ObjectStore, create_store
from photosplat_testkit.harness import EventRecorder, ServiceProcesses
from photosplat_testkit.trainer_fleet import PROBE, TrainerFleet, run_batch, store_training_jobs, write_training_scene

pytestmark = pytest.mark.slow

JOBS = 6
MAX_STEPS = 30
REPLICAS = 2
# From the first publish to the last result; the 6 jobs took 11.9 s here (2 cores, 2026-11-30).
BATCH_TIMEOUT_SECONDS = 90.0


@dataclass
class Setup:
    bus: RabbitBus
    store: ObjectStore
    recorder: EventRecorder
    fleet: TrainerFleet


@pytest.fixture
async def setup(amqp_url: str, bus_namespace: str, s3_url: str, s3_server: str, tmp_path: Path) -> AsyncIterator[Setup]:
    bus = RabbitBus(amqp_url, namespace=bus_namespace)
    await bus.start()
    await topology.declare_topology(bus)
    recorder = EventRecorder()
    await bus.consume(PROBE, recorder.handler)
    (tmp_path / "logs").mkdir()
    env = {
        "BUS_URL": amqp_url,
        "BUS_NAMESPACE": bus_namespace,
        "STORE_URL": s3_url,
        "STORE_PUBLIC_URL": s3_server,
        "LOG_LEVEL": "INFO",
        "WORK_DIR": str(tmp_path / "work"),
    }
    procs = ServiceProcesses(env, tmp_path / "logs")
    fleet = TrainerFleet(procs, max_steps=MAX_STEPS)
    try:
        # One torch thread each: two replicas on two cores, nothing waits for a core.
        fleet.start(REPLICAS, threads=1)
        yield Setup(bus, create_store(s3_url, public_url=s3_server), recorder, fleet)
    finally:
        await procs.stop()
        await bus.close()


async def queued_while_both_busy(s: Setup, jobs: list[SfmDone]) -> int | None:
    """Messages waiting in the work queue once both replicas have started a job and before either
    finished one; None if that moment was missed."""
    ids = {job.job_id for job in jobs}
    while len({e.worker for e in s.recorder.of(StageStarted) if e.job_id in ids}) < REPLICAS:
        await asyncio.sleep(0.02)
    stats = await s.bus.queue_stats(topology.TRAINER_WORK.name)
    if stats is None or any(e.job_id in ids for e in s.recorder.of(TrainingDone)):
        return None
    return stats.messages


async def test_two_trainer_replicas_train_each_job_exactly_once(setup: Setup, tmp_path: Path) -> None:
    scene = write_training_scene(tmp_path / "scene", views=10, width=48, height=36)
    jobs = await store_training_jobs(setup.store, scene, JOBS)
    await setup.fleet.wait_consuming(setup.bus)

    watcher = asyncio.create_task(queued_while_both_busy(setup, jobs))
    result = await run_batch(setup.bus, setup.recorder, jobs, setup.fleet, timeout=BATCH_TIMEOUT_SECONDS)
    waiting = await asyncio.wait_for(watcher, 1)
    print(f"{JOBS} jobs on {REPLICAS} replicas in {result.seconds:.1f} s: {result.workers()}")

    ids = [job.job_id for job in jobs]
    assert Counter(e.job_id for e in result.started) == Counter(ids), "a job was started twice or never"
    assert Counter(e.job_id for e in setup.recorder.of(TrainingDone)) == Counter(ids), "a job has two results"
    assert set(result.workers()) == {"trainer-1", "trainer-2"} and min(result.workers().values()) >= 1
    assert waiting == JOBS - REPLICAS, f"{waiting} of {JOBS} jobs waited while both replicas were busy"
    stats = await setup.bus.queue_stats(topology.TRAINER_WORK.name)
    assert stats is not None and stats.messages == 0
    for done in result.done:
        assert all([await setup.store.exists(export.key) for export in done.exports]), done
