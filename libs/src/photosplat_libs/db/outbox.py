"""Transactional outbox: an event is stored in the same transaction as the state it announces and
published after commit by :class:`OutboxRelay`; a crash between commit and publish only delays it."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.bus import Bus
from photosplat_libs.db.engine import Database
from photosplat_libs.db.models import OutboxMessage
from photosplat_libs.events import Envelope, decode, encode

log = logging.getLogger(__name__)


def add_to_outbox(session: AsyncSession, *events: Envelope) -> None:
    now = datetime.now(timezone.utc)
    for event in events:
        session.add(
            OutboxMessage(event_id=event.event_id, job_id=event.job_id, payload=encode(event).decode(), created_at=now)
        )


class OutboxRelay:
    """Publishes unpublished outbox rows in insertion order. Several replicas may run at once:
    on Postgres rows are claimed with ``FOR UPDATE SKIP LOCKED``; a duplicate publish after a crash
    is harmless because consumers are idempotent by event id."""

    def __init__(self, db: Database, bus: Bus, *, interval: float = 2.0, batch: int = 100) -> None:
        self._db, self._bus, self._interval, self._batch = db, bus, interval, batch
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Call after committing outbox rows to publish them now rather than at the next tick."""
        self._wake.set()

    async def flush(self) -> int:
        published = 0
        while True:
            async with self._db.transaction() as session:
                query = (
                    select(OutboxMessage)
                    .where(OutboxMessage.published_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(self._batch)
                )
                if not self._db.is_sqlite:
                    query = query.with_for_update(skip_locked=True)
                rows = (await session.scalars(query)).all()
                for row in rows:
                    await self._bus.publish(decode(row.payload))
                    row.published_at = datetime.now(timezone.utc)
                published += len(rows)
            if len(rows) < self._batch:
                return published

    async def _run(self) -> None:
        while True:
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay: publishing failed, will retry")
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except TimeoutError:
                pass
            self._wake.clear()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
