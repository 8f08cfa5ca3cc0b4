"""Migration 0005 (webhooks) on SQLite and Postgres: down to 0004 and up again, and the migrated
schema is exactly what the models declare."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from photosplat_libs.db import Database
from photosplat_libs.db.engine import MIGRATIONS
from photosplat_libs.db.models import Base

WEBHOOK_TABLES = {"job_webhooks", "webhook_deliveries", "webhook_attempts"}


@pytest.fixture(params=["sqlite_url", "pg_url"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def _alembic(db: Database, action: str, revision: str) -> None:
    def run(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)


async def _tables_and_drift(db: Database) -> tuple[set[str], list[object]]:
    def inspect(connection: sa.Connection) -> tuple[set[str], list[object]]:
        tables = set(sa.inspect(connection).get_table_names())
        return tables, compare_metadata(MigrationContext.configure(connection), Base.metadata)

    async with db.engine.connect() as connection:
        return await connection.run_sync(inspect)


async def test_migration_0005_goes_down_and_up_and_matches_the_models(db: Database) -> None:
    tables, drift = await _tables_and_drift(db)
    assert WEBHOOK_TABLES <= tables and drift == []

    await _alembic(db, "downgrade", "0004")
    tables, _ = await _tables_and_drift(db)
    assert not WEBHOOK_TABLES & tables

    await _alembic(db, "upgrade", "head")
    tables, drift = await _tables_and_drift(db)
    assert WEBHOOK_TABLES <= tables and drift == []
