"""Composition root of the status service."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from photosplat_libs import topology
from photosplat_libs.db import Database
from photosplat_libs.db.outbox import OutboxRelay
from photosplat_libs.service import Deps
from photosplat_status.api import JobApi
from photosplat_status.changes import JobChanges
from photosplat_status.dashboard import Dashboard
from photosplat_status.events_api import JobEventsApi
from photosplat_status.metrics import StatusMetrics
from photosplat_status.consumers import dead_letter_consumer, event_consumer
from photosplat_status.recovery import Recovery
from photosplat_status.settings import StatusSettings
from photosplat_status.webhooks import routes as webhook_routes
from photosplat_status.webhooks.sender import WebhookSender

log = logging.getLogger(__name__)


class StatusService:
    name = "status"

    def __init__(self, settings: StatusSettings, deps: Deps, db: Database) -> None:
        self._deps, self._db = deps, db
        self.relay = OutboxRelay(db, deps.bus)
        self.recovery = Recovery(settings, db, deps.store, deps.bus, self.relay)
        self.metrics = StatusMetrics(settings, db, deps.bus)
        self.router: APIRouter | None = APIRouter()
        self.router.include_router(JobApi(settings, db, deps.store, deps.bus, self.relay).router())
        # The projection below wakes the event streams of the jobs it changed.
        self.changes = JobChanges()
        self.router.include_router(JobEventsApi(settings, db, self.changes).router())
        self.router.include_router(Dashboard(settings, db, deps.store, deps.bus, self.relay).router())
        self.webhooks = WebhookSender(settings, db)
        self.router.include_router(webhook_routes.router(settings, db))

    async def start(self) -> None:
        await topology.declare_topology(self._deps.bus)
        self.relay.start()
        changed = self.changes.changed
        await self._deps.bus.consume(topology.STATUS_EVENTS, event_consumer(self._db, self._deps.store, changed))
        await self._deps.bus.consume(
            topology.STATUS_DEAD_LETTERS, dead_letter_consumer(self._db, self._deps.store, changed)
        )
        await self.recovery.run_once(at_start=True)
        self.recovery.start()
        self.metrics.start()
        self.webhooks.start()

    async def stop(self) -> None:
        await self.metrics.stop()
        await self.recovery.stop()
        await self.webhooks.stop()
        await self.relay.stop()


def create(settings: StatusSettings, deps: Deps) -> StatusService:
    if deps.db is None:
        raise ValueError("the status service needs a database (Deps.db)")
    return StatusService(settings, deps, deps.db)
