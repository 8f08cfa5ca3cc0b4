"""The message-bus port: one interface, a RabbitMQ adapter and an in-memory adapter.

Semantics every adapter keeps (the in-memory one included, so that tests of it mean something):

- one topic exchange; an event is published with routing key ``event.routing_key``; publishing an
  event that no queue is bound to raises :class:`Unroutable` (mandatory publishing);
- a handler that returns acknowledges the message; one that raises puts it back for redelivery;
  a message delivered ``delivery_limit`` times without an ack, or one that raises :class:`Reject`,
  or one whose body is not a valid event, goes to the dead-letter queue; its consumer learns from
  :attr:`Delivery.death` which queue it died in and why;
- messages of one consumer are handled one at a time, in delivery order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol

from photosplat_libs.events import Envelope

EXCHANGE = "photosplat.events"
DEAD_LETTER_EXCHANGE = "photosplat.dead"
DEAD_LETTER_QUEUE = "photosplat.dead-letters"


class BusError(Exception):
    pass


class Unroutable(BusError):
    """No queue is bound for the event's routing key."""


class Reject(Exception):
    """Raised by a handler: never redeliver this message, dead-letter it now."""


@dataclass(frozen=True)
class Death:
    """Where a dead letter died (RabbitMQ's ``x-first-death-queue``/``-reason``)."""

    # The queue's name as in its QueueSpec (without the namespace).
    queue: str
    # "delivery_limit" or "rejected" (RabbitMQ may also say "expired" or "maxlen").
    reason: str


@dataclass(frozen=True)
class Delivery:
    event: Envelope
    # 1 on the first delivery, 2 on the first redelivery, ...
    delivery_count: int
    queue: str
    # Set on the deliveries of a dead-letter queue.
    death: Death | None = None


Handler = Callable[[Envelope, Delivery], Awaitable[None]]


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[str, ...]
    delivery_limit: int = 5
    prefetch: int = 1
    # A private queue of one consumer process (e.g. a worker's cancel queue): not durable, deleted
    # with its consumer, no delivery limit.
    exclusive: bool = False
    # Bind to the dead-letter exchange instead of the event exchange.
    dead_letters: bool = False


class Bus(Protocol):
    # Whether messages survive a restart of this process (RabbitMQ: yes; in-memory: no).
    durable: bool

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def declare(self, spec: QueueSpec) -> None:
        """Create the queue and its bindings without consuming (idempotent)."""

    async def publish(self, event: Envelope) -> None:
        """Publish persistently; returns once the broker has confirmed it."""

    async def consume(self, spec: QueueSpec, handler: Handler) -> None:
        """Declare ``spec`` and start handling its messages in the background."""


def create_bus(url: str, *, namespace: str = "") -> Bus:
    """``memory://`` for the embedded bus, ``amqp://...`` for RabbitMQ.

    ``namespace`` prefixes every exchange and queue name (``{namespace}.photosplat.events``), so that
    several deployments or tests can share one broker."""
    if url.startswith("memory:"):
        from photosplat_libs.bus.memory import MemoryBus

        return MemoryBus(namespace=namespace)
    if url.startswith(("amqp://", "amqps://")):
        from photosplat_libs.bus.rabbit import RabbitBus

        return RabbitBus(url, namespace=namespace)
    raise ValueError(f"unsupported bus url: {url!r} (expected memory:// or amqp://)")
