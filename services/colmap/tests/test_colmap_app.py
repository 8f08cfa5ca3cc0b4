"""The colmap composition root on the embedded adapters."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import pytest
from photosplat_colmap.app import create
from photosplat_colmap.settings import ColmapSettings
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, StageFailed
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from PIL import Image


def test_settings_use_the_colmap_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSPLAT_COLMAP_HEARTBEAT_SECONDS", "7.5")
    monkeypatch.setenv("PHOTOSPLAT_COLMAP_WORKER_NAME", "gpu-3")
    settings = ColmapSettings()
    assert (settings.heartbeat_seconds, settings.worker_name) == (7.5, "gpu-3")


async def test_a_single_photo_fails_once_with_advice(tmp_path: Path) -> None:
    bus = MemoryBus()
    await bus.start()
    store = FolderStore.from_url(f"file:{tmp_path}")
    await store.ensure_ready()
    failures: asyncio.Queue[Envelope] = asyncio.Queue()

    async def on_event(event: Envelope, _delivery: Delivery) -> None:
        if isinstance(event, StageFailed):
            await failures.put(event)

    await bus.consume(QueueSpec("probe", ("stage.failed",)), on_event)
    service = create(ColmapSettings(worker_name="t"), Deps(bus=bus, store=store))
    assert service.name == "colmap" and service.router is None
    await service.start()
    job_id = uuid.uuid4()
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), "grey").save(photo, "JPEG")
    key = f"jobs/{job_id}/images/0000.jpg"
    await store.put(key, photo.getvalue(), "image/jpeg")
    image = ImageInfo(key=key, name="a.jpg", width=64, height=48, bytes=len(photo.getvalue()))
    await bus.publish(ImagesValidated(job_id=job_id, images=(image,)))
    failed = await asyncio.wait_for(failures.get(), 5)

    assert isinstance(failed, StageFailed)
    assert (failed.error_type, failed.final, failed.retryable) == ("UserError", True, False)
    assert failed.message.startswith("1 photo(s) is not enough: take at least 3")
    await service.stop()
    await bus.close()
