"""Trainer replicas as separate processes on a real broker and store, fed with training jobs that
need no SfM: a synthetic scene with its true cameras is stored as each job's SfM output and an
``SfmDone`` names it. Shared by tests/test_trainer_scaling.py and services/trainer/bench/bench_scaling.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from photosplat_libs import keys, topology
from photosplat_libs.bus import Bus, QueueSpec
from photosplat_libs.events import JobOptions, Preset, SfmDone, StageFailed, StageStarted, TrainingDone
from photosplat_libs.store import ObjectStore

from photosplat_testkit.harness import EventRecorder, ServiceProcesses

# Every event of the namespace, beside the services' own queues.
PROBE = QueueSpec("trainer-fleet-probe", ("#",), delivery_limit=100, prefetch=100)


def write_training_scene(directory: Path, *, views: int, width: int, height: int, seed: int = 7) -> Path:
    """An undistorted COLMAP folder (``images/`` + ``sparse/``), as the SfM stage hands it on."""
    from photosplat_testkit.synthetic import render_scene, write_colmap_dataset

    scene = render_scene(n_views=views, width=width, height=height, n_points=800, seed=seed)
    return write_colmap_dataset(scene, directory)


async def store_training_jobs(
    store: ObjectStore, scene_dir: Path, count: int, preset: Preset = "preview"
) -> list[SfmDone]:
    """``count`` jobs, each with its own copy of ``scene_dir`` as its SfM output; their triggers."""
    files = sorted(p for p in scene_dir.rglob("*") if p.is_file())
    views = len(list((scene_dir / "images").iterdir()))
    jobs = []
    for _ in range(count):
        job_id = uuid.uuid4()
        prefix = keys.sfm(job_id, "undistorted/")
        for path in files:
            await store.put_file(prefix + path.relative_to(scene_dir).as_posix(), str(path))
        jobs.append(
            SfmDone(
                job_id=job_id,
                sparse_key=prefix,
                registered_images=views,
                total_images=views,
                points=800,
                reprojection_error=0.0,
                options=JobOptions(preset=preset),
            )
        )
    return jobs


class TrainerFleet:
    """``replicas`` CPU trainer processes named ``trainer-1`` ... (their ``StageStarted.worker``), each
    with ``threads`` torch threads (OMP_NUM_THREADS), training at most ``max_steps`` steps."""

    def __init__(self, procs: ServiceProcesses, *, max_steps: int) -> None:
        self.procs, self.max_steps = procs, max_steps
        self.names: list[str] = []

    def start(self, replicas: int, threads: int) -> None:
        for i in range(1, replicas + 1):
            name = f"trainer-{i}"
            extra = {
                "PHOTOSPLAT_TRAINER_DEVICE": "cpu",
                "PHOTOSPLAT_TRAINER_MAX_STEPS": str(self.max_steps),
                "PHOTOSPLAT_TRAINER_WORKER_NAME": name,
                "OMP_NUM_THREADS": str(threads),
            }
            self.procs.start("trainer", extra, label=name)
            self.names.append(name)

    async def wait_consuming(self, bus: Bus, timeout: float = 60.0) -> None:
        """Until every replica consumes the work queue (the broker counts its consumers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.names:
                self.procs.assert_alive(name)
            stats = await bus.queue_stats(topology.TRAINER_WORK.name)
            if stats is not None and stats.consumers >= len(self.names):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the trainers did not all consume in {timeout:.0f} s:\n{self.procs.tail()}")


@dataclass
class BatchResult:
    seconds: float  # from the first publish until every TrainingDone was seen
    done: list[TrainingDone] = field(default_factory=list)
    started: list[StageStarted] = field(default_factory=list)

    def workers(self) -> dict[str, int]:
        """Jobs started per worker name."""
        counts: dict[str, int] = {}
        for event in self.started:
            counts[event.worker] = counts.get(event.worker, 0) + 1
        return counts


async def run_batch(
    bus: Bus, recorder: EventRecorder, jobs: list[SfmDone], fleet: TrainerFleet, timeout: float
) -> BatchResult:
    """Publish ``jobs`` and wait until each has a ``TrainingDone``; a final failure ends the wait."""
    ids = {job.job_id for job in jobs}
    started = time.monotonic()
    for job in jobs:
        await bus.publish(job)
    while True:
        done = [e for e in recorder.of(TrainingDone) if e.job_id in ids]
        if {e.job_id for e in done} == ids:
            break
        failed = [e for e in recorder.of(StageFailed) if e.job_id in ids]
        if failed or time.monotonic() - started > timeout:
            reason = failed[0].message if failed else f"not all done in {timeout:.0f} s"
            raise AssertionError(f"{reason}:\n{fleet.procs.tail()}")
        for name in fleet.names:
            fleet.procs.assert_alive(name)
        await asyncio.sleep(0.05)
    # Polled every 50 ms: the wall time is that exact, plenty for jobs of seconds.
    seconds = time.monotonic() - started
    return BatchResult(seconds, done, [e for e in recorder.of(StageStarted) if e.job_id in ids])
