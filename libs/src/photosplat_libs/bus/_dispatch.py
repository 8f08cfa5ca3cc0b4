"""What both bus adapters do with one delivered message: decode it, run the handler, decide its fate.

Keeping this in one place is what makes the in-memory bus a faithful stand-in for RabbitMQ."""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from pydantic import ValidationError

from photosplat_libs.bus.port import Death, Delivery, Handler, Reject
from photosplat_libs.events import decode

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
    try:
        event = decode(body)
    except ValidationError as exc:
        log.error("queue %s: dead-lettering a message that is not a valid event: %s", queue, exc)
        return Outcome.DEAD_LETTER
    context = f"queue {queue}: {event.type} {event.event_id} (job {event.job_id}, delivery {delivery_count})"
    try:
        await handler(event, Delivery(event=event, delivery_count=delivery_count, queue=queue, death=death))
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
