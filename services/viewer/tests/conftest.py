"""A viewer wired to real adapters, plus a way to put jobs in as ingest, status and trainer would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from photosplat_libs import keys, security
from photosplat_libs.bus import create_bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore, create_store
from photosplat_viewer.app import create
from photosplat_viewer.settings import ViewerSettings


@dataclass
class Viewer:
    client: httpx.AsyncClient
    db: Database
    store: ObjectStore

    async def add_job(
        self, status: JobStatus = JobStatus.DONE, files: dict[str, tuple[str, bytes]] | None = None, **fields: Any
    ) -> str:
        """Insert a job row and store its exports (``{format: (filename, bytes)}``); returns the public key."""
        pub_key = security.new_token()
        job_id = uuid.uuid4()
        outputs = {}
        for fmt, (name, data) in (files or {}).items():
            outputs[fmt] = keys.output(job_id, name)
            await self.store.put(outputs[fmt], data)
        async with self.db.transaction() as session:
            session.add(
                Job(
                    id=job_id,
                    owner_hash=security.hash_token(security.new_token()),
                    pub_key_hash=security.hash_token(pub_key),
                    status=status,
                    created_at=datetime.now(UTC),
                    outputs=outputs,
                    **fields,
                )
            )
        return pub_key


@asynccontextmanager
async def _open_viewer(database_url: str, store_url: str) -> AsyncIterator[Viewer]:
    settings = ViewerSettings(database_url=database_url, store_url=store_url, public_base_url="https://splat.example")
    db = Database(database_url)
    store = create_store(store_url)
    await store.ensure_ready()
    service = create(settings, Deps(bus=create_bus("memory://"), store=store, db=db))
    app = FastAPI()
    app.include_router(service.router)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer") as client:
            yield Viewer(client, db, store)
    finally:
        await db.dispose()


@pytest.fixture
def open_viewer() -> Callable[[str, str], AbstractAsyncContextManager[Viewer]]:
    return _open_viewer


@pytest.fixture
async def viewer(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Viewer]:
    async with _open_viewer(sqlite_url, f"file:{tmp_path}/objects") as v:
        yield v
