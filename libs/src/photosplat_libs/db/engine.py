from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).parent / "migrations"
# A pooled connection unused for this long is checked before it is handed out.
PING_AFTER_IDLE_SECONDS = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the viewer read while status writes; foreign keys make deletes cascade.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _note_idle(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine) -> Any:
    """Instead of SQLAlchemy's ``pool_pre_ping``, which on asyncpg costs three round trips (BEGIN,
    ping, ROLLBACK) on every checkout: more than a status request's own queries. A connection in
    steady use is not pinged; one that sat idle (where a database restart or a proxy's idle timeout
    would have dropped it) is, and a dead one is replaced before anyone sees it."""

    def ping(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"an idle pooled connection is dead: {error}") from error

    return ping


class Database:
    """One engine per process; sessions are opened by the edge (HTTP request, consumed message)."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: AsyncEngine = create_async_engine(url, **engine_kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "checkin", _note_idle)
            event.listen(self.engine.sync_engine, "checkout", _ping_if_idle(self.engine.sync_engine))
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits when the block ends and rolls back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(db: Database) -> None:
    """Bring the schema to the newest migration (safe to run from several services at start)."""
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            # Serialise concurrent starts of several services on one Postgres.
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74021)")
        await conn.run_sync(_upgrade)


def migrate_blocking(url: str) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            await migrate(db)
        finally:
            await db.dispose()

    asyncio.run(run())
