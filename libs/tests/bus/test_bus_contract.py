"""The bus contract (bus/__init__.py), checked on both adapters: the in-memory bus must behave as
RabbitMQ does, or tests written against it would prove nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest

from photosplat_libs.bus import DEAD_LETTER_QUEUE, Bus, Death, Delivery, QueueSpec, Reject, Unroutable
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.bus.rabbit import RabbitBus, qualified
from photosplat_libs.events import Envelope, ImagesValidated, JobSubmitted, SfmDone, encode

TIMEOUT = 5.0
QUIET = 0.3


def sfm_done() -> SfmDone:
    return SfmDone(
        job_id=uuid.uuid4(), sparse_key="jobs/x/sfm/sparse.zip", registered_images=3, total_images=3,
        points=100, reprojection_error=0.5,
    )


def images_validated() -> ImagesValidated:
    return ImagesValidated(job_id=uuid.uuid4(), images=())


class Inbox:
    """A handler that records each delivery and raises ``error`` on its first ``failures`` calls."""

    def __init__(self, *, failures: int = 0, error: Exception | None = None) -> None:
        self._deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self._failures = failures
        self._error = error or RuntimeError("handler failed")
        self.calls = 0

    async def __call__(self, event: Envelope, delivery: Delivery) -> None:
        self.calls += 1
        await self._deliveries.put(delivery)
        if self.calls <= self._failures:
            raise self._error

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self._deliveries.get(), TIMEOUT)

    async def assert_quiet(self) -> None:
        await asyncio.sleep(QUIET)
        assert self._deliveries.empty()


class Broker:
    """Opens buses onto one broker: for memory the same bus, reopened (its queues live on)."""

    def __init__(self, kind: str, amqp_url: str, namespace: str) -> None:
        self.kind, self._amqp_url, self._namespace = kind, amqp_url, namespace
        self._memory = MemoryBus()
        self._opened: list[Bus] = []

    async def connect(self) -> Bus:
        bus: Bus = self._memory if self.kind == "memory" else RabbitBus(self._amqp_url, namespace=self._namespace)
        await bus.start()
        self._opened.append(bus)
        return bus

    async def close_all(self) -> None:
        for bus in reversed(self._opened):
            await bus.close()

    async def parked(self, count: int) -> list[bytes]:
        """Bodies in the parking queue, once there are ``count`` (dead-lettering is asynchronous)."""
        if self.kind == "memory":
            return [d.body for d in self._memory.dead_letters()]
        bodies: list[bytes] = []
        async with await aio_pika.connect(self._amqp_url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(qualified(self._namespace, DEAD_LETTER_QUEUE), passive=True)
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while len(bodies) < count and asyncio.get_running_loop().time() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is None:
                    await asyncio.sleep(0.05)
                else:
                    bodies.append(message.body)
        return bodies


@pytest.fixture(params=["memory", "rabbit"])
async def broker(request: pytest.FixtureRequest, amqp_url: str, bus_namespace: str) -> AsyncIterator[Broker]:
    broker = Broker(request.param, amqp_url, bus_namespace)
    yield broker
    await broker.close_all()


async def test_routes_by_topic_pattern(broker: Broker) -> None:
    bus = await broker.connect()
    exact, everything, done = Inbox(), Inbox(), Inbox()
    await bus.consume(QueueSpec("exact", ("images.validated",)), exact)
    await bus.consume(QueueSpec("everything", ("#",)), everything)
    await bus.consume(QueueSpec("done", ("*.done",)), done)
    first, second = images_validated(), sfm_done()
    await bus.publish(first)
    await bus.publish(second)

    assert (await exact.next()).event == first
    assert [(await everything.next()).event for _ in range(2)] == [first, second]
    delivery = await done.next()
    assert (delivery.event, delivery.delivery_count, delivery.queue) == (second, 1, "done")
    await exact.assert_quiet()
    await done.assert_quiet()


async def test_unroutable_publish_raises(broker: Broker) -> None:
    bus = await broker.connect()
    with pytest.raises(Unroutable):
        await bus.publish(sfm_done())
    await bus.declare(QueueSpec("sfm", ("sfm.done",)))
    # A dead-letter queue listens on the dead-letter exchange: it makes nothing routable.
    await bus.declare(QueueSpec("dead", ("#",), dead_letters=True))
    await bus.publish(sfm_done())
    with pytest.raises(Unroutable):
        await bus.publish(JobSubmitted(job_id=uuid.uuid4(), image_count=1, pub_key_hash="h"))


async def test_declare_is_idempotent_and_buffers_until_consumed(broker: Broker) -> None:
    spec = QueueSpec("work", ("sfm.done",))
    bus = await broker.connect()
    await bus.declare(spec)
    await bus.declare(spec)
    events = [sfm_done() for _ in range(3)]
    for event in events:
        await bus.publish(event)
    # A new connection (a restarted consumer process) still finds them, in order.
    await bus.close()
    bus = await broker.connect()
    inbox = Inbox()
    await bus.consume(spec, inbox)
    deliveries = [await inbox.next() for _ in events]
    assert [d.event for d in deliveries] == events
    assert {d.delivery_count for d in deliveries} == {1}


async def test_acked_message_is_gone(broker: Broker) -> None:
    spec = QueueSpec("work", ("sfm.done",))
    bus = await broker.connect()
    inbox = Inbox()
    await bus.consume(spec, inbox)
    await bus.publish(first := sfm_done())
    assert (await inbox.next()).event == first
    await asyncio.sleep(0.1)  # let the ack reach the broker
    await bus.close()

    bus = await broker.connect()
    inbox = Inbox()
    await bus.consume(spec, inbox)
    await bus.publish(second := sfm_done())
    assert (await inbox.next()).event == second
    await inbox.assert_quiet()


async def test_failed_handler_gets_the_message_again(broker: Broker) -> None:
    bus = await broker.connect()
    inbox = Inbox(failures=1)
    await bus.consume(QueueSpec("work", ("sfm.done",)), inbox)
    await bus.publish(event := sfm_done())
    first, second = await inbox.next(), await inbox.next()
    assert (first.event, first.delivery_count) == (event, 1)
    assert (second.event, second.delivery_count) == (event, 2)
    await inbox.assert_quiet()


async def test_delivery_limit_dead_letters(broker: Broker) -> None:
    bus = await broker.connect()
    work, dead = Inbox(failures=100), Inbox()
    await bus.consume(QueueSpec("dead", ("sfm.#",), dead_letters=True), dead)
    await bus.consume(QueueSpec("work", ("sfm.done",), delivery_limit=2), work)
    await bus.publish(event := sfm_done())

    assert [(await work.next()).delivery_count for _ in range(2)] == [1, 2]
    parked = await dead.next()
    assert (parked.event, parked.queue, parked.delivery_count) == (event, "dead", 1)
    # The consumer of dead letters learns where and why each died (RabbitMQ's x-death).
    assert parked.death == Death(queue="work", reason="delivery_limit")
    await work.assert_quiet()
    assert await broker.parked(1) == [encode(event)]


async def test_reject_dead_letters_at_once(broker: Broker) -> None:
    bus = await broker.connect()
    work, dead = Inbox(failures=1, error=Reject("bad request")), Inbox()
    await bus.consume(QueueSpec("dead", ("#",), dead_letters=True), dead)
    await bus.consume(QueueSpec("work", ("sfm.done",)), work)
    await bus.publish(event := sfm_done())

    assert (await work.next()).delivery_count == 1
    parked = await dead.next()
    assert (parked.event, parked.death) == (event, Death(queue="work", reason="rejected"))
    await work.assert_quiet()


async def test_invalid_body_is_dead_lettered(broker: Broker) -> None:
    bus = await broker.connect()
    work = Inbox()
    await bus.consume(QueueSpec("work", ("sfm.done",)), work)
    garbage = b'{"type": "SfmDone", "job_id": "not a uuid"}'
    await bus.publish_raw("sfm.done", garbage)  # type: ignore[attr-defined]
    await bus.publish(event := sfm_done())

    assert (await work.next()).event == event
    await work.assert_quiet()
    assert await broker.parked(1) == [garbage]


async def test_consumer_dying_mid_message_hands_it_to_the_next(broker: Broker) -> None:
    spec = QueueSpec("work", ("sfm.done",))
    bus = await broker.connect()
    started = asyncio.Event()

    async def stuck(event: Envelope, delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    await bus.consume(spec, stuck)
    await bus.publish(event := sfm_done())
    await asyncio.wait_for(started.wait(), TIMEOUT)
    await bus.close()

    bus = await broker.connect()
    inbox = Inbox()
    await bus.consume(spec, inbox)
    delivery = await inbox.next()
    assert (delivery.event, delivery.delivery_count) == (event, 2)


async def test_one_message_at_a_time_in_order(broker: Broker) -> None:
    bus = await broker.connect()
    events = [sfm_done() for _ in range(5)]
    seen: list[Envelope] = []
    running = 0
    overlap = False
    done = asyncio.Event()

    async def slow(event: Envelope, delivery: Delivery) -> None:
        nonlocal running, overlap
        running += 1
        overlap |= running > 1
        await asyncio.sleep(0.02)
        seen.append(event)
        running -= 1
        if len(seen) == len(events):
            done.set()

    spec = QueueSpec("work", ("sfm.done",), prefetch=10)
    await bus.declare(spec)
    for event in events:
        await bus.publish(event)
    await bus.consume(spec, slow)
    await asyncio.wait_for(done.wait(), TIMEOUT)
    assert seen == events
    assert not overlap


async def test_requeued_message_goes_behind_what_the_consumer_prefetched(broker: Broker) -> None:
    bus = await broker.connect()
    spec = QueueSpec("work", ("sfm.done",), prefetch=10)
    await bus.declare(spec)
    first, second, third = events = [sfm_done() for _ in range(3)]
    for event in events:
        await bus.publish(event)
    inbox = Inbox(failures=1)
    await bus.consume(spec, inbox)
    seen = [(d.event, d.delivery_count) for d in [await inbox.next() for _ in range(4)]]
    assert seen == [(first, 1), (second, 1), (third, 1), (first, 2)]


async def test_competing_consumers_share_a_queue(broker: Broker) -> None:
    bus = await broker.connect()
    spec = QueueSpec("work", ("sfm.done",))
    handled: dict[str, list[Envelope]] = {"a": [], "b": []}
    all_done = asyncio.Event()
    events = [sfm_done() for _ in range(4)]

    def worker(name: str) -> Callable[[Envelope, Delivery], Awaitable[None]]:
        async def handle(event: Envelope, delivery: Delivery) -> None:
            await asyncio.sleep(0.05)
            handled[name].append(event)
            if sum(map(len, handled.values())) == len(events):
                all_done.set()

        return handle

    await bus.consume(spec, worker("a"))
    await bus.consume(spec, worker("b"))
    for event in events:
        await bus.publish(event)
    await asyncio.wait_for(all_done.wait(), TIMEOUT)
    assert sorted(map(str, (e.event_id for e in handled["a"] + handled["b"]))) == sorted(
        str(e.event_id) for e in events
    )
    assert handled["a"] and handled["b"]
