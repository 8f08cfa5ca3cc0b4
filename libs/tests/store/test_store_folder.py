"""What only the folder store has: its URL forms, its on-disk layout and its atomic writes."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from photosplat_libs.store import ObjectNotFound, create_store
from photosplat_libs.store.folder import FolderStore, ObjectTooLarge


@pytest.fixture
async def store(tmp_path: Path) -> FolderStore:
    made = FolderStore(tmp_path / "objects", public_url="http://ingest.test/", signing_secret="s" * 32)
    await made.ensure_ready()
    return made


def test_from_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert FolderStore.from_url("file:data/objects").root == tmp_path / "data" / "objects"
    assert FolderStore.from_url(f"file:{tmp_path}/o").root == tmp_path / "o"
    assert FolderStore.from_url(f"file://{tmp_path}/o").root == tmp_path / "o"
    assert FolderStore.from_url("file:///srv/my%20objects").root == Path("/srv/my objects")
    assert isinstance(create_store(f"file://{tmp_path}/o"), FolderStore)
    for bad in ["file://elsewhere/o", "file:", "s3://a:b@h/b"]:
        with pytest.raises(ValueError):
            FolderStore.from_url(bad)


async def test_objects_are_plain_files_and_bookkeeping_stays_hidden(store: FolderStore) -> None:
    await store.put("jobs/a/output/scene.ply", b"ply", "application/x-ply")
    assert (store.root / "jobs" / "a" / "output" / "scene.ply").read_bytes() == b"ply"
    assert sorted(p.name for p in store.root.iterdir()) == [".meta", ".tmp", "jobs"]
    assert list((store.root / ".tmp").iterdir()) == []
    assert [i.key for i in await store.list("")] == ["jobs/a/output/scene.ply"]


async def test_keys_cannot_reach_outside_the_root(store: FolderStore) -> None:
    secret = store.root.parent / "secret.txt"
    secret.write_text("do not serve")
    for key in ["../secret.txt", "jobs/../../secret.txt", str(secret), ".meta/x", ".tmp/x"]:
        with pytest.raises(ValueError):
            await store.get(key)
    with pytest.raises(ValueError):
        await store.list("../")
    with pytest.raises(ValueError):
        await store.delete_prefix("..")
    assert secret.read_text() == "do not serve"


async def test_delete_removes_empty_folders(store: FolderStore) -> None:
    await store.put("jobs/a/images/0001.jpg", b"x")
    await store.put("jobs/b/images/0001.jpg", b"x")
    await store.delete("jobs/a/images/0001.jpg")
    assert not (store.root / "jobs" / "a").exists()
    assert not (store.root / ".meta" / "jobs" / "a").exists()
    assert await store.delete_prefix("") == 1
    assert sorted(p.name for p in store.root.iterdir()) == [".meta", ".tmp"]
    assert list((store.root / ".meta").iterdir()) == []


async def failing_body() -> AsyncIterator[bytes]:
    yield b"half of the new "
    raise ConnectionError("client went away")


async def test_interrupted_write_keeps_the_old_object(store: FolderStore) -> None:
    await store.put("k/photo.jpg", b"old", "image/jpeg")
    with pytest.raises(ConnectionError):
        await store.put_stream("k/photo.jpg", failing_body())
    assert await store.get("k/photo.jpg") == b"old"
    assert list((store.root / ".tmp").iterdir()) == []


async def test_put_stream_limit(store: FolderStore) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    with pytest.raises(ObjectTooLarge):
        await store.put_stream("k/big", body(), max_bytes=4999)
    assert not await store.exists("k/big")
    assert list((store.root / ".tmp").iterdir()) == []
    info = await store.put_stream("k/big", body(), "text/plain", max_bytes=5000)
    assert (info.size, info.content_type) == (5000, "text/plain")


async def test_missing_metadata_falls_back_to_the_file(store: FolderStore) -> None:
    """A crash between moving the object in and writing its metadata leaves no wrong etag."""
    await store.put("k/photo.jpg", b"jpeg", "image/jpeg")
    (store.root / ".meta" / "k" / "photo.jpg.json").unlink()
    info = await store.stat("k/photo.jpg")
    assert info.content_type == "image/jpeg"  # from the extension
    assert info.etag and info.size == 4


async def test_a_key_and_a_folder_of_the_same_name_clash(store: FolderStore) -> None:
    await store.put("a/b", b"x")
    with pytest.raises(ValueError, match="clashes"):
        await store.put("a/b/c", b"y")
    with pytest.raises(ObjectNotFound):
        await store.get("a")
    await store.delete("a")  # a folder, not an object: nothing to delete
    assert await store.get("a/b") == b"x"


async def test_presigned_url_shape(store: FolderStore) -> None:
    url = await store.presigned_put("jobs/a/incoming/0001.jpg", timedelta(minutes=5))
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://ingest.test/store/upload/jobs/a/incoming/0001.jpg"
    query = parse_qs(parts.query)
    assert abs(int(query["expires"][0]) - (time.time() + 300)) < 5
    assert len(query["signature"][0]) == 64


async def test_presigning_needs_a_secret_and_a_public_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="signing_secret"):
        await FolderStore(tmp_path, public_url="http://x").presigned_put("k", timedelta(minutes=1))
    with pytest.raises(ValueError, match="public_url"):
        await FolderStore(tmp_path, signing_secret="s").presigned_put("k", timedelta(minutes=1))


async def test_ensure_ready_clears_stale_temp_files(store: FolderStore) -> None:
    stale, fresh = store.root / ".tmp" / "stale.part", store.root / ".tmp" / "fresh.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    await store.ensure_ready()
    assert sorted(p.name for p in (store.root / ".tmp").iterdir()) == ["fresh.part"]
