"""The trainer composition root on the embedded adapters."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from photosplat_libs import keys
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import Envelope, ExportInfo, JobOptions, SfmDone, StageFailed, StageStarted, TrainingDone
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from photosplat_libs.worker import JobContext
from photosplat_trainer.app import create
from photosplat_trainer.settings import TrainerSettings


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[Deps]:
    bus = MemoryBus()
    await bus.start()
    store = FolderStore.from_url(f"file:{tmp_path}")
    await store.ensure_ready()
    yield Deps(bus=bus, store=store)
    await bus.close()


async def outcomes(deps: Deps) -> asyncio.Queue[Envelope]:
    queue: asyncio.Queue[Envelope] = asyncio.Queue()

    async def on_event(event: Envelope, _delivery: Delivery) -> None:
        await queue.put(event)

    await deps.bus.consume(QueueSpec("probe", ("stage.*", "training.done")), on_event)
    return queue


def sfm_done() -> SfmDone:
    return SfmDone(
        job_id=uuid.uuid4(),
        sparse_key="jobs/x/sfm/sparse.zip",
        registered_images=3,
        total_images=3,
        points=500,
        reprojection_error=0.6,
    )


def test_settings_use_the_trainer_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSPLAT_TRAINER_HEARTBEAT_SECONDS", "3")
    assert TrainerSettings().heartbeat_seconds == 3.0


async def test_sfm_done_in_training_done_out(deps: Deps) -> None:
    async def train(event: Envelope, ctx: JobContext) -> Envelope:
        key = keys.output(ctx.job_id, "scene.ply")
        await ctx.store.put(key, b"ply")
        return TrainingDone(job_id=ctx.job_id, exports=(ExportInfo(format="ply", key=key, bytes=3),), gaussian_count=1)

    events = await outcomes(deps)
    service = create(TrainerSettings(worker_name="gpu0"), deps, work=train)
    await service.start()
    await deps.bus.publish(trigger := sfm_done())

    started = await asyncio.wait_for(events.get(), 5)
    done = await asyncio.wait_for(events.get(), 5)
    assert isinstance(started, StageStarted) and (started.stage, started.worker) == ("train", "gpu0")
    assert isinstance(done, TrainingDone) and done.job_id == trigger.job_id
    assert await deps.store.get(done.exports[0].key) == b"ply"
    await service.stop()


async def test_a_training_job_runs_on_the_cpu_from_the_stored_sfm_folder(deps: Deps, tmp_path: Path) -> None:
    import torch
    from photosplat_testkit.synthetic import render_scene, write_colmap_dataset

    torch.set_num_threads(1)  # small tensors: a second thread only waits on a shared machine
    scene_dir = write_colmap_dataset(render_scene(n_views=10, width=48, height=36, n_points=800, seed=7), tmp_path / "sfm")
    trigger = sfm_done()
    prefix = f"jobs/{trigger.job_id}/sfm/undistorted/"
    for path in sorted(p for p in scene_dir.rglob("*") if p.is_file()):
        await deps.store.put_file(prefix + path.relative_to(scene_dir).as_posix(), str(path))
    trigger = trigger.model_copy(update={"sparse_key": prefix, "options": JobOptions(preset="preview")})

    events = await outcomes(deps)
    service = create(TrainerSettings(worker_name="cpu0", device="cpu", max_steps=30), deps)
    await service.start()
    await deps.bus.publish(trigger)
    seen: list[Envelope] = []
    while not isinstance(seen[-1:] and seen[-1], (TrainingDone, StageFailed)):
        seen.append(await asyncio.wait_for(events.get(), 120))
    await service.stop()

    done = seen[-1]
    assert isinstance(done, TrainingDone), done
    assert [e.format for e in done.exports] == ["ply", "splat", "spz", "sog"]
    for export in done.exports:
        assert (await deps.store.stat(export.key)).size == export.bytes > 0 and export.psnr is not None
    assert done.gaussian_count > 0 and done.psnr is not None and done.ssim is not None
    assert done.thumbnail_key and await deps.store.exists(done.thumbnail_key)
    config = json.loads(await deps.store.get(keys.output(trigger.job_id, "config.json")))
    assert config["steps"] == 30 and config["sh_degree"] == 1
    assert not await deps.store.exists(keys.train(trigger.job_id, "checkpoint.pt"))
    assert done.timings is not None
    assert done.timings.train_seconds > 0 and done.timings.gpu_seconds is None  # trained on the CPU


async def test_a_missing_sfm_folder_fails_the_job(deps: Deps) -> None:
    events = await outcomes(deps)
    service = create(TrainerSettings(worker_name="cpu0", device="cpu"), deps)
    await service.start()
    await deps.bus.publish(sfm_done())

    assert isinstance(await asyncio.wait_for(events.get(), 5), StageStarted)
    failed = await asyncio.wait_for(events.get(), 5)
    assert isinstance(failed, StageFailed) and "is missing from the store" in failed.message
    await service.stop()


def test_a_gpu_without_its_backend_fails_at_start_not_per_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A GPU host whose image lacks gsplat: every job used to fail three times with ModuleNotFoundError.
    import sys

    import torch
    from photosplat_libs.bus.memory import MemoryBus
    from photosplat_libs.service import Deps
    from photosplat_libs.store.folder import FolderStore
    from photosplat_trainer.app import create
    from photosplat_trainer.settings import TrainerSettings

    deps = Deps(bus=MemoryBus(), store=FolderStore(tmp_path), db=None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "gsplat", None)  # importing it raises ImportError
    with pytest.raises(RuntimeError, match=r"\[cuda\] extra.*PHOTOSPLAT_TRAINER_DEVICE=cpu"):
        create(TrainerSettings(device="auto"), deps)
    assert create(TrainerSettings(device="cpu"), deps) is not None  # the operator's explicit choice
