"""A phone video from upload to the SfM stage's model, on real RabbitMQ, Postgres and S3: ingest checks
and stores the video, the colmap worker chooses its frames (the sharp ones) and places them with
sequential matching. Both services run their production code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from photosplat_testkit.harness import EventRecorder
from photosplat_testkit.video import SyntheticVideo, render_video

from photosplat_colmap.app import create as create_colmap
from photosplat_colmap.settings import ColmapSettings
from photosplat_ingest.app import create as create_ingest
from photosplat_ingest.settings import IngestSettings
from photosplat_libs.bus import QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.events import ImagesValidated, SfmDone, StageFailed
from photosplat_libs.runner import running
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore, create_store
from photosplat_libs.topology import declare_topology

pytestmark = pytest.mark.slow

BASE = "http://ingest.test"
PROBE = QueueSpec("probe-video", ("#",), delivery_limit=100, prefetch=100)
# 3.2 s of walking at 5 fps; every other frame blurred (a shaky hand).
BLURRED = [i for i in range(16) if i % 2 == 0]


Stack = tuple[httpx.AsyncClient, ObjectStore, EventRecorder]


@pytest.fixture
async def stack(pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str) -> AsyncIterator[Stack]:
    events = EventRecorder(default_timeout=120.0)
    observer = RabbitBus(amqp_url, namespace=bus_namespace)
    await observer.start()
    await declare_topology(observer)
    await observer.consume(PROBE, events.handler)
    # Each service with its own connections, as separate processes would have.
    def bus() -> RabbitBus:
        return RabbitBus(amqp_url, namespace=bus_namespace)

    ingest_deps = Deps(bus=bus(), store=create_store(s3_url), db=Database(pg_url))
    colmap_deps = Deps(bus=bus(), store=create_store(s3_url))
    ingest = create_ingest(IngestSettings(public_base_url=BASE), ingest_deps)
    colmap = create_colmap(ColmapSettings(worker_name="video-test", bus_url=amqp_url, store_url=s3_url), colmap_deps)
    async with AsyncExitStack() as exits:
        await exits.enter_async_context(running([ingest], ingest_deps))
        await exits.enter_async_context(running([colmap], colmap_deps))
        app = FastAPI()
        assert ingest.router is not None
        app.include_router(ingest.router)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60)
        exits.push_async_callback(http.aclose)
        yield http, create_store(s3_url), events
    await observer.close()


@pytest.fixture
def video(tmp_path: Path) -> SyntheticVideo:
    return render_video(tmp_path / "walk.mp4", seconds=3.2, fps=5, blur=BLURRED, seed=4)


async def test_a_video_upload_becomes_sharp_frames_that_sfm_places_in_order(
    stack: Stack, video: SyntheticVideo
) -> None:
    http, store, events = stack

    response = await http.post("/recon/jobs", files=[("files", ("walk.mp4", video.path.read_bytes(), "video/mp4"))])

    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    done = await events.wait_for(lambda e: str(e.job_id) == job_id and isinstance(e, SfmDone | StageFailed))
    assert isinstance(done, SfmDone), done
    validated = next(e for e in events.of(ImagesValidated) if str(e.job_id) == job_id)
    assert validated.capture == "video" and validated.video is not None and validated.video.duration_seconds == 3.2
    # One frame per 0.4 s, each the sharp one of its window, all placed.
    assert (done.total_images, done.registered_images) == (8, 8) and done.points > 100
    assert done.stats.matcher == "sequential" and done.stats.timings.frames is not None
    frames = sorted(Path(o.key).name for o in await store.list(f"{done.sparse_key}images/"))
    assert frames == [f"frame_{i:05d}.jpg" for i in range(1, 16, 2)]
