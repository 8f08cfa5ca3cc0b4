"""HTTP rules of ingest on the embedded adapters (memory bus, folder store, SQLite)."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from PIL import ExifTags, Image
from sqlalchemy import func, select

from photosplat_ingest.app import create
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.sweeper import EXPIRY_GRACE, sweep_uploads
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job, OutboxMessage
from photosplat_libs.events import Envelope, ImagesValidated, JobSubmitted
from photosplat_libs.security import hash_token, new_token, unseal_pub_key
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore

BASE = "http://testserver"


@dataclass
class Harness:
    client: httpx.AsyncClient
    db: Database
    store: FolderStore
    root: Path
    events: asyncio.Queue[Envelope]

    async def next_events(self, count: int) -> list[Envelope]:
        return [await asyncio.wait_for(self.events.get(), 5) for _ in range(count)]

    async def job_count(self) -> int:
        async with self.db.transaction() as session:
            return await session.scalar(select(func.count()).select_from(Job)) or 0

    async def outbox_count(self) -> int:
        async with self.db.transaction() as session:
            return await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0

    async def job(self, job_id: str) -> Job:
        async with self.db.transaction() as session:
            job = await session.get(Job, uuid.UUID(job_id))
        assert job is not None
        return job


@pytest.fixture
async def harness(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    settings = IngestSettings(public_base_url=BASE, max_files=5)
    bus = MemoryBus()
    root = tmp_path / "objects"
    store = FolderStore(root, public_url=BASE, signing_secret="test-secret")
    db = Database(sqlite_url)
    await bus.start()
    await store.ensure_ready()
    events: asyncio.Queue[Envelope] = asyncio.Queue()

    async def collect(event: Envelope, _delivery: Delivery) -> None:
        events.put_nowait(event)

    await bus.consume(QueueSpec("test.ingest", (JobSubmitted.routing_key, ImagesValidated.routing_key)), collect)
    service = create(settings, Deps(bus=bus, store=store, db=db))
    app = FastAPI()
    assert service.router is not None
    app.include_router(service.router)
    await service.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Harness(client, db, store, root, events)
    await service.stop()
    await bus.close()
    await db.dispose()


def _files(*items: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "image/jpeg")) for name, data in items]


async def test_multipart_upload_creates_job_and_events(harness: Harness, make_photo) -> None:
    photos = [
        ("a.jpg", make_photo(seed=1, gps=True, focal_35=28)),
        ("../evil.jpg", make_photo(seed=2)),
        ("c.png", make_photo(seed=3, fmt="PNG")),
    ]

    response = await harness.client.post(
        "/recon/jobs",
        files=_files(*photos),
        data={"original_resolution": "true", "preset": "preview"},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    job_id, pub_key, token = body["job_id"], body["pub_key"], body["token"]
    assert len(pub_key) == 32 and body["original_resolution"] is True
    assert body["status_url"] == f"{BASE}/recon/jobs/{job_id}/status"
    assert body["viewer_url"] == f"{BASE}/v/{pub_key}"
    job = await harness.job(job_id)
    assert (job.status, job.stage, job.image_count) == ("PENDING", "sfm", 3)
    assert job.owner_hash == hash_token(token) and job.pub_key_hash == hash_token(pub_key)
    assert unseal_pub_key(job.pub_key_sealed, token, job_id) == pub_key
    assert job.options["preset"] == "preview" and job.options["original_resolution"] is True

    submitted, validated = await harness.next_events(2)
    assert isinstance(submitted, JobSubmitted) and isinstance(validated, ImagesValidated)
    assert submitted.pub_key_hash == hash_token(pub_key) and submitted.image_count == 3
    assert [i.key for i in validated.images] == [
        f"jobs/{job_id}/images/0000.jpg",
        f"jobs/{job_id}/images/0001.jpg",
        f"jobs/{job_id}/images/0002.png",
    ]
    assert [i.name for i in validated.images] == ["a.jpg", "../evil.jpg", "c.png"]
    first = validated.images[0]
    assert (first.width, first.height, first.camera) == (160, 120, "Canon EOS 5D")
    assert first.focal_length_px == pytest.approx(28 / 36 * 160)
    stored = Image.open(io.BytesIO(await harness.store.get(first.key)))
    assert stored.getexif().get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert first.bytes == (await harness.store.stat(first.key)).size
    # Nothing was written outside the store, whatever the client called its files.
    assert not (harness.root.parent / "evil.jpg").exists()


def _transforms(names: list[str], **extra: object) -> bytes:
    def pose(x: float) -> list[list[float]]:
        return [[1.0, 0.0, 0.0, x], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]

    frames = [{"file_path": f"images/{n.rsplit('.', 1)[0]}", "transform_matrix": pose(i)} for i, n in enumerate(names)]
    return json.dumps({"camera_angle_x": 0.9, "frames": frames, **extra}).encode()


async def test_photos_with_their_cameras_carry_the_poses_to_sfm(harness: Harness, make_photo) -> None:
    names = ["a.jpg", "b.jpg", "c.jpg"]
    photos = _files(*[(n, make_photo(seed=i)) for i, n in enumerate(names)])
    poses = _transforms(names)
    response = await harness.client.post(
        "/recon/jobs", files=[*photos, ("poses", ("transforms.json", poses, "application/json"))]
    )

    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]
    _submitted, validated = await harness.next_events(2)
    assert isinstance(validated, ImagesValidated) and len(validated.images) == 3
    assert validated.poses_key == f"jobs/{job_id}/poses/transforms.json"
    assert await harness.store.get(validated.poses_key) == poses


async def test_bad_poses_are_named_and_nothing_is_kept(harness: Harness, make_photo) -> None:
    names = ["a.jpg", "b.jpg", "c.jpg"]
    photos = _files(*[(n, make_photo(seed=i)) for i, n in enumerate(names)])
    without_focal = json.dumps({"frames": json.loads(_transforms(names))["frames"]}).encode()
    cases = {
        b"{not json": "not valid JSON",
        json.dumps({"frames": []}).encode(): 'no "frames" list',
        _transforms(["x.jpg", "y.jpg", "a.jpg"]): "name 1 of the uploaded photos",
        without_focal: "no focal length",
        b'{"frames": ' + b"[" * 100_000 + b"]" * 100_000 + b"}": "nested too deeply",
        _transforms(names).replace(b'"camera_angle_x": 0.9', b'"camera_angle_x": 1e999'): '"camera_angle_x"',
    }
    for poses, message in cases.items():
        response = await harness.client.post(
            "/recon/jobs", files=[*photos, ("poses", ("transforms.json", poses, "application/json"))]
        )
        assert response.status_code == 400, response.text
        [error] = response.json()["detail"]["errors"]
        assert (error["file"], error["rule"]) == ("transforms.json", "poses") and message in error["message"]
    assert await harness.job_count() == 0 and await harness.store.list("jobs/") == []


async def test_only_tokens_the_server_issued_become_job_tokens(harness: Harness, make_photo) -> None:
    photos = _files(*[(f"{i}.jpg", make_photo(seed=i)) for i in range(3)])
    first = await harness.client.post("/recon/jobs", files=photos)
    assert first.status_code == 201, first.text
    token = first.json()["token"]
    assert len(token) >= 43  # 256 bits from secrets
    # A client reuses the token it was given: its jobs share one owner ("my jobs").
    again = await harness.client.post("/recon/jobs", files=photos, headers={"Authorization": f"Bearer {token}"})
    declared = await _declare(harness, ["a.jpg", "b.jpg", "c.jpg"], token)
    assert again.json()["token"] == declared.json()["token"] == token
    assert (await harness.job(again.json()["job_id"])).owner_hash == hash_token(token)
    # A proxy's own credentials are not a bearer token: ignored, a new token is issued.
    basic = await harness.client.post("/recon/jobs", files=photos, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 201 and basic.json()["token"] not in (token, "dXNlcjpwYXNz")
    jobs = await harness.job_count()

    for chosen in ("a" * 22, new_token(), "short", token + "x"):
        auth = {"Authorization": f"Bearer {chosen}"}
        multipart = await harness.client.post("/recon/jobs", files=photos, headers=auth)
        presigned = await _declare(harness, ["a.jpg", "b.jpg", "c.jpg"], chosen)
        for response in (multipart, presigned):
            assert response.status_code == 401, response.text
            assert "not issued by this server" in response.json()["detail"]
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert await harness.job_count() == jobs


async def test_rejected_upload_names_every_bad_file_and_stores_nothing(harness: Harness, make_photo) -> None:
    good = make_photo(seed=1)
    truncated = make_photo(400, 300, seed=2)
    photos = [
        ("good.jpg", good),
        ("notes.jpg", b"just text"),
        ("half.jpg", truncated[: len(truncated) // 2]),
        ("tiny.jpg", make_photo(99, 99)),
        ("doc.pdf", b"%PDF-1.4"),
    ]

    response = await harness.client.post("/recon/jobs", files=_files(*photos))

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert {(e["file"], e["rule"]) for e in detail["errors"]} == {
        ("notes.jpg", "format"),
        ("half.jpg", "corrupt"),
        ("tiny.jpg", "min_side"),
        ("doc.pdf", "extension"),
    }
    assert "4 file(s)" in detail["message"]
    assert await harness.job_count() == 0 and await harness.outbox_count() == 0
    assert await harness.store.list("jobs/") == []


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, looser threshold
async def test_a_huge_canvas_is_refused_by_the_pixel_rule(harness: Harness, make_photo, zero_png) -> None:
    photos = [("a.jpg", make_photo(seed=1)), ("b.jpg", make_photo(seed=2)), ("zeros.png", zero_png(10_000, 10_000))]

    response = await harness.client.post("/recon/jobs", files=_files(*photos))

    assert response.status_code == 400
    [error] = response.json()["detail"]["errors"]
    assert (error["file"], error["rule"]) == ("zeros.png", "max_pixels") and "64000000" in error["message"]
    assert await harness.job_count() == 0 and await harness.store.list("jobs/") == []


async def test_file_count_limits(harness: Harness, make_photo) -> None:
    none = await harness.client.post("/recon/jobs", data={"preset": "standard"})
    two = await harness.client.post(
        "/recon/jobs", files=_files(("a.jpg", make_photo(seed=1)), ("b.jpg", make_photo(seed=2)))
    )
    six = await harness.client.post("/recon/jobs", files=_files(*[(f"{i}.jpg", b"x") for i in range(6)]))

    for response, rule in ((none, "min_files"), (two, "min_files"), (six, "max_files")):
        assert response.status_code == 400
        assert [e["rule"] for e in response.json()["detail"]["errors"]] == [rule]
    assert "at least 3" in none.json()["detail"]["message"]
    assert await harness.job_count() == 0


async def test_a_multipart_request_over_the_size_cap_is_refused_with_413_and_nothing_kept(
    harness: Harness, make_photo, sqlite_url: str, tmp_path: Path
) -> None:
    # The harness app has the default 1 GiB cap: a small one is set on a second app for this test.
    settings = IngestSettings(public_base_url=BASE, max_request_bytes=200_000)
    service = create(settings, Deps(bus=MemoryBus(), store=harness.store, db=harness.db))
    app = FastAPI()
    assert service.router is not None
    app.include_router(service.router)
    photos = _files(*[(f"{i}.jpg", make_photo(800, 600, seed=i)) for i in range(4)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        declared = await client.post("/recon/jobs", files=photos)

        request = httpx.Request("POST", BASE + "/recon/jobs", files=photos)
        body = request.read()
        assert len(body) > settings.max_request_bytes

        async def chunks() -> AsyncIterator[bytes]:  # chunked: no length declared, the cap counts what arrives
            for start in range(0, len(body), 65536):
                yield body[start : start + 65536]

        streamed = await client.post("/recon/jobs", content=chunks(), headers={"content-type": request.headers["content-type"]})
        assert "content-length" not in streamed.request.headers
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        [error] = response.json()["detail"]["errors"]
        assert error["rule"] == "max_request_bytes" and "/recon/uploads" in error["message"]
    assert await harness.job_count() == 0 and await harness.store.list("jobs/") == []


async def test_duplicate_photo_and_bad_options_are_refused(harness: Harness, make_photo) -> None:
    photo = make_photo(seed=7)
    dup = await harness.client.post(
        "/recon/jobs", files=_files(("a.jpg", photo), ("b.jpg", photo), ("c.jpg", make_photo(seed=8)))
    )
    preset = await harness.client.post(
        "/recon/jobs", data={"preset": "../../etc"}, files=_files(*[(f"{i}.jpg", make_photo(seed=i)) for i in range(3)])
    )

    assert [(e["file"], e["rule"]) for e in dup.json()["detail"]["errors"]] == [("b.jpg", "duplicate")]
    assert preset.status_code == 400 and preset.json()["detail"]["errors"][0]["rule"] == "options"


async def test_a_mistyped_preset_is_refused_before_the_job_costs_anything(harness: Harness, make_photo) -> None:
    # It used to pass a name check, run the whole SfM stage, then fail three training attempts.
    response = await harness.client.post(
        "/recon/jobs", data={"preset": "standrad"}, files=_files(*[(f"{i}.jpg", make_photo(seed=i)) for i in range(3)])
    )
    assert response.status_code == 400
    error = response.json()["detail"]["errors"][0]
    assert error["rule"] == "options" and "preview, standard, reference" in error["message"]


async def _declare(
    harness: Harness, names: list[str], token: str | None = None, bodies: list[bytes] | None = None
) -> httpx.Response:
    sizes = [len(b) for b in bodies] if bodies else [1000] * len(names)
    files = [{"name": n, "size": size, "content_type": "image/jpeg"} for n, size in zip(names, sizes, strict=True)]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await harness.client.post("/recon/uploads", json={"files": files, "preset": "standard"}, headers=headers)


async def test_presigned_flow(harness: Harness, make_photo) -> None:
    photos = [make_photo(seed=0), make_photo(seed=1), make_photo(seed=2, fmt="PNG")]
    declared = await _declare(harness, ["a.jpg", "b.jpeg", "c.png"], bodies=photos)
    assert declared.status_code == 201, declared.text
    body = declared.json()
    job_id, token = body["job_id"], body["token"]
    assert body["submit_url"] == f"{BASE}/recon/jobs/{job_id}/submit"
    job = await harness.job(job_id)
    assert (job.stage, job.status) == ("upload", "PENDING") and [u["name"] for u in job.uploads] == [
        "a.jpg",
        "b.jpeg",
        "c.png",
    ]
    for upload, photo in zip(body["uploads"], photos, strict=True):
        assert upload["method"] == "PUT" and upload["key"].startswith(f"jobs/{job_id}/incoming/")
        put = await harness.client.put(upload["url"], content=photo, headers=upload["headers"])
        assert put.status_code == 200, put.text
    assert harness.events.empty()  # no event before the submit

    no_token = await harness.client.post(f"/recon/jobs/{job_id}/submit")
    stranger = await harness.client.post(
        f"/recon/jobs/{job_id}/submit", headers={"Authorization": f"Bearer {new_token()}"}
    )
    unknown = await harness.client.post(
        f"/recon/jobs/{uuid.uuid4()}/submit", headers={"Authorization": f"Bearer {token}"}
    )
    assert (no_token.status_code, stranger.status_code, unknown.status_code) == (401, 404, 404)

    submitted = await harness.client.post(f"/recon/jobs/{job_id}/submit", headers={"Authorization": f"Bearer {token}"})

    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["viewer_url"] == f"{BASE}/v/{body['pub_key']}"
    _, validated = await harness.next_events(2)
    assert isinstance(validated, ImagesValidated)
    assert [i.key for i in validated.images] == [
        f"jobs/{job_id}/images/0000.jpg",
        f"jobs/{job_id}/images/0001.jpg",
        f"jobs/{job_id}/images/0002.png",
    ]
    assert await harness.store.list(f"jobs/{job_id}/incoming/") == []
    assert (await harness.job(job_id)).stage == "sfm"
    again = await harness.client.post(f"/recon/jobs/{job_id}/submit", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 409


async def test_presigned_submit_with_bad_files_can_be_fixed(harness: Harness, make_photo) -> None:
    photos = [make_photo(seed=i) for i in (1, 2, 3)]
    body = (await _declare(harness, ["a.jpg", "b.jpg", "c.jpg"], bodies=photos)).json()
    job_id, auth = body["job_id"], {"Authorization": f"Bearer {body['token']}"}
    a, b, c = body["uploads"]
    await harness.client.put(a["url"], content=photos[0], headers=a["headers"])
    # The declared size, but garbled on the way.
    await harness.client.put(b["url"], content=bytes(len(photos[1])), headers=b["headers"])

    refused = await harness.client.post(f"/recon/jobs/{job_id}/submit", headers=auth)

    assert refused.status_code == 400
    assert {(e["file"], e["rule"]) for e in refused.json()["detail"]["errors"]} == {
        ("b.jpg", "format"),
        ("c.jpg", "missing"),
    }
    assert [o.key for o in await harness.store.list(f"jobs/{job_id}/")] == [a["key"]]
    assert (await harness.job(job_id)).stage == "upload" and await harness.outbox_count() == 0

    await harness.client.put(b["url"], content=photos[1], headers=b["headers"])
    await harness.client.put(c["url"], content=photos[2], headers=c["headers"])
    accepted = await harness.client.post(f"/recon/jobs/{job_id}/submit", headers=auth)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["image_count"] == 3


async def test_declaration_is_checked(harness: Harness) -> None:
    bad = await harness.client.post(
        "/recon/uploads",
        json={
            "files": [
                {"name": "a.jpg", "size": 10},
                {"name": "b.gif", "size": 10},
                {"name": "c.jpg", "size": 60 * 1024 * 1024},
            ]
        },
    )
    few = await _declare(harness, ["a.jpg"])

    assert bad.status_code == 400
    assert {(e["file"], e["rule"]) for e in bad.json()["detail"]["errors"]} == {
        ("b.gif", "extension"),
        ("c.jpg", "max_bytes"),
    }
    assert few.status_code == 400 and few.json()["detail"]["errors"][0]["rule"] == "min_files"
    assert await harness.job_count() == 0


async def test_presigned_url_is_scoped_to_its_object(harness: Harness, make_photo) -> None:
    body = (await _declare(harness, ["a.jpg", "b.jpg", "c.jpg"])).json()
    url = body["uploads"][0]["url"]
    other = url.replace("/incoming/0000.jpg", "/incoming/0001.jpg")

    response = await harness.client.put(other, content=make_photo(), headers={"Content-Type": "image/jpeg"})

    assert response.status_code == 403


async def _uploaded_job(harness: Harness, make_photo) -> tuple[dict, dict[str, str], list[bytes]]:
    """A declared job whose three photos are uploaded, not yet submitted."""
    photos = [make_photo(seed=i) for i in range(3)]
    body = (await _declare(harness, ["a.jpg", "b.jpg", "c.jpg"], bodies=photos)).json()
    for upload, photo in zip(body["uploads"], photos, strict=True):
        assert (await harness.client.put(upload["url"], content=photo, headers=upload["headers"])).status_code == 200
    return body, {"Authorization": f"Bearer {body['token']}"}, photos


async def test_a_presigned_url_takes_only_the_declared_file(harness: Harness, make_photo) -> None:
    photo = make_photo(seed=1)
    body = (await _declare(harness, ["a.jpg", "b.jpg", "c.jpg"], bodies=[photo] * 3)).json()
    upload = body["uploads"][0]

    bigger = await harness.client.put(upload["url"], content=photo + bytes(5_000_000), headers=upload["headers"])
    other_type = await harness.client.put(upload["url"], content=photo, headers={"Content-Type": "text/html"})

    assert (bigger.status_code, other_type.status_code) == (403, 403)
    assert await harness.store.list(f"jobs/{body['job_id']}/") == []


async def test_a_put_after_submit_is_swept_once_the_urls_expire(harness: Harness, make_photo) -> None:
    body, auth, photos = await _uploaded_job(harness, make_photo)
    job_id, incoming = body["job_id"], f"jobs/{body['job_id']}/incoming/"
    assert (await harness.client.post(f"/recon/jobs/{job_id}/submit", headers=auth)).status_code == 200
    assert await harness.store.list(incoming) == []  # validated, copied, then removed
    again = body["uploads"][0]
    # The URL is still valid: S3 cannot revoke it. The bytes land, unchecked, until the sweep.
    assert (await harness.client.put(again["url"], content=photos[0], headers=again["headers"])).status_code == 200

    settings, now = IngestSettings(), datetime.now(timezone.utc)
    assert await sweep_uploads(settings, harness.db, harness.store, now) == 0  # its URLs still work
    expired = now + timedelta(seconds=settings.upload_url_ttl_seconds) + EXPIRY_GRACE
    assert await sweep_uploads(settings, harness.db, harness.store, expired) == 1

    assert await harness.store.list(incoming) == []
    assert [o.key.rsplit("/", 2)[1] for o in await harness.store.list(f"jobs/{job_id}/")] == ["images"] * 3
    assert (await harness.job(job_id)).uploads == []
    assert await sweep_uploads(settings, harness.db, harness.store, expired) == 0  # visited once


async def test_uploads_never_submitted_are_swept_when_the_window_closes(harness: Harness, make_photo) -> None:
    body, auth, _ = await _uploaded_job(harness, make_photo)
    job_id = body["job_id"]
    settings, now = IngestSettings(), datetime.now(timezone.utc)
    expired = now + timedelta(seconds=settings.upload_url_ttl_seconds) + EXPIRY_GRACE
    assert await sweep_uploads(settings, harness.db, harness.store, expired) == 0  # it may still be submitted

    closed = now + timedelta(seconds=settings.upload_ttl_seconds + 1)
    assert await sweep_uploads(settings, harness.db, harness.store, closed) == 1

    assert await harness.store.list(f"jobs/{job_id}/") == []
    late = await _late_submit(harness, settings, job_id, auth)
    assert late.status_code == 410 and "/recon/uploads" in late.json()["detail"]


async def _late_submit(harness: Harness, settings: IngestSettings, job_id: str, auth: dict[str, str]) -> httpx.Response:
    """A submit after the job's upload window: its row is backdated past it."""
    async with harness.db.transaction() as session:
        job = await session.get(Job, uuid.UUID(job_id))
        assert job is not None
        job.created_at -= timedelta(seconds=settings.upload_ttl_seconds + 1)
    return await harness.client.post(f"/recon/jobs/{job_id}/submit", headers=auth)
