"""A status service wired to chosen adapters, and jobs inserted the way ingest creates them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from photosplat_libs import security
from photosplat_libs.bus import Bus, create_bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore, create_store
from photosplat_status.app import StatusService, create
from photosplat_status.settings import StatusSettings

ADMIN_TOKEN = "adm-" + "Xk3q9Lz0Vt7Rw2Pm5Nb8Hc4Jd6"


@dataclass
class OwnedJob:
    id: uuid.UUID
    token: str
    pub_key: str


async def _insert_job(db: Database, *, token: str | None = None, **fields: Any) -> OwnedJob:
    """A job row as ingest writes it: owner token and public key stored hashed, the key also sealed."""
    token = token or security.new_token()
    pub_key = security.new_token()
    job_id = uuid.uuid4()
    fields.setdefault("created_at", datetime.now(timezone.utc))
    fields.setdefault("stage", "validate")
    async with db.transaction() as session:
        session.add(
            Job(
                id=job_id,
                owner_hash=security.hash_token(token),
                pub_key_hash=security.hash_token(pub_key),
                pub_key_sealed=security.seal_pub_key(pub_key, token, str(job_id)),
                **fields,
            )
        )
    return OwnedJob(job_id, token, pub_key)


async def _load_job(db: Database, job_id: uuid.UUID) -> Job | None:
    async with db.transaction() as session:
        return await session.get(Job, job_id)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    settings: StatusSettings
    db: Database
    bus: Bus
    store: ObjectStore
    service: StatusService
    app: FastAPI
    client: httpx.AsyncClient


@asynccontextmanager
async def _running_status(
    database_url: str, bus: Bus, store: ObjectStore, *, start: bool = True, **settings: Any
) -> AsyncIterator[Running]:
    """The runner's part: the bus and store are started, the DB migrated, by the caller."""
    settings.setdefault("admin_token", ADMIN_TOKEN)
    config = StatusSettings(database_url=database_url, **settings)
    db = Database(database_url)
    service = create(config, Deps(bus=bus, store=store, db=db))
    app = FastAPI()
    assert service.router is not None
    app.include_router(service.router)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://status.test")
    if start:
        await service.start()
    try:
        yield Running(config, db, bus, store, service, app, client)
    finally:
        await client.aclose()
        await service.stop()
        await db.dispose()


class Kit:
    """Helpers of the status tests (test modules cannot import conftest under importlib mode)."""

    admin_token = ADMIN_TOKEN
    insert_job = staticmethod(_insert_job)
    load_job = staticmethod(_load_job)
    eventually = staticmethod(_eventually)
    running_status = staticmethod(_running_status)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture
async def memory_bus() -> AsyncIterator[Bus]:
    bus = create_bus("memory://")
    await bus.start()
    yield bus
    await bus.close()


@pytest.fixture
async def folder_store(tmp_path: Path) -> ObjectStore:
    store = create_store(f"file:{tmp_path}/objects")
    await store.ensure_ready()
    return store


@pytest.fixture(params=["sqlite_url", "pg_url"])
def either_database(request: pytest.FixtureRequest) -> str:
    """The test runs twice: on SQLite (embedded) and on Postgres (distributed)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
async def embedded(sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore) -> AsyncIterator[Running]:
    async with _running_status(sqlite_url, memory_bus, folder_store) as status:
        yield status
