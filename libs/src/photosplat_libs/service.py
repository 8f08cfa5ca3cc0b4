"""What every service's composition root returns, so one process can run one service or all five."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from fastapi import APIRouter

from photosplat_libs.bus import Bus, create_bus
from photosplat_libs.db import Database
from photosplat_libs.settings import ServiceSettings
from photosplat_libs.store import ObjectStore, create_store


@dataclass
class Deps:
    """The adapters of the three ports. Built from settings by :func:`deps_from_settings`, or once
    for all services by the embedded runner, or by tests with whatever adapters they exercise."""

    bus: Bus
    store: ObjectStore
    db: Database | None = None
    extras: dict[str, object] = field(default_factory=dict)


class Service(Protocol):
    name: str
    # HTTP routes of the service, or None for a worker without an API.
    router: APIRouter | None

    async def start(self) -> None:
        """Start consumers and background tasks (bus and store already started)."""

    async def stop(self) -> None: ...


def deps_from_settings(settings: ServiceSettings, *, with_db: bool, signing_secret: str = "") -> Deps:
    bus = create_bus(settings.bus_url, namespace=settings.bus_namespace)
    store = create_store(settings.store_url, public_url=settings.store_public_url, signing_secret=signing_secret)
    db = Database(settings.database_url) if with_db else None
    return Deps(bus=bus, store=store, db=db)
