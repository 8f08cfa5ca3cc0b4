"""The RabbitMQ adapter (aio-pika, RabbitMQ >= 3.10).

Topology (``ns.`` prefixes every name when a namespace is given):

- ``ns.photosplat.events``: durable topic exchange every event is published to (mandatory, confirmed,
  persistent);
- ``ns.photosplat.dead``: durable topic exchange for dead letters, routed by the original routing key;
  ``ns.photosplat.dead-letters`` (the parking queue) is bound to it with ``#``;
- one durable **quorum** queue per :class:`QueueSpec`, with ``x-dead-letter-exchange`` and
  ``x-delivery-limit``: the broker counts deliveries itself (``x-delivery-count``), so the limit holds
  across consumer crashes and restarts; ``exclusive`` specs are classic, exclusive, auto-delete queues.

Long jobs: RabbitMQ closes the channel of a consumer that has not acked a delivery within
``consumer_timeout`` (30 minutes by default) and redelivers the message while the job still runs.
RabbitMQ 3.10 has no per-queue setting, so deploy/ raises ``consumer_timeout`` in rabbitmq.conf above
the longest job the work queues (prefetch 1) can hold.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractQueueIterator,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelNotFoundEntity, DeliveryError, PublishError

from photosplat_libs.bus._dispatch import Outcome, dispatch
from photosplat_libs.bus.port import (
    DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE,
    EXCHANGE,
    BusError,
    Death,
    Handler,
    QueueSpec,
    QueueStats,
    Unroutable,
)
from photosplat_libs.events import Envelope, encode
from photosplat_libs.topology import DURABLE_QUEUES

log = logging.getLogger("photosplat_libs.bus")

PUBLISH_TIMEOUT_S = 30.0
# How long close() waits for a consumer to cancel its subscription before dropping the connection.
CLOSE_TIMEOUT_S = 5.0
_ERRORS = (*CONNECTION_EXCEPTIONS, asyncio.TimeoutError)

# Durable queues declared in this process, per namespace, so that delete_namespace finds queues
# that are not part of the system topology (tests declare their own).
_declared_queues: dict[str, set[str]] = {}


def qualified(namespace: str, name: str) -> str:
    return f"{namespace}.{name}" if namespace else name


def _quorum_arguments(spec: QueueSpec, dead_letter_exchange: str) -> dict[str, str | int]:
    arguments: dict[str, str | int] = {
        "x-queue-type": "quorum",
        # The broker dead-letters a message returned more than x-delivery-limit times, i.e. on
        # its (limit + 1)-th failed delivery; the spec counts deliveries.
        "x-delivery-limit": spec.delivery_limit - 1,
    }
    if not spec.dead_letters:
        arguments["x-dead-letter-exchange"] = dead_letter_exchange
    return arguments


def _delivery_count(message: AbstractIncomingMessage) -> int:
    returned = (message.headers or {}).get("x-delivery-count")
    if isinstance(returned, int):
        return returned + 1
    # Classic (exclusive) queues only say whether the message was delivered before.
    return 2 if message.redelivered else 1


def _death(message: AbstractIncomingMessage, namespace: str) -> Death | None:
    headers = message.headers or {}
    queue, reason = headers.get("x-first-death-queue"), headers.get("x-first-death-reason")
    if not isinstance(queue, str) or not isinstance(reason, str):
        return None
    return Death(queue=queue.removeprefix(qualified(namespace, "")), reason=reason)


class RabbitBus:
    durable = True

    def __init__(self, url: str, namespace: str = "") -> None:
        self._url = url
        self._namespace = namespace
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumers: list[asyncio.Task[None]] = []
        # Passive declares of a missing queue close their channel: they get one of their own.
        self._stats_channel: AbstractChannel | None = None

    def _name(self, name: str) -> str:
        return qualified(self._namespace, name)

    async def start(self) -> None:
        try:
            # Robust: reconnects, then redeclares its channels, queues, bindings and consumers.
            self._connection = await aio_pika.connect_robust(self._url)
        except _ERRORS as exc:
            raise BusError(f"cannot connect to RabbitMQ at {urlsplit(self._url).hostname}: {exc!r}") from exc
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._channel.declare_exchange(
            self._name(EXCHANGE), aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead = await self._channel.declare_exchange(
            self._name(DEAD_LETTER_EXCHANGE), aio_pika.ExchangeType.TOPIC, durable=True
        )
        parking = await self._channel.declare_queue(
            self._name(DEAD_LETTER_QUEUE), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await parking.bind(dead, "#")

    async def close(self) -> None:
        """Stops the consumers; a message being handled is not acked, so the broker requeues it."""
        consumers, self._consumers = self._consumers, []
        for task in consumers:
            task.cancel()
        if consumers:
            await asyncio.wait(consumers, timeout=CLOSE_TIMEOUT_S)
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = self._stats_channel = None

    async def declare(self, spec: QueueSpec) -> None:
        await self._declare(self._require_channel(), spec)

    async def publish(self, event: Envelope) -> None:
        message = aio_pika.Message(
            encode(event),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(event.event_id),
            type=event.type,
            content_type="application/json",
            timestamp=event.occurred_at,
        )
        await self._publish(message, event.routing_key)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Publish bytes as they are (replaying a parked message, or a malformed one in a test)."""
        await self._publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key)

    async def consume(self, spec: QueueSpec, handler: Handler) -> None:
        if self._connection is None:
            raise BusError("the bus is not started")
        # A channel per consumer: its prefetch is its own, and closing it returns only its messages.
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=spec.prefetch)
        queue = await self._declare(channel, spec)
        messages = queue.iterator()
        await messages.consume()
        task = asyncio.create_task(self._run_consumer(messages, spec, handler), name=f"rabbit-consumer:{spec.name}")
        task.add_done_callback(_report_crash)
        self._consumers.append(task)

    async def queue_stats(self, name: str) -> QueueStats | None:
        if self._connection is None:
            raise BusError("the bus is not started")
        try:
            if self._stats_channel is None or self._stats_channel.is_closed:
                self._stats_channel = await self._connection.channel(publisher_confirms=False)
            underlay = await self._stats_channel.get_underlay_channel()
            declared = await underlay.queue_declare(self._name(name), passive=True)
        except ChannelNotFoundEntity:
            await self._drop_stats_channel()
            return None
        except _ERRORS as exc:
            await self._drop_stats_channel()
            raise BusError(f"reading queue {name!r} failed: {exc!r}") from exc
        return QueueStats(messages=declared.message_count or 0, consumers=declared.consumer_count or 0)

    async def _drop_stats_channel(self) -> None:
        channel, self._stats_channel = self._stats_channel, None
        if channel is not None:
            try:
                await channel.close()  # closed on purpose: a robust channel would reopen otherwise
            except _ERRORS:
                pass

    def ready(self) -> bool:
        connection = self._connection
        if connection is None or connection.is_closed:
            return False
        # A robust connection clears `connected` while it reconnects.
        connected = getattr(connection, "connected", None)
        if connected is not None and not connected.is_set():
            return False
        return all(not task.done() for task in self._consumers)

    def _require_channel(self) -> AbstractChannel:
        if self._channel is None:
            raise BusError("the bus is not started")
        return self._channel

    async def _publish(self, message: aio_pika.Message, routing_key: str) -> None:
        if self._exchange is None:
            raise BusError("the bus is not started")
        try:
            await self._exchange.publish(message, routing_key=routing_key, mandatory=True, timeout=PUBLISH_TIMEOUT_S)
        except PublishError as exc:
            raise Unroutable(f"no queue is bound to routing key {routing_key!r}") from exc
        except DeliveryError as exc:
            raise BusError(f"the broker refused the message ({routing_key!r})") from exc
        except _ERRORS as exc:
            raise BusError(f"publishing {routing_key!r} failed: {exc!r}") from exc

    async def _declare(self, channel: AbstractChannel, spec: QueueSpec) -> AbstractQueue:
        name = self._name(spec.name)
        dead_letter_exchange = self._name(DEAD_LETTER_EXCHANGE)
        try:
            if spec.exclusive:
                queue = await channel.declare_queue(
                    name,
                    exclusive=True,
                    auto_delete=True,
                    arguments={"x-dead-letter-exchange": dead_letter_exchange},
                )
            else:
                _declared_queues.setdefault(self._namespace, set()).add(name)
                queue = await channel.declare_queue(
                    name, durable=True, arguments=_quorum_arguments(spec, dead_letter_exchange)
                )
            source = dead_letter_exchange if spec.dead_letters else self._name(EXCHANGE)
            for key in spec.bindings:
                await queue.bind(source, key)
        except _ERRORS as exc:
            raise BusError(f"declaring queue {name!r} failed: {exc!r}") from exc
        return queue

    async def _run_consumer(self, messages: AbstractQueueIterator, spec: QueueSpec, handler: Handler) -> None:
        async with messages:
            async for message in messages:
                # Cancelled mid-handler, the message stays unacked: closing the channel requeues it.
                outcome = await dispatch(
                    handler, message.body, spec.name, _delivery_count(message), _death(message, self._namespace)
                )
                await _settle(message, outcome, spec.name)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: its queue is no longer consumed", task.get_name(), exc_info=task.exception())


async def _settle(message: AbstractIncomingMessage, outcome: Outcome, queue: str) -> None:
    try:
        if outcome is Outcome.ACK:
            await message.ack()
        elif outcome is Outcome.REQUEUE:
            await message.nack(requeue=True)
        else:
            await message.reject(requeue=False)
    except _ERRORS as exc:
        # The channel was lost while handling: the broker has already put the message back.
        log.warning("queue %s: could not %s a message (%r); it will be redelivered", queue, outcome.value, exc)


async def delete_namespace(amqp_url: str, namespace: str) -> None:
    """Delete every queue and exchange a :class:`RabbitBus` of ``namespace`` may have created.

    Deleting a queue or exchange that does not exist succeeds in RabbitMQ; an entity that cannot be
    deleted (e.g. an exclusive queue of a live connection) is skipped."""
    queues = {qualified(namespace, s.name) for s in DURABLE_QUEUES}
    queues |= {qualified(namespace, DEAD_LETTER_QUEUE)} | _declared_queues.pop(namespace, set())
    exchanges = {qualified(namespace, EXCHANGE), qualified(namespace, DEAD_LETTER_EXCHANGE)}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for kind, names in (("queue", queues), ("exchange", exchanges)):
            for name in sorted(names):
                try:
                    underlay = await channel.get_underlay_channel()
                    if kind == "queue":
                        await underlay.queue_delete(name)
                    else:
                        await underlay.exchange_delete(name)
                except _ERRORS as exc:
                    log.warning("could not delete %s %s: %r", kind, name, exc)
                    # A refused operation closes the channel.
                    channel = await connection.channel()
