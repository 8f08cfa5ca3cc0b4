"""What only the RabbitMQ adapter has: message properties, broker-side delivery counting, exclusive
queues that die with their connection, namespace clean-up, connection errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.exceptions import ChannelNotFoundEntity

from photosplat_libs.bus import DEAD_LETTER_EXCHANGE, EXCHANGE, BusError, Delivery, QueueSpec, Unroutable
from photosplat_libs.bus.rabbit import RabbitBus, delete_namespace, qualified
from photosplat_libs.events import CancelRequested, Envelope, SfmDone, decode
from photosplat_testkit.harness import CuttableProxy

TIMEOUT = 5.0


def sfm_done() -> SfmDone:
    return SfmDone(
        job_id=uuid.uuid4(), sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
    )


@pytest.fixture
async def bus(amqp_url: str, bus_namespace: str) -> AsyncIterator[RabbitBus]:
    bus = RabbitBus(amqp_url, namespace=bus_namespace)
    await bus.start()
    yield bus
    await bus.close()


async def test_messages_are_persistent_and_described(bus: RabbitBus, amqp_url: str, bus_namespace: str) -> None:
    await bus.declare(QueueSpec("work", ("sfm.done",)))
    await bus.publish(event := sfm_done())
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(qualified(bus_namespace, "work"), passive=True)
        message = await queue.get(timeout=TIMEOUT)
        await message.ack()
    assert decode(message.body) == event
    assert message.message_id == str(event.event_id)
    assert message.type == "SfmDone"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.timestamp is not None


async def test_delivery_limit_of_one_dead_letters_the_first_failure(bus: RabbitBus) -> None:
    counts: list[int] = []
    dead: asyncio.Queue[Envelope] = asyncio.Queue()

    async def fail(event: Envelope, delivery: Delivery) -> None:
        counts.append(delivery.delivery_count)
        raise RuntimeError("boom")

    async def park(event: Envelope, delivery: Delivery) -> None:
        await dead.put(event)

    await bus.consume(QueueSpec("dead", ("#",), dead_letters=True), park)
    await bus.consume(QueueSpec("work", ("sfm.done",), delivery_limit=1), fail)
    await bus.publish(event := sfm_done())
    assert await asyncio.wait_for(dead.get(), TIMEOUT) == event
    assert counts == [1]


async def test_exclusive_queue_lives_with_its_connection(amqp_url: str, bus_namespace: str) -> None:
    spec = QueueSpec("colmap.cancel.w1", ("cancel.requested",), exclusive=True)
    received: asyncio.Queue[Envelope] = asyncio.Queue()

    async def keep(event: Envelope, delivery: Delivery) -> None:
        await received.put(event)

    first = RabbitBus(amqp_url, namespace=bus_namespace)
    await first.start()
    await first.consume(spec, keep)
    await first.publish(event := CancelRequested(job_id=uuid.uuid4()))
    assert await asyncio.wait_for(received.get(), TIMEOUT) == event
    await first.close()

    second = RabbitBus(amqp_url, namespace=bus_namespace)
    await second.start()
    try:
        with pytest.raises(Unroutable):
            await second.publish(CancelRequested(job_id=uuid.uuid4()))
    finally:
        await second.close()


async def test_delete_namespace_removes_queues_and_exchanges(amqp_url: str) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    bus = RabbitBus(amqp_url, namespace=namespace)
    await bus.start()
    await bus.declare(QueueSpec("custom", ("#",)))
    await bus.close()

    await delete_namespace(amqp_url, namespace)
    await delete_namespace(amqp_url, namespace)  # nothing left: still fine

    async with await aio_pika.connect(amqp_url) as connection:
        for name in ("custom", "photosplat.dead-letters"):
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.declare_queue(qualified(namespace, name), passive=True)
        for name in (EXCHANGE, DEAD_LETTER_EXCHANGE):
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.get_exchange(qualified(namespace, name), ensure=True)


async def test_unreachable_broker_is_a_bus_error() -> None:
    with pytest.raises(BusError):
        await asyncio.wait_for(RabbitBus("amqp://guest:guest@127.0.0.1:1/").start(), TIMEOUT)


async def test_not_started_bus_refuses_work(amqp_url: str) -> None:
    bus = RabbitBus(amqp_url)
    with pytest.raises(BusError):
        await bus.publish(sfm_done())
    with pytest.raises(BusError):
        await bus.consume(QueueSpec("q", ("#",)), lambda e, d: asyncio.sleep(0))


async def test_consumer_survives_a_dropped_connection(amqp_url: str, bus_namespace: str) -> None:
    broker = urlsplit(amqp_url)
    proxy = CuttableProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    await proxy.start()
    url = broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()
    bus = RabbitBus(f"{url}?reconnect_interval=0.2", namespace=bus_namespace)
    await bus.start()
    deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
    handling = asyncio.Event()

    async def cut_during_first(event: Envelope, delivery: Delivery) -> None:
        await deliveries.put(delivery)
        if delivery.delivery_count == 1:
            handling.set()
            await asyncio.sleep(1)  # the connection drops meanwhile: this ack cannot reach the broker

    try:
        await bus.consume(QueueSpec("work", ("sfm.done",)), cut_during_first)
        await bus.publish(event := sfm_done())
        await asyncio.wait_for(handling.wait(), TIMEOUT)
        proxy.cut()
        first = await asyncio.wait_for(deliveries.get(), TIMEOUT)
        again = await asyncio.wait_for(deliveries.get(), TIMEOUT)
        assert (first.delivery_count, again.event, again.delivery_count) == (1, event, 2)
        # Publishing works again on the restored channel.
        await asyncio.wait_for(_publish_when_ready(bus, second := sfm_done()), TIMEOUT)
        assert (await asyncio.wait_for(deliveries.get(), TIMEOUT)).event == second
    finally:
        await bus.close()
        await proxy.stop()


async def _publish_when_ready(bus: RabbitBus, event: Envelope) -> None:
    while True:
        try:
            return await bus.publish(event)
        except BusError:
            await asyncio.sleep(0.1)
