"""The trainer composition root on the embedded adapters."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from photosplat_libs import keys
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import Envelope, ExportInfo, SfmDone, StageFailed, StageStarted, TrainingDone
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


async def test_without_an_engine_the_job_fails_once_with_a_clear_reason(deps: Deps) -> None:
    events = await outcomes(deps)
    service = create(TrainerSettings(worker_name="gpu0"), deps)
    await service.start()
    await deps.bus.publish(sfm_done())

    assert isinstance(await asyncio.wait_for(events.get(), 5), StageStarted)
    failed = await asyncio.wait_for(events.get(), 5)
    assert isinstance(failed, StageFailed)
    assert (failed.message, failed.final, failed.retryable) == ("training engine not installed yet", True, False)
    await service.stop()
