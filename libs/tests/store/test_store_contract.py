"""One behavioural suite, run on both adapters (folder and S3), so services behave the same in
embedded and distributed mode."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from photosplat_libs.store import ObjectNotFound, ObjectStore
from photosplat_libs.store.folder import FolderStore


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def read_stream(store: ObjectStore, key: str, start: int = 0, end: int | None = None) -> list[bytes]:
    return [chunk async for chunk in store.stream(key, start, end)]


async def test_put_get_stat(store: ObjectStore) -> None:
    await store.put("jobs/a/images/0001.jpg", b"jpeg bytes", "image/jpeg")
    assert await store.get("jobs/a/images/0001.jpg") == b"jpeg bytes"
    info = await store.stat("jobs/a/images/0001.jpg")
    assert (info.key, info.size, info.content_type, info.etag) == (
        "jobs/a/images/0001.jpg", 10, "image/jpeg", md5(b"jpeg bytes"),
    )
    assert await store.exists("jobs/a/images/0001.jpg")
    assert not await store.exists("jobs/a/images/0002.jpg")


async def test_default_content_type_and_empty_object(store: ObjectStore) -> None:
    await store.put("jobs/a/control/cancelled", b"")
    info = await store.stat("jobs/a/control/cancelled")
    assert (info.size, info.content_type) == (0, "application/octet-stream")
    assert await store.get("jobs/a/control/cancelled") == b""
    assert b"".join(await read_stream(store, "jobs/a/control/cancelled")) == b""


async def test_overwrite_replaces_bytes_type_and_etag(store: ObjectStore) -> None:
    await store.put("k/scene.ply", b"old", "text/plain")
    await store.put("k/scene.ply", b"newer", "application/x-ply")
    info = await store.stat("k/scene.ply")
    assert await store.get("k/scene.ply") == b"newer"
    assert (info.size, info.content_type, info.etag) == (5, "application/x-ply", md5(b"newer"))


async def test_put_file_and_get_file(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.bin"
    source.write_bytes(bytes(range(256)) * 1000)
    await store.put_file("jobs/a/sfm/model.bin", str(source), "application/x-colmap")
    target = tmp_path / "not" / "yet" / "there.bin"
    await store.get_file("jobs/a/sfm/model.bin", str(target))
    assert target.read_bytes() == source.read_bytes()
    assert (await store.stat("jobs/a/sfm/model.bin")).content_type == "application/x-colmap"


async def test_missing_key_raises_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get("jobs/none/x")
    with pytest.raises(ObjectNotFound):
        await store.stat("jobs/none/x")
    with pytest.raises(ObjectNotFound):
        await store.get_file("jobs/none/x", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    with pytest.raises(ObjectNotFound):
        await read_stream(store, "jobs/none/x")


async def test_list_is_recursive_sorted_and_prefix_based(store: ObjectStore) -> None:
    for key in ["jobs/b/x", "jobs/a/images/0002.jpg", "jobs/a/images/0001.jpg", "jobs/ab/y", "other"]:
        await store.put(key, key.encode())
    listed = await store.list("jobs/a/")
    assert [i.key for i in listed] == ["jobs/a/images/0001.jpg", "jobs/a/images/0002.jpg"]
    assert [(i.size, i.etag, i.content_type) for i in listed] == [
        (22, md5(b"jobs/a/images/0001.jpg"), ""),
        (22, md5(b"jobs/a/images/0002.jpg"), ""),
    ]
    # Prefixes are plain string prefixes, as in S3.
    assert [i.key for i in await store.list("jobs/a")] == [
        "jobs/a/images/0001.jpg", "jobs/a/images/0002.jpg", "jobs/ab/y",
    ]
    assert [i.key for i in await store.list("")] == [
        "jobs/a/images/0001.jpg", "jobs/a/images/0002.jpg", "jobs/ab/y", "jobs/b/x", "other",
    ]
    assert await store.list("nothing/") == []


async def test_delete_and_delete_prefix(store: ObjectStore) -> None:
    for key in ["jobs/a/images/1", "jobs/a/sfm/2", "jobs/a/output/3", "jobs/b/images/1"]:
        await store.put(key, b"x")
    await store.delete("jobs/a/sfm/2")
    await store.delete("jobs/a/sfm/2")  # deleting what is gone is not an error
    assert not await store.exists("jobs/a/sfm/2")
    assert await store.delete_prefix("jobs/a/") == 2
    assert [i.key for i in await store.list("")] == ["jobs/b/images/1"]
    assert await store.delete_prefix("jobs/a/") == 0
    assert await store.delete_prefix("") == 1
    assert await store.list("") == []


async def test_stream_ranges(store: ObjectStore) -> None:
    data = bytes(range(256)) * 800  # 200 KiB: several chunks
    await store.put("big", data)
    chunks = await read_stream(store, "big")
    assert b"".join(chunks) == data
    assert len(chunks) > 1 and all(len(c) <= 64 * 1024 for c in chunks)
    assert b"".join(await read_stream(store, "big", 10, 19)) == data[10:20]
    assert b"".join(await read_stream(store, "big", 100_000)) == data[100_000:]
    assert b"".join(await read_stream(store, "big", 204_000, 10**9)) == data[204_000:]
    assert b"".join(await read_stream(store, "big", len(data) + 5)) == b""
    with pytest.raises(ValueError):
        await read_stream(store, "big", 10, 5)


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", "a/\x00b", "", "a/./b", "a/"])
async def test_unsafe_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put(key, b"x")
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.presigned_put(key, timedelta(minutes=1))


async def test_presigned_put_end_to_end(store: ObjectStore, upload_client: httpx.AsyncClient) -> None:
    url = await store.presigned_put("jobs/a/incoming/0001.jpg", timedelta(minutes=5))
    response = await upload_client.put(url, content=b"photo", headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert await store.get("jobs/a/incoming/0001.jpg") == b"photo"
    info = await store.stat("jobs/a/incoming/0001.jpg")
    assert (info.content_type, info.etag) == ("image/jpeg", md5(b"photo"))
    assert response.headers["etag"] == f'"{md5(b"photo")}"'


@pytest.mark.parametrize("expires", [timedelta(minutes=16), timedelta(seconds=0)])
async def test_presigned_put_expiry_is_bounded(store: ObjectStore, expires: timedelta) -> None:
    with pytest.raises(ValueError, match="expiry"):
        await store.presigned_put("k", expires)


async def require_signature_checks(store: ObjectStore, client: httpx.AsyncClient) -> None:
    """moto accepts any presigned URL, signed or not; MinIO (and AWS) verify them."""
    if isinstance(store, FolderStore):
        return
    url = await store.presigned_put("probe/signature", timedelta(minutes=1))
    response = await client.put(url.replace("X-Amz-Signature=", "X-Amz-Signature=00"), content=b"x")
    await store.delete("probe/signature")
    if response.status_code < 400:
        pytest.skip("this S3 server does not verify presigned URLs (moto); set PHOTOSPLAT_TEST_S3 to a MinIO")


async def test_tampered_or_reused_url_is_refused(store: ObjectStore, upload_client: httpx.AsyncClient) -> None:
    await require_signature_checks(store, upload_client)
    url = await store.presigned_put("jobs/a/incoming/0001.jpg", timedelta(minutes=5))
    other_key = url.replace("0001.jpg", "0002.jpg")
    assert (await upload_client.put(other_key, content=b"x")).status_code == 403
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")  # the signature is the last parameter
    assert (await upload_client.put(tampered, content=b"x")).status_code == 403
    assert await store.list("") == []


async def test_expired_url_is_refused(store: ObjectStore, upload_client: httpx.AsyncClient) -> None:
    await require_signature_checks(store, upload_client)
    url = await store.presigned_put("jobs/a/incoming/0001.jpg", timedelta(seconds=1))
    await asyncio.sleep(2.1)
    assert (await upload_client.put(url, content=b"x")).status_code == 403
    assert not await store.exists("jobs/a/incoming/0001.jpg")


async def test_presigned_put_with_terms_takes_exactly_them(
    store: ObjectStore, upload_client: httpx.AsyncClient
) -> None:
    key = "jobs/a/incoming/0002.jpg"
    url = await store.presigned_put(key, timedelta(minutes=5), content_type="image/jpeg", content_length=5)
    response = await upload_client.put(url, content=b"photo", headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert (await store.stat(key)).content_type == "image/jpeg" and await store.get(key) == b"photo"

    await require_signature_checks(store, upload_client)
    for body, content_type in ((b"a much larger photo", "image/jpeg"), (b"pho", "image/jpeg"), (b"photo", "text/html")):
        refused = await upload_client.put(url, content=body, headers={"Content-Type": content_type})
        assert refused.status_code == 403, (body, content_type, refused.text)
    assert await store.get(key) == b"photo"
