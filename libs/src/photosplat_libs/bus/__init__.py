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

from photosplat_libs.bus.port import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EXCHANGE,
    Bus,
    BusError,
    Death,
    Delivery,
    Handler,
    QueueSpec,
    QueueStats,
    Reject,
    Unroutable,
)

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "DEAD_LETTER_QUEUE",
    "EXCHANGE",
    "Bus",
    "BusError",
    "Death",
    "Delivery",
    "Handler",
    "QueueSpec",
    "QueueStats",
    "Reject",
    "Unroutable",
    "create_bus",
]


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
