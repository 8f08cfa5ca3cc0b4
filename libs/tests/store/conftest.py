"""Fixtures that give the same tests both store adapters: the folder store (embedded) and the S3
store on the real S3 server of the root ``s3_url`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from photosplat_libs.store import ObjectStore, create_store
from photosplat_libs.store.folder import FolderStore
from photosplat_libs.store.folder_http import folder_upload_router

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
FOLDER_PUBLIC_URL = "http://ingest.test"


def upload_app(store: FolderStore) -> FastAPI:
    app = FastAPI()
    app.include_router(folder_upload_router(store, max_bytes=1024 * 1024))
    return app


@pytest.fixture(params=["folder", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(store url, public url) of each adapter."""
    if request.param == "folder":
        return f"file://{tmp_path}/objects", FOLDER_PUBLIC_URL
    return request.getfixturevalue("s3_url"), request.getfixturevalue("s3_server")


@pytest.fixture
async def store(store_url: tuple[str, str]) -> ObjectStore:
    url, public_url = store_url
    made = create_store(url, public_url=public_url, signing_secret=SIGNING_SECRET)
    await made.ensure_ready()
    return made


@pytest.fixture
async def upload_client(store: ObjectStore) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that reaches the store's presigned URLs: the upload router in-process for
    the folder store, the S3 server itself for S3."""
    if isinstance(store, FolderStore):
        transport = httpx.ASGITransport(app=upload_app(store))
        async with httpx.AsyncClient(transport=transport) as client:
            yield client
    else:
        async with httpx.AsyncClient() as client:
            yield client
