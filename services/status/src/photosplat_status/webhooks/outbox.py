"""The notification of a job's end, added in the transaction that ends it (an outbox row: it is
sent after the commit by :mod:`.sender`, and a crash only delays it)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.models import Job, JobStatus, JobWebhook, WebhookDelivery
from photosplat_libs.security import unseal_pub_key
from photosplat_libs.webhooks.notification import JobEnded, TerminalStatus, WebhookEvent


class DeliveryState(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    # every attempt failed
    FAILED = "FAILED"


async def announce_end(session: AsyncSession, job: Job, now: datetime) -> None:
    """Call where a job has just become terminal, in that transaction. A job without a callback
    gets nothing."""
    hook = await session.get(JobWebhook, job.id)
    if hook is None:
        return
    notification = notification_of(job, hook, uuid.uuid4(), now)
    session.add(
        WebhookDelivery(
            id=notification.delivery_id,
            job_id=job.id,
            event=notification.event.value,
            payload=notification.model_dump_json(),
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def notification_of(job: Job, hook: JobWebhook, delivery_id: uuid.UUID, now: datetime) -> JobEnded:
    failed = job.status == JobStatus.FAILED
    viewer_url = None
    if job.status == JobStatus.DONE and hook.viewer_url_sealed:
        viewer_url = unseal_pub_key(hook.viewer_url_sealed, hook.secret, str(job.id))
    return JobEnded(
        delivery_id=delivery_id,
        event=WebhookEvent.of_status(job.status),
        job_id=job.id,
        # a terminal status: the callers call this once the job has ended
        status=cast(TerminalStatus, job.status),
        stage=job.stage,
        error=job.error_message if failed else None,
        error_stage=job.error_stage if failed else None,
        viewer_url=viewer_url,
        status_url=hook.status_url,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at or now,
        processing_time_seconds=job.processing_time_seconds,
    )
