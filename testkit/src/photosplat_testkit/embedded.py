"""The embedded adapters for tests of one worker or service (an in-memory bus, a folder store) and a
recorder of every event that bus carries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from photosplat_libs.bus import Bus, QueueSpec
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from photosplat_testkit.harness import EventRecorder

# A queue bound to every routing key: what a test listens on to see all events.
PROBE = QueueSpec("probe", ("#",), delivery_limit=100, prefetch=100)


@asynccontextmanager
async def embedded_deps(root: Path) -> AsyncIterator[Deps]:
    bus = MemoryBus()
    await bus.start()
    store = FolderStore.from_url(f"file:{root}/objects")
    await store.ensure_ready()
    try:
        yield Deps(bus=bus, store=store)
    finally:
        await bus.close()


async def record_all(bus: Bus) -> EventRecorder:
    recorder = EventRecorder(default_timeout=5.0)
    await bus.consume(PROBE, recorder.handler)
    return recorder
