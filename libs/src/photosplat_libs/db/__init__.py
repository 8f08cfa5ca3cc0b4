"""Database access: engine, sessions and Alembic migrations for Postgres (asyncpg) and SQLite (aiosqlite)."""

from photosplat_libs.db.engine import Database, migrate

__all__ = ["Database", "migrate"]
