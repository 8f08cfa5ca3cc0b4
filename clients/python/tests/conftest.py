"""A running PhotoSplat for the client to talk to over HTTP, as `photosplat up` would be, but on
the real infrastructure: RabbitMQ, PostgreSQL and the S3 test server (presigned uploads go there).

All five services share one HTTP port. The SfM stage is replaced by the synthetic scene's true
cameras (the SfM engine has its own tests); the trainer is the real one, on the CPU for a few steps.
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from photosplat_testkit.harness import free_port
from photosplat_testkit.synthetic import SyntheticScene, render_scene, write_colmap_dataset, write_images

from photosplat_colmap.app import create as create_colmap
from photosplat_colmap.settings import ColmapSettings
from photosplat_ingest.app import create as create_ingest
from photosplat_ingest.settings import IngestSettings
from photosplat_libs import keys
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.events import Envelope, ImagesValidated, SfmDone
from photosplat_libs.runner import build_app, running
from photosplat_libs.service import Deps, Service
from photosplat_libs.store import create_store
from photosplat_libs.worker import JobContext
from photosplat_status.app import create as create_status
from photosplat_status.settings import StatusSettings
from photosplat_trainer.app import create as create_trainer
from photosplat_trainer.settings import TrainerSettings
from photosplat_viewer.app import create as create_viewer
from photosplat_viewer.settings import ViewerSettings

TRAIN_STEPS = 10


@functools.cache
def scene() -> SyntheticScene:
    # Ingest wants at least 100 px a side; the CPU trainer works at most at 160 px anyway.
    return render_scene(n_views=5, width=160, height=120, n_points=1500, seed=11)


def known_cameras(scene: SyntheticScene) -> Any:
    """An SfM stand-in: the scene's true cameras and points, in the layout SfM hands to training."""

    async def sfm(event: Envelope, ctx: JobContext) -> Envelope:
        assert isinstance(event, ImagesValidated)
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_colmap_dataset(scene, Path(tmp))
            prefix = keys.sfm(ctx.job_id, "undistorted/")
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                await ctx.store.put_file(prefix + path.relative_to(folder).as_posix(), str(path))
        n = len(event.images)
        return SfmDone(
            job_id=ctx.job_id,
            sparse_key=prefix,
            registered_images=n,
            total_images=n,
            points=len(scene.points),
            reprojection_error=0.0,
        )

    return sfm


@dataclass
class Stack:
    url: str
    thread: threading.Thread
    server: uvicorn.Server | None = None
    error: BaseException | None = None


def _services(
    url: str, pg_url: str, amqp_url: str, namespace: str, s3_url: str, s3_server: str
) -> list[tuple[Service, Deps]]:
    def deps(with_db: bool) -> Deps:
        # Each service its own connection, engine and store client, as separate processes would have.
        return Deps(
            bus=RabbitBus(amqp_url, namespace=namespace),
            store=create_store(s3_url, public_url=s3_server),
            db=Database(pg_url) if with_db else None,
        )

    common = {"bus_url": amqp_url, "bus_namespace": namespace, "database_url": pg_url, "store_url": s3_url}
    public = {**common, "public_base_url": url}
    workers = {**common, "device": "cpu"}
    made: list[tuple[Service, Deps]] = []
    for create, settings, with_db in (
        # Event streams end after a second: `wait` resumes them with Last-Event-ID many times.
        (create_status, StatusSettings(**public, events_max_seconds=1.0), True),
        (create_ingest, IngestSettings(**public), True),
        (create_viewer, ViewerSettings(**public), True),
    ):
        d = deps(with_db)
        made.append((create(settings, d), d))  # type: ignore[operator]
    d = deps(False)
    made.append((create_colmap(ColmapSettings(**common), d, work=known_cameras(scene())), d))
    d = deps(False)
    made.append((create_trainer(TrainerSettings(**workers, max_steps=TRAIN_STEPS), d), d))
    return made


async def _serve(stack: Stack, ready: threading.Event, services: list[tuple[Service, Deps]]) -> None:
    async with AsyncExitStack() as exits:
        for service, d in services:
            await exits.enter_async_context(running([service], d))
        # The services were started above, one set of adapters each: the app's own lifespan is off.
        app = build_app([s for s, _ in services if s.router is not None], services[0][1])
        port = int(stack.url.rsplit(":", 1)[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
        stack.server = uvicorn.Server(config)
        serving = asyncio.create_task(stack.server.serve())
        while not stack.server.started and not serving.done():
            await asyncio.sleep(0.05)
        ready.set()
        await serving


@pytest.fixture
def server(pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str, s3_server: str) -> Iterator[str]:
    """The base URL of a running PhotoSplat (ingest, status and viewer on one port)."""
    import torch

    torch.set_num_threads(1)  # small tensors: a second thread only waits on a shared machine
    url = f"http://127.0.0.1:{free_port()}"
    ready = threading.Event()

    def run() -> None:
        try:
            # The services' adapters belong to this thread's event loop: they are made inside it.
            async def main() -> None:
                await _serve(stack, ready, _services(url, pg_url, amqp_url, bus_namespace, s3_url, s3_server))

            asyncio.run(main())
        except BaseException as exc:  # reported by the test, not lost in the thread
            stack.error = exc
        finally:
            ready.set()

    stack = Stack(url=url, thread=threading.Thread(target=run, name="photosplat-stack", daemon=True))
    stack.thread.start()
    assert ready.wait(60), "the stack did not start"
    if stack.error is not None or stack.server is None or not stack.server.started:
        raise AssertionError(f"the stack did not start: {stack.error!r}")
    yield url
    stack.server.should_exit = True
    stack.thread.join(60)
    assert not stack.thread.is_alive(), "the stack did not stop"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """The synthetic scene's views as JPEG files, as a camera would leave them in a folder."""
    folder = tmp_path / "photos"
    write_images(scene(), folder)
    (folder / "notes.txt").write_text("not a photo: the client leaves it out")
    return folder
