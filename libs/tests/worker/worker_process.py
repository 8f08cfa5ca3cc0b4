"""A colmap worker in its own process, run by the runner exactly as ``python -m photosplat_colmap``
runs it (signal handlers included), on the embedded bus, with jobs it publishes to itself.

    python worker_process.py WORK_ROOT JOBS

JOBS is a comma-separated list of what each job does: ``pycolmap`` imports pycolmap in the work
thread and finishes; ``hang`` prints ``READY <work dir>`` and runs until cancelled;
``pycolmap-then-hang`` does both in one job."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from pathlib import Path

from photosplat_libs import topology
from photosplat_libs.bus import BusError
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, SfmDone, Stage
from photosplat_libs.runner import configure_logging, serve
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from photosplat_libs.worker import JobContext, Worker


def load_pycolmap() -> None:
    import pycolmap

    pycolmap.Reconstruction()


def hang(ctx: JobContext) -> None:
    (ctx.work_dir / "partial.bin").write_bytes(b"x" * 1000)
    print("READY", ctx.work_dir, flush=True)
    while True:
        ctx.check_cancelled()
        ctx.progress(0.5)
        time.sleep(0.05)


async def work(event: Envelope, ctx: JobContext) -> Envelope:
    steps = event.images[0].name.split("-then-")  # type: ignore[attr-defined]
    if "pycolmap" in steps:
        await asyncio.to_thread(load_pycolmap)
    if "hang" in steps:
        await asyncio.to_thread(hang, ctx)
    return SfmDone(
        job_id=event.job_id, sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
    )


async def publish_jobs(bus: MemoryBus, kinds: list[str]) -> None:
    for kind in kinds:
        image = ImageInfo(key="k", name=kind, width=1, height=1, bytes=1)
        event = ImagesValidated(job_id=uuid.uuid4(), images=(image,))
        while True:
            try:  # refused until the runner has started the bus and declared the queues
                await bus.publish(event)
                break
            except BusError:
                await asyncio.sleep(0.05)


async def main(root: Path, kinds: list[str]) -> None:
    bus = MemoryBus()
    deps = Deps(bus=bus, store=FolderStore.from_url(f"file:{root}/objects"))
    worker = Worker(
        "colmap", Stage.SFM, topology.COLMAP_WORK, work, deps, worker_name=f"proc-{threading.get_native_id()}",
        work_root=root / "scratch",
    )
    publishing = asyncio.create_task(publish_jobs(bus, kinds))
    await serve([worker], deps, host="127.0.0.1", port=None, log_level="INFO")
    await publishing
    print("STOPPED", flush=True)


if __name__ == "__main__":
    configure_logging("INFO")
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2].split(",")))
