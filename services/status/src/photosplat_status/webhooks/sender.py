"""The webhook sender: a loop in every status process that posts due deliveries and records each
attempt. State is in the database, so deliveries survive restarts. A sender claims a delivery by
moving its ``next_attempt_at`` past the time a post may take (a lease) in a short transaction
(``FOR UPDATE SKIP LOCKED`` on Postgres), then posts without holding a transaction: replicas never
post one delivery at once, and one whose sender died mid-post is taken up again when the lease
passes (so a receiver may, rarely, get a notification twice: the delivery id tells it)."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from photosplat_libs.db import Database
from photosplat_libs.db.models import WebhookAttempt, WebhookDelivery
from photosplat_libs.periodic import Periodic
from photosplat_libs.webhooks.addresses import RESOLVE_TIMEOUT_SECONDS
from photosplat_status.settings import StatusSettings
from photosplat_status.webhooks import queries
from photosplat_status.webhooks.outbox import DeliveryState
from photosplat_status.webhooks.posting import Claimed, Outcome, post

log = logging.getLogger(__name__)

# Beyond the post's own bound: the lease must outlast a post and the write of its outcome.
LEASE_MARGIN_SECONDS = 30.0


class WebhookSender:
    def __init__(
        self, settings: StatusSettings, db: Database, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings, self._db, self._transport = settings, db, transport
        self._client: httpx.AsyncClient | None = None
        self._periodic = Periodic("webhook-sender", self._pass, settings.webhook_poll_seconds)

    def retry_delay(self, attempts: int) -> float:
        """Exponential back-off with jitter: base x 2^(n-1), capped, less up to half at random."""
        s = self._settings
        ceiling = min(s.webhook_retry_max_seconds, s.webhook_retry_base_seconds * 2 ** min(attempts - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)

    async def run_once(self) -> int:
        """Posts the deliveries due now (at most one batch); returns how many it attempted."""
        claimed = await self._claim(datetime.now(timezone.utc))
        if claimed:
            await asyncio.gather(*(self._attempt(c) for c in claimed))
        return len(claimed)

    async def _claim(self, now: datetime) -> list[Claimed]:
        s = self._settings
        lease = timedelta(seconds=s.webhook_timeout_seconds + RESOLVE_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS)
        async with self._db.transaction() as session:
            rows = await queries.due(session, now, s.webhook_batch, skip_locked=not self._db.is_sqlite)
            for delivery, _, _ in rows:
                delivery.next_attempt_at = now + lease
            return [Claimed(str(d.id), d.event, d.payload, url, secret) for d, url, secret in rows]

    async def _attempt(self, claimed: Claimed) -> None:
        at = datetime.now(timezone.utc)
        s = self._settings
        outcome = await post(
            self._http(), claimed, allow_private=s.webhook_allow_private_addresses, timeout=s.webhook_timeout_seconds
        )
        try:
            await self._record(uuid.UUID(claimed.delivery_id), outcome, at)
        except Exception:
            # The lease runs out and the delivery is attempted again.
            log.exception("webhook delivery %s: could not record its attempt", claimed.delivery_id)

    async def _record(self, delivery_id: uuid.UUID, outcome: Outcome, at: datetime) -> None:
        async with self._db.transaction() as session:
            delivery = await queries.locked_delivery(session, delivery_id)
            if delivery is None or delivery.state != DeliveryState.PENDING:
                return  # the job was deleted meanwhile
            delivery.attempts += 1
            session.add(
                WebhookAttempt(
                    delivery_id=delivery_id,
                    number=delivery.attempts,
                    attempted_at=at,
                    duration_seconds=round(outcome.seconds, 3),
                    status_code=outcome.status_code,
                    error=outcome.error,
                )
            )
            self._advance(delivery, outcome)

    def _advance(self, delivery: WebhookDelivery, outcome: Outcome) -> None:
        now = datetime.now(timezone.utc)
        if outcome.delivered:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = DeliveryState.DELIVERED, now, None
        elif delivery.attempts >= self._settings.webhook_max_attempts:
            delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
            log.warning("webhook delivery %s: gave up after %d attempts", delivery.id, delivery.attempts)
        else:
            delivery.next_attempt_at = now + timedelta(seconds=self.retry_delay(delivery.attempts))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # No proxy from the environment: the address checked is the one connected to.
            timeout = self._settings.webhook_timeout_seconds
            self._client = httpx.AsyncClient(
                timeout=timeout, follow_redirects=False, trust_env=False, transport=self._transport
            )
        return self._client

    async def _pass(self) -> bool:
        return await self.run_once() >= self._settings.webhook_batch  # a full batch: more may be due

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
