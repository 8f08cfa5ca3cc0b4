"""What the metrics and readiness read from the bus, on both adapters alike: a queue's waiting
messages and consumers (RabbitMQ: a passive declare), None for a queue that does not exist, and
whether the bus is connected and consuming."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from photosplat_libs.bus import DEAD_LETTER_QUEUE, Bus, Delivery, QueueSpec, QueueStats, Reject
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.events import Envelope, SfmDone
from photosplat_testkit.metrics import current


def sfm_done() -> SfmDone:
    return SfmDone(
        job_id=uuid.uuid4(), sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
    )


@pytest.fixture(params=["memory", "rabbit"])
async def bus(request: pytest.FixtureRequest, amqp_url: str, bus_namespace: str) -> AsyncIterator[Bus]:
    bus: Bus = MemoryBus() if request.param == "memory" else RabbitBus(amqp_url, namespace=bus_namespace)
    assert not bus.ready()
    await bus.start()
    yield bus
    await bus.close()


async def stats_when(bus: Bus, name: str, expected: QueueStats) -> QueueStats | None:
    """The broker counts asynchronously (a publish confirm precedes the count): poll briefly."""
    stats = None
    for _ in range(50):
        stats = await bus.queue_stats(name)
        if stats == expected:
            break
        await asyncio.sleep(0.05)
    return stats


async def test_depth_and_consumers_of_a_queue(bus: Bus) -> None:
    spec = QueueSpec("stats.work", ("sfm.done",))
    await bus.declare(spec)
    await bus.publish(sfm_done())
    await bus.publish(sfm_done())
    assert await stats_when(bus, "stats.work", QueueStats(2, 0)) == QueueStats(messages=2, consumers=0)
    assert await bus.queue_stats("stats.missing") is None
    # A missing queue does not break the next read (RabbitMQ closes the channel that asked).
    assert await bus.queue_stats("stats.work") == QueueStats(messages=2, consumers=0)

    got: asyncio.Queue[Envelope] = asyncio.Queue()

    async def handler(event: Envelope, _delivery: Delivery) -> None:
        await got.put(event)

    await bus.consume(spec, handler)
    for _ in range(2):
        await asyncio.wait_for(got.get(), 5)
    assert await stats_when(bus, "stats.work", QueueStats(0, 1)) == QueueStats(messages=0, consumers=1)
    assert bus.ready()


async def test_dead_letters_are_parked_and_counted_once_by_their_consumer(bus: Bus) -> None:
    async def reject(_event: Envelope, _delivery: Delivery) -> None:
        raise Reject("no")

    deaths: asyncio.Queue[Delivery] = asyncio.Queue()

    async def fail_once(_event: Envelope, delivery: Delivery) -> None:
        await deaths.put(delivery)
        if delivery.delivery_count == 1:
            raise RuntimeError("the database is down")  # redelivered: still one dead letter

    before = current("photosplat_dead_letters_total", queue="stats.rejecting")
    await bus.consume(QueueSpec("stats.dead", ("#",), dead_letters=True), fail_once)
    await bus.consume(QueueSpec("stats.rejecting", ("sfm.done",)), reject)
    await bus.publish(sfm_done())
    assert await stats_when(bus, DEAD_LETTER_QUEUE, QueueStats(1, 0)) == QueueStats(messages=1, consumers=0)
    for count in (1, 2):
        delivery = await asyncio.wait_for(deaths.get(), 5)
        assert delivery.death is not None and delivery.death.queue == "stats.rejecting"
        assert delivery.delivery_count == count
    assert current("photosplat_dead_letters_total", queue="stats.rejecting") == before + 1


async def test_a_closed_bus_is_not_ready(bus: Bus) -> None:
    async def ignore(_event: Envelope, _delivery: Delivery) -> None: ...

    await bus.consume(QueueSpec("stats.ready", ("sfm.done",)), ignore)
    assert bus.ready()
    await bus.close()
    assert not bus.ready()
