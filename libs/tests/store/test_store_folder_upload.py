"""The folder store's S3-style upload endpoint, through the ASGI app as a client would use it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from photosplat_libs.store.folder import FolderStore
from photosplat_libs.store.folder_http import folder_upload_router

KEY = "jobs/a/incoming/0001.jpg"
MAX_UPLOAD = 1024 * 1024


def upload_app(store: FolderStore) -> FastAPI:
    app = FastAPI()
    app.include_router(folder_upload_router(store, max_bytes=MAX_UPLOAD))
    return app


@pytest.fixture
async def store(tmp_path: Path) -> FolderStore:
    made = FolderStore(tmp_path / "objects", public_url="http://ingest.test", signing_secret="s" * 32)
    await made.ensure_ready()
    return made


@pytest.fixture
async def client(store: FolderStore) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upload_app(store))) as made:
        yield made


def leftovers(store: FolderStore) -> list[Path]:
    return list((store.root / ".tmp").iterdir())


async def test_valid_upload_is_stored(store: FolderStore, client: httpx.AsyncClient) -> None:
    url = await store.presigned_put(KEY, timedelta(minutes=5))
    response = await client.put(url, content=b"jpeg", headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{hashlib.md5(b"jpeg").hexdigest()}"'
    assert await store.get(KEY) == b"jpeg"
    assert (await store.stat(KEY)).content_type == "image/jpeg"


async def test_streamed_upload_is_stored(store: FolderStore, client: httpx.AsyncClient) -> None:
    """A chunked body (no Content-Length) larger than one write slice."""
    part = bytes(range(256)) * 256

    async def body() -> AsyncIterator[bytes]:
        for _ in range(12):
            yield part

    response = await client.put(await store.presigned_put(KEY, timedelta(minutes=5)), content=body())
    assert response.status_code == 200
    assert await store.get(KEY) == part * 12


@pytest.mark.parametrize(
    ("mangle", "detail"),
    [
        (lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"), "signature"),
        (lambda url: url.replace("0001.jpg", "0002.jpg"), "signature"),
        (lambda url: url.split("?")[0], "lacks"),
        (lambda url: url.replace("expires=", "expires=x"), "malformed"),
    ],
)
async def test_bad_url_is_refused(
    store: FolderStore, client: httpx.AsyncClient, mangle: Callable[[str], str], detail: str
) -> None:
    url = mangle(await store.presigned_put(KEY, timedelta(minutes=5)))
    response = await client.put(url, content=b"x")
    assert response.status_code == 403
    assert detail in response.json()["detail"]
    assert await store.list("") == []


async def test_expired_url_is_refused(store: FolderStore, client: httpx.AsyncClient) -> None:
    response = await client.put(store.upload_url(KEY, int(time.time()) - 1), content=b"x")
    assert response.status_code == 403
    assert response.json()["detail"] == "upload URL has expired"
    assert not await store.exists(KEY)


async def test_too_large_is_refused_and_nothing_is_left(store: FolderStore, client: httpx.AsyncClient) -> None:
    url = await store.presigned_put(KEY, timedelta(minutes=5))
    response = await client.put(url, content=b"x" * (MAX_UPLOAD + 1))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert not await store.exists(KEY)
    assert leftovers(store) == []


async def test_too_large_chunked_body_keeps_the_old_object(store: FolderStore, client: httpx.AsyncClient) -> None:
    await store.put(KEY, b"old")

    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * (MAX_UPLOAD // 4)

    response = await client.put(await store.presigned_put(KEY, timedelta(minutes=5)), content=body())
    assert response.status_code == 413
    assert await store.get(KEY) == b"old"
    assert leftovers(store) == []


async def test_store_without_secret_accepts_no_upload(tmp_path: Path) -> None:
    signer = FolderStore(tmp_path, public_url="http://ingest.test", signing_secret="s" * 32)
    unsigned = FolderStore(tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=upload_app(unsigned))) as client:
        response = await client.put(await signer.presigned_put(KEY, timedelta(minutes=5)), content=b"x")
    assert response.status_code == 403
    assert "not enabled" in response.json()["detail"]


async def test_a_chunked_body_must_be_exactly_the_signed_length(store: FolderStore, client: httpx.AsyncClient) -> None:
    url = await store.presigned_put(KEY, timedelta(minutes=5), content_type="image/jpeg", content_length=4)

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        yield body  # a generator body goes out chunked: no Content-Length to check up front

    headers = {"Content-Type": "image/jpeg"}
    longer = await client.put(url, content=chunks(b"jpeg!"), headers=headers)
    shorter = await client.put(url, content=chunks(b"jpg"), headers=headers)
    assert (longer.status_code, shorter.status_code) == (413, 400), (longer.text, shorter.text)
    assert not await store.exists(KEY) and leftovers(store) == []
    # The terms are signed: a client cannot raise the length in the URL.
    raised = await client.put(url.replace("length=4", "length=5"), content=b"jpeg!", headers=headers)
    assert raised.status_code == 403
    assert (await client.put(url, content=chunks(b"jpeg"), headers=headers)).status_code == 200
