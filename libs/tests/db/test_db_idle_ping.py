"""Pooled Postgres connections: pinged only after sitting idle, and a dead one is replaced unseen."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from photosplat_libs.db import Database
from photosplat_libs.db import engine as engine_module


def count_pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    dialect = db.engine.sync_engine.dialect
    real = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return pings


async def select_one(db: Database) -> int:
    async with db.transaction() as session:
        return (await session.execute(text("SELECT 1"))).scalar_one()


async def test_a_connection_in_steady_use_is_not_pinged(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(pg_url)
    try:
        pings = count_pings(db, monkeypatch)
        for _ in range(5):
            assert await select_one(db) == 1
        assert pings == []
    finally:
        await db.dispose()


async def test_an_idle_connection_that_died_is_replaced(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(pg_url)
    try:
        assert await select_one(db) == 1
        server = pg_url.replace("postgresql+asyncpg", "postgresql")
        admin = await asyncpg.connect(server)
        try:  # what a database restart does to the pooled connection
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        pings = count_pings(db, monkeypatch)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert await select_one(db) == 1
        assert pings, "the idle connection was pinged"
    finally:
        await db.dispose()
