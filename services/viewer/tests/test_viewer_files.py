import pytest
from sqlalchemy import select

from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.security import hash_token

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


@pytest.fixture
async def done_key(viewer) -> str:
    return await viewer.add_job(
        JobStatus.DONE,
        files={"splat": ("scene.splat", DATA), "ply": ("scene.ply", b"ply\nformat binary_little_endian 1.0\n")},
    )


async def test_whole_file(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.splat")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["etag"].startswith('"')


async def test_first_bytes(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.splat", headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response.content == DATA[:100]
    assert response.headers["content-range"] == f"bytes 0-99/{len(DATA)}"
    assert response.headers["content-length"] == "100"


async def test_middle_range(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.splat", headers={"Range": "bytes=1000-5999"})
    assert response.status_code == 206
    assert response.content == DATA[1000:6000]


async def test_suffix_range(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.splat", headers={"Range": "bytes=-300"})
    assert response.status_code == 206
    assert response.content == DATA[-300:]
    assert response.headers["content-range"] == f"bytes {len(DATA) - 300}-{len(DATA) - 1}/{len(DATA)}"


async def test_open_ended_range(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.splat", headers={"Range": "bytes=10000-"})
    assert response.status_code == 206
    assert response.content == DATA[10000:]
    assert response.headers["content-range"] == f"bytes 10000-{len(DATA) - 1}/{len(DATA)}"


async def test_unsatisfiable_range(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.splat", headers={"Range": f"bytes={len(DATA)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"


async def test_head_gives_the_size_without_a_body(viewer, done_key: str) -> None:
    response = await viewer.client.head(f"/recon/pub/{done_key}/scene.splat")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(DATA))
    assert response.content == b""


async def test_etag_revalidation_and_if_range(viewer, done_key: str) -> None:
    url = f"/recon/pub/{done_key}/scene.splat"
    etag = (await viewer.client.head(url)).headers["etag"]
    assert (await viewer.client.get(url, headers={"If-None-Match": etag})).status_code == 304
    same = await viewer.client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == DATA[:10]
    changed = await viewer.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another-version"'})
    assert changed.status_code == 200 and changed.content == DATA


async def test_each_output_is_served_by_its_own_name(viewer, done_key: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/scene.ply")
    assert response.status_code == 200
    assert response.content.startswith(b"ply\n")
    assert response.headers["content-type"] == "application/octet-stream"


async def test_a_name_not_in_the_outputs_is_404(viewer, done_key: str) -> None:
    # The object exists in the store, but it is not one of the job's outputs.
    await viewer.store.put("jobs/secret.txt", b"nope")
    for name in ("scene.spz", "secret.txt", "images"):
        response = await viewer.client.get(f"/recon/pub/{done_key}/{name}")
        assert response.status_code == 404, name


@pytest.mark.parametrize(
    "path",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "..%2Foutput%2Fscene.splat",
        "%2E%2E",
        "..",
    ],
)
async def test_dot_dot_in_the_filename_is_404(viewer, done_key: str, path: str) -> None:
    response = await viewer.client.get(f"/recon/pub/{done_key}/{path}")
    assert response.status_code == 404
    assert DATA[:64] not in response.content


async def test_unknown_key_or_unfinished_job_serves_nothing(viewer) -> None:
    running = await viewer.add_job(JobStatus.RUNNING, files={"splat": ("scene.splat", DATA)})
    assert (await viewer.client.get(f"/recon/pub/{running}/scene.splat")).status_code == 404
    failed = await viewer.add_job(JobStatus.FAILED, files={"splat": ("scene.splat", DATA)})
    assert (await viewer.client.get(f"/recon/pub/{failed}/scene.splat")).status_code == 404
    assert (await viewer.client.get("/recon/pub/unknown-key-unknown-key-unknown/scene.splat")).status_code == 404


async def test_an_output_missing_from_the_store_is_404(viewer) -> None:
    pub_key = await viewer.add_job(JobStatus.DONE, files={"splat": ("scene.splat", DATA)})
    async with viewer.db.transaction() as session:
        job = (await session.execute(select(Job).where(Job.pub_key_hash == hash_token(pub_key)))).scalar_one()
        await viewer.store.delete(job.outputs["splat"])
    assert (await viewer.client.get(f"/recon/pub/{pub_key}/scene.splat")).status_code == 404
