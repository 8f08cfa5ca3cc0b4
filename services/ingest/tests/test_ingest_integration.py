"""Ingest on the real adapters: Postgres, an S3 server and RabbitMQ."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI
from PIL import ExifTags, Image
from sqlalchemy import func, select

from photosplat_ingest.app import create
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.sweeper import EXPIRY_GRACE, sweep_uploads
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job
from photosplat_libs.events import Envelope, ImagesValidated, JobSubmitted
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore, create_store
from photosplat_libs.topology import declare_topology

BASE = "http://ingest.test"


@dataclass
class Stack:
    client: httpx.AsyncClient
    db: Database
    store: ObjectStore
    events: asyncio.Queue[Envelope]

    async def next_events(self, count: int) -> list[Envelope]:
        return [await asyncio.wait_for(self.events.get(), 10) for _ in range(count)]


@pytest.fixture
async def stack(pg_url: str, s3_url: str, amqp_url: str, bus_namespace: str) -> AsyncIterator[Stack]:
    bus = RabbitBus(amqp_url, namespace=bus_namespace)
    store = create_store(s3_url)
    db = Database(pg_url)
    await bus.start()
    await declare_topology(bus)
    events: asyncio.Queue[Envelope] = asyncio.Queue()

    async def collect(event: Envelope, _delivery: Delivery) -> None:
        events.put_nowait(event)

    await bus.consume(QueueSpec("test.ingest", (JobSubmitted.routing_key, ImagesValidated.routing_key)), collect)
    service = create(IngestSettings(public_base_url=BASE), Deps(bus=bus, store=store, db=db))
    app = FastAPI()
    assert service.router is not None
    app.include_router(service.router)
    await service.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Stack(client, db, store, events)
    await service.stop()
    await bus.close()
    await db.dispose()


async def test_photos_become_a_job_with_events_and_clean_images(stack: Stack, make_photo) -> None:
    files = [("files", (f"IMG_{i}.jpg", make_photo(seed=i, gps=True, focal_35=35), "image/jpeg")) for i in range(3)]

    response = await stack.client.post("/recon/jobs", files=files)

    assert response.status_code == 201, response.text
    job_id = uuid.UUID(response.json()["job_id"])
    async with stack.db.transaction() as session:
        job = await session.get(Job, job_id)
    assert job is not None and (job.status, job.stage, job.image_count) == ("PENDING", "sfm", 3)
    events = await stack.next_events(2)
    assert {type(e) for e in events} == {JobSubmitted, ImagesValidated}
    validated = next(e for e in events if isinstance(e, ImagesValidated))
    assert validated.job_id == job_id and len(validated.images) == 3
    for info in validated.images:
        exif = Image.open(io.BytesIO(await stack.store.get(info.key))).getexif()
        assert exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
        assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] == 35


async def test_rejected_upload_leaves_no_row_and_no_object(stack: Stack, make_photo) -> None:
    files = [
        ("files", ("a.jpg", make_photo(seed=1), "image/jpeg")),
        ("files", ("b.jpg", b"text", "image/jpeg")),
        ("files", ("c.jpg", make_photo(seed=3), "image/jpeg")),
    ]

    response = await stack.client.post("/recon/jobs", files=files)

    assert response.status_code == 400
    assert response.json()["detail"]["errors"] == [
        {"file": "b.jpg", "rule": "format", "message": "not a JPEG, PNG or WebP image"}
    ]
    async with stack.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    assert await stack.store.list("") == []


async def _declare_and_upload(stack: Stack, photos: list[bytes], sent: list[bytes] | None = None) -> dict:
    declared = await stack.client.post(
        "/recon/uploads",
        json={"files": [{"name": f"{i}.jpg", "size": len(p)} for i, p in enumerate(photos)]},
    )
    assert declared.status_code == 201, declared.text
    body = declared.json()
    async with httpx.AsyncClient() as s3_client:
        for upload, photo in zip(body["uploads"], sent or photos, strict=True):
            assert "content-type" in upload["url"].lower() and "content-length" in upload["url"].lower()
            put = await s3_client.put(upload["url"], content=photo, headers=upload["headers"])
            assert put.status_code == 200, put.text
    return body


async def test_presigned_upload_to_s3_then_submit_then_sweep(stack: Stack, make_photo) -> None:
    photos = [make_photo(seed=i) for i in range(3)]
    body = await _declare_and_upload(stack, photos)
    auth = {"Authorization": f"Bearer {body['token']}"}

    submitted = await stack.client.post(f"/recon/jobs/{body['job_id']}/submit", headers=auth)

    assert submitted.status_code == 200, submitted.text
    events = await stack.next_events(2)
    validated = next(e for e in events if isinstance(e, ImagesValidated))
    assert str(validated.job_id) == body["job_id"] and len(validated.images) == 3
    incoming = f"jobs/{body['job_id']}/incoming/"
    assert await stack.store.list(incoming) == []
    # A PUT after the submit (its URL still valid) parks bytes nobody checks, until the sweep.
    async with httpx.AsyncClient() as s3_client:
        again = body["uploads"][0]
        assert (await s3_client.put(again["url"], content=photos[0], headers=again["headers"])).status_code == 200
    settings = IngestSettings()
    expired = datetime.now(timezone.utc) + timedelta(seconds=settings.upload_url_ttl_seconds) + EXPIRY_GRACE
    assert await sweep_uploads(settings, stack.db, stack.store, expired) >= 1
    assert await stack.store.list(incoming) == []
    assert len(await stack.store.list(f"jobs/{body['job_id']}/images/")) == 3


async def test_an_upload_of_another_size_than_declared_is_refused(stack: Stack, make_photo) -> None:
    """S3 and MinIO refuse it at the PUT (the URL signs Content-Length); this S3 test server checks no
    signature, so the submit's own check is what answers."""
    photos = [make_photo(seed=i) for i in range(3)]
    padded = [*photos[:2], photos[2] + bytes(5000)]
    body = await _declare_and_upload(stack, photos, sent=padded)

    refused = await stack.client.post(
        f"/recon/jobs/{body['job_id']}/submit", headers={"Authorization": f"Bearer {body['token']}"}
    )

    assert refused.status_code == 400
    [error] = refused.json()["detail"]["errors"]
    assert (error["file"], error["rule"]) == ("2.jpg", "declared_size")
