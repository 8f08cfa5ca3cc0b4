"""The webhook tables' queries of the status service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.models import JobWebhook, WebhookAttempt, WebhookDelivery


async def due(
    session: AsyncSession, now: datetime, limit: int, *, skip_locked: bool
) -> Sequence[tuple[WebhookDelivery, str, str]]:
    """Pending deliveries whose time has come, with their callback's URL and secret, locked. On
    Postgres rows another sender holds are skipped (SQLite has one writer at a time anyway)."""
    query = (
        select(WebhookDelivery, JobWebhook.url, JobWebhook.secret)
        .join(JobWebhook, JobWebhook.job_id == WebhookDelivery.job_id)
        .where(WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    return [(row[0], row[1], row[2]) for row in (await session.execute(query)).all()]


async def locked_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    return await session.get(WebhookDelivery, delivery_id, with_for_update=True)


async def callback_url(session: AsyncSession, job_id: uuid.UUID) -> str | None:
    return await session.scalar(select(JobWebhook.url).where(JobWebhook.job_id == job_id))


async def deliveries_of(
    session: AsyncSession, job_id: uuid.UUID
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    deliveries = (
        await session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.created_at)
        )
    ).all()
    if not deliveries:
        return []
    attempts = (
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        )
    ).all()
    return [(d, [a for a in attempts if a.delivery_id == d.id]) for d in deliveries]
