"""``GET /recon/jobs/{job_id}/webhooks``: the job's callback and every attempt to notify it,
authorised like the status route (the owner's token or the admin's; another's job is 404)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Security, status
from pydantic import BaseModel

from photosplat_libs.db import Database
from photosplat_libs.db.models import WebhookAttempt, WebhookDelivery
from photosplat_status import repository as repo
from photosplat_status.api import CLIENT_OR_ADMIN_TOKEN, JOB_REFUSALS, NOT_FOUND
from photosplat_status.auth import caller_of
from photosplat_status.settings import StatusSettings
from photosplat_status.webhooks import queries


class AttemptView(BaseModel):
    number: int
    time: datetime
    duration_seconds: float
    # the receiver's answer, or None when there was none (the error says why)
    status_code: int | None
    error: str | None


class DeliveryView(BaseModel):
    delivery_id: uuid.UUID
    event: str
    # PENDING (next_attempt_at says when), DELIVERED or FAILED (every attempt failed)
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    attempt_log: list[AttemptView]


class WebhookView(BaseModel):
    # None: the job has no callback
    callback_url: str | None
    deliveries: list[DeliveryView]


def _delivery_view(delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryView:
    return DeliveryView(
        delivery_id=delivery.id,
        event=delivery.event,
        state=delivery.state,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_attempt_at=delivery.next_attempt_at,
        delivered_at=delivery.delivered_at,
        attempt_log=[
            AttemptView(
                number=a.number,
                time=a.attempted_at,
                duration_seconds=a.duration_seconds,
                status_code=a.status_code,
                error=a.error,
            )
            for a in attempts
        ],
    )


def router(settings: StatusSettings, db: Database) -> APIRouter:
    routes = APIRouter(tags=["jobs"], dependencies=[Security(CLIENT_OR_ADMIN_TOKEN)])

    @routes.get(
        "/recon/jobs/{job_id}/webhooks",
        operation_id="get_job_webhooks",
        response_model=WebhookView,
        responses=JOB_REFUSALS,
    )
    async def job_webhooks(job_id: uuid.UUID, request: Request) -> WebhookView:
        caller = caller_of(settings, request)
        async with db.transaction() as session:
            job = await repo.get_job(session, job_id)
            if job is None or not caller.may_see(job):
                raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
            url = await queries.callback_url(session, job_id)
            deliveries = await queries.deliveries_of(session, job_id)
        return WebhookView(callback_url=url, deliveries=[_delivery_view(d, a) for d, a in deliveries])

    return routes
