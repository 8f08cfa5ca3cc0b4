"""Attempt accounting on the real broker: a worker lost while its job was progressing (killed, or
its connection dropped) must not use up the job's deliveries; a job that stops at the same point
every time still ends in the dead letters after the queue's delivery limit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from photosplat_libs import topology
from photosplat_libs.bus import QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, SfmDone, Stage, StageProgress
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore
from photosplat_libs.store.folder import FolderStore
from photosplat_testkit.embedded import PROBE
from photosplat_testkit.harness import CuttableProxy, EventRecorder
from photosplat_libs.worker import JobContext, Worker, WorkFn

DEAD = QueueSpec("dead-probe", ("#",), delivery_limit=100, prefetch=100, dead_letters=True)
TIMEOUT = 10.0


class Broker:
    """Worker processes on one namespace of the real broker, and a recorder of what they publish."""

    def __init__(self, amqp_url: str, namespace: str, store: ObjectStore) -> None:
        self.url, self.namespace, self.store = amqp_url, namespace, store
        self.events, self.dead = EventRecorder(default_timeout=TIMEOUT), EventRecorder(default_timeout=TIMEOUT)
        self.bus = RabbitBus(amqp_url, namespace=namespace)

    async def start(self) -> None:
        await self.bus.start()
        await topology.declare_topology(self.bus)
        await self.bus.consume(PROBE, self.events.handler)
        await self.bus.consume(DEAD, self.dead.handler)

    async def worker_process(self, work: WorkFn, url: str | None = None) -> RabbitBus:
        """A worker with its own connection; closing the returned bus is the process going away."""
        bus = RabbitBus(url or self.url, namespace=self.namespace)
        await bus.start()
        deps = Deps(bus=bus, store=self.store)
        name = f"w-{uuid.uuid4().hex[:6]}"
        await Worker("colmap", Stage.SFM, topology.COLMAP_WORK, work, deps, worker_name=name).start()
        return bus

    async def lose_delivery_at(self, work: WorkFn, job_id: uuid.UUID, fraction: float) -> None:
        """A worker takes the job, reports ``fraction``, then disappears without acking."""
        bus = await self.worker_process(work)
        try:
            await self.events.wait_for(
                lambda e: isinstance(e, StageProgress) and e.job_id == job_id and e.fraction == fraction
            )
        finally:
            await bus.close()
        self.events.events.clear()


@pytest.fixture
async def broker(amqp_url: str, bus_namespace: str, tmp_path: Path) -> AsyncIterator[Broker]:
    store = FolderStore.from_url(f"file:{tmp_path}/objects")
    await store.ensure_ready()
    broker = Broker(amqp_url, bus_namespace, store)
    await broker.start()
    yield broker
    await broker.bus.close()


def trigger() -> ImagesValidated:
    image = ImageInfo(key="jobs/x/images/0000.jpg", name="0000.jpg", width=640, height=480, bytes=1000)
    return ImagesValidated(job_id=uuid.uuid4(), images=(image,))


def done(event: Envelope) -> SfmDone:
    return SfmDone(
        job_id=event.job_id, sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
    )


def stalls_at(fractions: Iterator[float | None]) -> WorkFn:
    """Each delivery reports the next fraction, then hangs until its process goes; None finishes."""

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        fraction = next(fractions)
        if fraction is None:
            return done(event)
        ctx.progress(fraction)
        await asyncio.Future()
        raise AssertionError("unreachable")

    return work


async def test_deliveries_lost_while_the_job_progresses_do_not_use_up_its_attempts(broker: Broker) -> None:
    # Progress 21 -> 42 -> 63 -> 84 of 150 steps, the worker lost after each (more losses than the
    # queue's delivery limit), then a worker that finishes.
    steps = [21 / 150, 42 / 150, 63 / 150, 84 / 150]
    assert len(steps) > topology.COLMAP_WORK.delivery_limit
    work = stalls_at(iter([*steps, None]))
    event = trigger()
    await broker.bus.publish(event)
    for fraction in steps:
        await broker.lose_delivery_at(work, event.job_id, fraction)
    finisher = await broker.worker_process(work)
    try:
        await broker.events.wait_for(lambda e: isinstance(e, SfmDone) and e.job_id == event.job_id)
    finally:
        await finisher.close()
    assert broker.dead.events == []


async def test_a_job_lost_at_the_same_point_every_time_is_dead_lettered(broker: Broker) -> None:
    limit = topology.COLMAP_WORK.delivery_limit
    # Reaching 0.3 the first time is progress; the deliveries after it get no further.
    work = stalls_at(iter([0.3] * (limit + 1) + [None]))
    event = trigger()
    await broker.bus.publish(event)
    for _ in range(limit + 1):
        await broker.lose_delivery_at(work, event.job_id, 0.3)
    parked = await broker.dead.wait_for(lambda e: e.job_id == event.job_id)
    assert parked.event_id == event.event_id


async def test_kill_then_a_dropped_connection_then_kill_leaves_the_job_alive(broker: Broker) -> None:
    """The sequence of the fault run: killed at step 21, connection dropped at 42 while the worker
    went on to 63, killed; the job then finishes instead of failing after "3 crashes"."""
    cut, calls = asyncio.Event(), 0

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        nonlocal calls
        calls += 1
        if calls == 1:
            ctx.progress(21 / 150)
        elif calls == 2:
            ctx.progress(42 / 150)
            await cut.wait()
            while True:  # the worker is alive and goes on; its reports get through once reconnected
                ctx.progress(63 / 150)
                await asyncio.sleep(0.1)
        else:
            return done(event)
        await asyncio.Future()
        raise AssertionError("unreachable")

    event = trigger()
    await broker.bus.publish(event)
    await broker.lose_delivery_at(work, event.job_id, 21 / 150)

    target = urlsplit(broker.url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    via_proxy = target._replace(netloc=f"{target.username}:{target.password}@127.0.0.1:{proxy.port}").geturl()
    second = await broker.worker_process(work, f"{via_proxy}?reconnect_interval=0.2")
    try:
        await broker.events.wait_for(lambda e: isinstance(e, StageProgress) and e.fraction == 42 / 150)
        proxy.cut()
        cut.set()
        await broker.events.wait_for(lambda e: isinstance(e, StageProgress) and e.fraction == 63 / 150)
        await asyncio.sleep(0.5)  # reconnected: the broker hands the job to this worker again
    finally:
        await second.close()  # killed
        await proxy.stop()

    finisher = await broker.worker_process(work)
    try:
        await broker.events.wait_for(lambda e: isinstance(e, SfmDone) and e.job_id == event.job_id)
    finally:
        await finisher.close()
    assert broker.dead.events == []
