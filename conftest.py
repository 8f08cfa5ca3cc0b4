"""Fixtures for the real infrastructure every integration test runs on.

- ``pg_url``: a fresh, migrated Postgres database per test (server from ``PHOTOSPLAT_TEST_PG``,
  default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``), dropped afterwards;
- ``amqp_url`` + ``bus_namespace``: RabbitMQ (``PHOTOSPLAT_TEST_AMQP``), with a unique name prefix
  per test so tests never see each other's queues; the test's queues and exchanges are deleted after;
- ``s3_url``: a unique bucket on the S3 server (``PHOTOSPLAT_TEST_S3``, as started by ``.ci/run``;
  if unset, a moto server is started for the session).

A test that needs a server that is not reachable fails (it does not skip): CI has all three.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

PG_SERVER = os.environ.get("PHOTOSPLAT_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("PHOTOSPLAT_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
SHARED = Path(__file__).resolve().parent.parent / "shared"


def shared_dataset(name: str) -> Path:
    """A real photo set from ../shared/datasets, or skip with the reason (a user's clone has none)."""
    path = SHARED / "datasets" / name
    if not path.is_dir():
        pytest.skip(f"../shared/datasets/{name} is not present (only the project's own machines have it)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    import asyncpg

    from photosplat_libs.db import Database, migrate

    server = urlsplit(PG_SERVER.replace("postgresql+asyncpg", "postgresql"))
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server.geturl())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = PG_SERVER.rsplit("/", 1)[0] + "/" + name
    db = Database(url)
    await migrate(db)
    await db.dispose()
    yield url
    admin = await asyncpg.connect(server.geturl())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from photosplat_libs.db.engine import migrate_blocking

    url = f"sqlite+aiosqlite:///{tmp_path}/photosplat.db"
    migrate_blocking(url)
    return url


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
async def bus_namespace(amqp_url: str) -> AsyncIterator[str]:
    """A unique prefix for exchange and queue names; everything under it is deleted after the test."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    yield namespace
    from photosplat_libs.bus.rabbit import delete_namespace

    await delete_namespace(amqp_url, namespace)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """``http://host:port`` of an S3 API server with credentials ``test``/``testsecret``."""
    given = os.environ.get("PHOTOSPLAT_TEST_S3")
    if given:
        yield given
        return
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
async def s3_url(s3_server: str) -> AsyncIterator[str]:
    """A store URL for a fresh bucket; the bucket is emptied and removed after the test."""
    from photosplat_libs.store import create_store

    host = urlsplit(s3_server).netloc
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    url = f"s3://test:testsecret@{host}/{bucket}?secure=false&region=us-east-1"
    store = create_store(url, public_url=s3_server)
    await store.ensure_ready()
    yield url
    await store.delete_prefix("")
    remove = getattr(store, "remove_bucket", None)
    if remove is not None:
        await remove()
