"""What both bus adapters do with one delivered message: decode it, run the handler, decide its fate.

Keeping this in one place is what makes the in-memory bus a faithful stand-in for RabbitMQ."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from pydantic import ValidationError

from photosplat_libs.bus.port import Death, Delivery, Handler, Reject
from photosplat_libs.events import Envelope, decode
from photosplat_libs.observability.logs import log_context
from photosplat_libs.observability.metrics import DEAD_LETTERS

log = logging.getLogger("photosplat_libs.bus")


class Outcome(Enum):
    ACK = "ack"
    # Put back for redelivery (the queue's delivery limit may dead-letter it instead).
    REQUEUE = "requeue"
    DEAD_LETTER = "dead_letter"


async def dispatch(
    handler: Handler, body: bytes, queue: str, delivery_count: int, death: Death | None = None
) -> Outcome:
    """Raises ``CancelledError`` only when the consumer itself is being cancelled (closing bus):
    the message is then neither acked nor rejected, so it goes back to its queue."""
    if death is not None and delivery_count == 1:
        DEAD_LETTERS.labels(death.queue).inc()  # counted once, not on each retry of its consumer
    try:
        event = decode(body)
    except ValidationError as exc:
        log.error("queue %s: dead-lettering a message that is not a valid event: %s", queue, exc)
        return Outcome.DEAD_LETTER
    with log_context(job_id=event.job_id, attempt=event.attempt, stage=getattr(event, "stage", None)):
        return await _handle(handler, event, Delivery(event, delivery_count, queue, death))


async def _handle(handler: Handler, event: Envelope, delivery: Delivery) -> Outcome:
    context = (
        f"queue {delivery.queue}: {event.type} {event.event_id} "
        f"(job {event.job_id}, delivery {delivery.delivery_count})"
    )
    try:
        await handler(event, delivery)
    except Reject as exc:
        log.warning("%s rejected, dead-lettering: %s", context, exc)
        return Outcome.DEAD_LETTER
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # A handler that leaks a CancelledError of its own must not end the consumer.
        log.error("%s: handler raised CancelledError, requeueing", context)
        return Outcome.REQUEUE
    except Exception:
        log.exception("%s failed, requeueing", context)
        return Outcome.REQUEUE
    return Outcome.ACK
