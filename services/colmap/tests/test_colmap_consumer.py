"""The colmap service's consumer on real RabbitMQ and a real S3 server, with a small work function
in place of the SfM engine (the real one has its own tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from photosplat_colmap.app import create
from photosplat_colmap.settings import ColmapSettings
from photosplat_libs import keys, topology
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, SfmDone, StageStarted, decode
from photosplat_libs.service import Deps, Service
from photosplat_libs.store import create_store
from photosplat_testkit.embedded import PROBE
from photosplat_testkit.harness import EventRecorder
from photosplat_libs.worker import JobContext, WorkFn



class Cluster:
    """Worker processes, each with its own broker connection, plus an observer connection."""

    def __init__(self, amqp_url: str, namespace: str, s3_url: str) -> None:
        self.amqp_url, self.namespace, self.s3_url = amqp_url, namespace, s3_url
        self.recorder = EventRecorder()
        self.observer = RabbitBus(amqp_url, namespace=namespace)
        self.store = create_store(s3_url)
        self._running: list[tuple[Service, RabbitBus]] = []

    async def start(self) -> None:
        await self.observer.start()
        await topology.declare_topology(self.observer)
        await self.observer.consume(PROBE, self.recorder.handler)

    async def worker(self, name: str, work: WorkFn) -> RabbitBus:
        bus = RabbitBus(self.amqp_url, namespace=self.namespace)
        await bus.start()
        settings = ColmapSettings(worker_name=name, bus_url=self.amqp_url, store_url=self.s3_url)
        service = create(settings, Deps(bus=bus, store=self.store), work=work)
        await service.start()
        self._running.append((service, bus))
        return bus

    async def close(self) -> None:
        for service, bus in self._running:
            await service.stop()
            await bus.close()
        await self.observer.close()


@pytest.fixture
async def cluster(amqp_url: str, bus_namespace: str, s3_url: str) -> AsyncIterator[Cluster]:
    cluster = Cluster(amqp_url, bus_namespace, s3_url)
    await cluster.start()
    yield cluster
    await cluster.close()


async def submit(cluster: Cluster) -> ImagesValidated:
    job_id = uuid.uuid4()
    key = keys.image(job_id, 0, ".jpg")
    await cluster.store.put(key, b"not really a jpeg", "image/jpeg")
    image = ImageInfo(key=key, name="0000.jpg", width=640, height=480, bytes=17)
    event = ImagesValidated(job_id=job_id, images=(image,))
    await cluster.observer.publish(event)
    return event


async def fake_sfm(event: Envelope, ctx: JobContext) -> Envelope:
    assert isinstance(event, ImagesValidated)
    # Reads what ingest stored and writes a model, as the real engine does.
    photos = [await ctx.store.get(image.key) for image in event.images]
    sparse_key = keys.sfm(ctx.job_id, "sparse.txt")
    await ctx.store.put(sparse_key, f"{len(photos)} cameras".encode())
    ctx.progress(1.0, registered=len(photos))
    return SfmDone(
        job_id=ctx.job_id,
        sparse_key=sparse_key,
        registered_images=len(photos),
        total_images=len(photos),
        points=100,
        reprojection_error=0.7,
    )


def is_done(job_id: uuid.UUID) -> Callable[[Envelope], bool]:
    return lambda e: isinstance(e, SfmDone) and e.job_id == job_id


async def test_images_validated_in_sfm_done_out(cluster: Cluster) -> None:
    await cluster.worker("w1", fake_sfm)
    event = await submit(cluster)
    done = await cluster.recorder.wait_for(is_done(event.job_id))

    assert isinstance(done, SfmDone) and done.attempt == event.attempt and done.registered_images == 1
    assert await cluster.store.get(done.sparse_key) == b"1 cameras"
    assert decode(await cluster.store.get(keys.stage_result(event.job_id, "sfm"))) == done


async def test_a_worker_dying_mid_job_leaves_it_to_another(cluster: Cluster) -> None:
    started = asyncio.Event()
    deliveries: list[tuple[str, int]] = []

    async def hangs(event: Envelope, ctx: JobContext) -> Envelope:
        deliveries.append(("dies", ctx.delivery_count))
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def completes(event: Envelope, ctx: JobContext) -> Envelope:
        deliveries.append(("survives", ctx.delivery_count))
        return await fake_sfm(event, ctx)

    dying_bus = await cluster.worker("dies", hangs)
    event = await submit(cluster)
    await asyncio.wait_for(started.wait(), 15)
    # The process dies: its connection goes away with the job unacked.
    await dying_bus.close()
    await cluster.worker("survives", completes)
    await cluster.recorder.wait_for(is_done(event.job_id))

    assert deliveries == [("dies", 1), ("survives", 2)]
    starts = [e.worker for e in cluster.recorder.events if isinstance(e, StageStarted)]
    assert starts == ["dies", "survives"]
