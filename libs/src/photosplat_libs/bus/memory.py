"""The embedded bus: RabbitMQ's topology and delivery semantics, inside one process.

It models what the services rely on in the RabbitMQ adapter: one topic exchange with AMQP topic
matching, mandatory publishing, per-queue FIFO, ack / requeue / dead-letter, delivery limits counted
per message, a dead-letter exchange routed by the original routing key, a parking queue for every
dead letter, and unacked messages returning to their queue when their consumer goes away.
Messages are stored encoded and decoded per delivery, exactly as they travel through a broker."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

from photosplat_libs.bus._dispatch import Outcome, dispatch
from photosplat_libs.bus.port import DEAD_LETTER_QUEUE, BusError, Death, Handler, QueueSpec, QueueStats, Unroutable
from photosplat_libs.events import Envelope, encode

log = logging.getLogger("photosplat_libs.bus")

# The parking queue of an embedded process that runs for weeks must not grow without bound.
PARKED_MAX = 10_000

DeathReason = Literal["rejected", "delivery_limit"]


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _match(rest, words[1:])


@dataclass(frozen=True)
class DeadLetter:
    """A message in the parking queue, with where and why it died (RabbitMQ's ``x-death``)."""

    queue: str
    routing_key: str
    body: bytes
    reason: DeathReason


@dataclass
class _Message:
    routing_key: str
    body: bytes
    deliveries: int = 0
    death: Death | None = None


class _Consumer:
    """Like a broker's consumer: it holds up to ``prefetch`` delivered, unsettled messages."""

    def __init__(self, prefetch: int) -> None:
        self.prefetch = prefetch
        self.unsettled = 0
        # Set when its bus closes, so that messages returned by other consumers don't land here.
        self.closing = False
        self.inbox: deque[_Message] = deque()
        self._ready = asyncio.Event()

    def deliver(self, message: _Message) -> None:
        message.deliveries += 1
        self.unsettled += 1
        self.inbox.append(message)
        self._ready.set()

    async def next(self) -> _Message:
        while not self.inbox:
            self._ready.clear()
            await self._ready.wait()
        return self.inbox.popleft()


class _Queue:
    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.bindings: set[str] = set(spec.bindings)
        self._messages: deque[_Message] = deque()
        self._consumers: list[_Consumer] = []
        self._turn = 0

    def matches(self, routing_key: str) -> bool:
        return any(topic_matches(b, routing_key) for b in self.bindings)

    def put(self, message: _Message) -> None:
        self._messages.append(message)
        self._dispatch()

    def put_back(self, messages: list[_Message]) -> None:
        # Returned messages take the head of the queue, in their order, as RabbitMQ requeues them.
        self._messages.extendleft(reversed(messages))
        self._dispatch()

    def attach(self, consumer: _Consumer) -> None:
        self._consumers.append(consumer)
        self._dispatch()

    def detach(self, consumer: _Consumer) -> list[_Message]:
        """Removes the consumer; returns what it had been given but not yet handled."""
        self._consumers.remove(consumer)
        undelivered = list(consumer.inbox)
        consumer.inbox.clear()
        return undelivered

    def settled(self, consumer: _Consumer) -> None:
        consumer.unsettled -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        # Push to consumers with room, round-robin: a consumer's prefetched messages are its own,
        # so a requeued message goes behind them (the order a broker produces).
        while self._messages:
            consumer = self._consumer_with_room()
            if consumer is None:
                return
            consumer.deliver(self._messages.popleft())

    def _consumer_with_room(self) -> _Consumer | None:
        for offset in range(len(self._consumers)):
            consumer = self._consumers[(self._turn + offset) % len(self._consumers)]
            if not consumer.closing and consumer.unsettled < consumer.prefetch:
                self._turn = (self._turn + offset + 1) % len(self._consumers)
                return consumer
        return None

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def consumer_count(self) -> int:
        return sum(not c.closing for c in self._consumers)


class MemoryBus:
    durable = False

    def __init__(self, namespace: str = "") -> None:
        # Names are private to this instance, so the namespace (kept for create_bus's signature)
        # cannot collide with anything and changes nothing.
        self._queues: dict[str, _Queue] = {}
        self._parked: deque[DeadLetter] = deque(maxlen=PARKED_MAX)
        self._consumers: dict[asyncio.Task[None], _Consumer] = {}
        self._started = False

    async def start(self) -> None:
        """Also reopens a closed bus: its queues and their messages are still there, like a broker's."""
        self._started = True

    async def close(self) -> None:
        """Like a dropped connection: consumers stop, their in-flight messages go back to their queues,
        exclusive queues disappear with everything in them."""
        self._started = False
        consumers, self._consumers = self._consumers, {}
        for task, consumer in consumers.items():
            consumer.closing = True
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        self._queues = {name: q for name, q in self._queues.items() if not q.spec.exclusive}

    async def declare(self, spec: QueueSpec) -> None:
        self._declare(spec)

    async def publish(self, event: Envelope) -> None:
        await self.publish_raw(event.routing_key, encode(event))

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish bytes as they are (replaying a parked message, or a malformed one in a test)."""
        self._require_started()
        targets = [q for q in self._queues.values() if not q.spec.dead_letters and q.matches(routing_key)]
        if not targets:
            raise Unroutable(f"no queue is bound to routing key {routing_key!r}")
        for queue in targets:
            queue.put(_Message(routing_key, body))

    async def consume(self, spec: QueueSpec, handler: Handler) -> None:
        queue = self._declare(spec)
        consumer = _Consumer(spec.prefetch)
        task = asyncio.create_task(
            self._run_consumer(queue, consumer, handler), name=f"memory-bus-consumer:{spec.name}"
        )
        self._consumers[task] = consumer
        task.add_done_callback(lambda done: self._consumers.pop(done, None))

    def dead_letters(self, queue: str | None = None) -> list[DeadLetter]:
        """The parking queue, oldest first; only what died in ``queue`` when given."""
        return [d for d in self._parked if queue is None or d.queue == queue]

    async def queue_stats(self, name: str) -> QueueStats | None:
        if name == DEAD_LETTER_QUEUE:
            return QueueStats(messages=len(self._parked), consumers=0)
        queue = self._queues.get(name)
        return None if queue is None else QueueStats(messages=len(queue), consumers=queue.consumer_count)

    def ready(self) -> bool:
        # A consumer task ends only when its bus closes (handler errors are settled, not raised).
        return self._started and all(not task.done() for task in list(self._consumers))

    def depth(self, queue: str) -> int:
        """Messages in ``queue`` not yet given to a consumer."""
        return len(self._queues[queue])

    def _require_started(self) -> None:
        if not self._started:
            raise BusError("the bus is not started")

    def _declare(self, spec: QueueSpec) -> _Queue:
        self._require_started()
        existing = self._queues.get(spec.name)
        if existing is None:
            queue = self._queues[spec.name] = _Queue(spec)
            return queue
        old = existing.spec
        if (old.delivery_limit, old.exclusive, old.dead_letters) != (
            spec.delivery_limit,
            spec.exclusive,
            spec.dead_letters,
        ):
            # RabbitMQ answers PRECONDITION_FAILED to a redeclaration with other arguments.
            raise BusError(f"queue {spec.name!r} already exists with other arguments: {old}")
        # Bindings add up, as repeated queue.bind calls do.
        existing.bindings.update(spec.bindings)
        return existing

    async def _run_consumer(self, queue: _Queue, consumer: _Consumer, handler: Handler) -> None:
        # Attached here, not in consume(): a task cancelled before it ever ran must hold nothing.
        queue.attach(consumer)
        in_flight: _Message | None = None
        try:
            while True:
                in_flight = await consumer.next()
                outcome = await dispatch(
                    handler, in_flight.body, queue.spec.name, in_flight.deliveries, in_flight.death
                )
                if outcome is Outcome.DEAD_LETTER:
                    self._dead_letter(queue, in_flight, "rejected")
                elif outcome is Outcome.REQUEUE:
                    self._return(queue, [in_flight])
                in_flight = None
                queue.settled(consumer)
                if outcome is Outcome.REQUEUE:
                    # A handler that fails without awaiting must not starve the event loop.
                    await asyncio.sleep(0)
        finally:
            # The consumer went away (bus closed): what it held goes back, as on a dropped connection.
            undelivered = queue.detach(consumer)
            self._return(queue, ([in_flight] if in_flight else []) + undelivered)

    def _return(self, queue: _Queue, messages: list[_Message]) -> None:
        # Exclusive queues are classic queues in RabbitMQ: they have no delivery limit.
        back = []
        for message in messages:
            if queue.spec.exclusive or message.deliveries < queue.spec.delivery_limit:
                back.append(message)
            else:
                self._dead_letter(queue, message, "delivery_limit")
        queue.put_back(back)

    def _dead_letter(self, queue: _Queue, message: _Message, reason: DeathReason) -> None:
        if queue.spec.dead_letters:
            # Dead-letter queues have no dead-letter exchange of their own (no cycles): dropped.
            log.error("queue %s: dropping a dead letter (%s, %s)", queue.spec.name, message.routing_key, reason)
            return
        self._parked.append(DeadLetter(queue.spec.name, message.routing_key, message.body, reason))
        # RabbitMQ keeps the first death when a dead letter dies again.
        death = message.death or Death(queue.spec.name, reason)
        for target in self._queues.values():
            if target.spec.dead_letters and target.matches(message.routing_key):
                target.put(_Message(message.routing_key, message.body, death=death))
