"""The bus port's vocabulary: names, errors, what a handler is given and the ``Bus`` protocol.

Its own module so that the adapters and :mod:`photosplat_libs.topology` import it without importing
the package that chooses between them."""

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
class QueueStats:
    """A queue as the broker reports it: messages waiting (not those delivered and unacked) and
    attached consumers."""

    messages: int
    consumers: int


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

    async def queue_stats(self, name: str) -> QueueStats | None:
        """Depth and consumers of queue ``name`` (as in its QueueSpec), None if it does not exist."""

    def ready(self) -> bool:
        """Connected, and every consumer started on this bus is still consuming (readiness probe;
        reads state only, safe from another thread)."""
