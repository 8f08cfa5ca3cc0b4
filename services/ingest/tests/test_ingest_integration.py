"""Ingest on the real adapters: Postgres, an S3 server and RabbitMQ."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from PIL import ExifTags, Image
from sqlalchemy import func, select

from photosplat_ingest.app import create
from photosplat_ingest.settings import IngestSettings
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


async def test_presigned_upload_to_s3_then_submit(stack: Stack, make_photo) -> None:
    declared = await stack.client.post(
        "/recon/uploads",
        json={"files": [{"name": f"{i}.jpg", "size": 20_000, "content_type": "image/jpeg"} for i in range(3)]},
    )
    assert declared.status_code == 201, declared.text
    body = declared.json()
    async with httpx.AsyncClient() as s3_client:
        for i, upload in enumerate(body["uploads"]):
            put = await s3_client.put(upload["url"], content=make_photo(seed=i), headers=upload["headers"])
            assert put.status_code == 200, put.text

    submitted = await stack.client.post(
        f"/recon/jobs/{body['job_id']}/submit", headers={"Authorization": f"Bearer {body['token']}"}
    )

    assert submitted.status_code == 200, submitted.text
    events = await stack.next_events(2)
    validated = next(e for e in events if isinstance(e, ImagesValidated))
    assert str(validated.job_id) == body["job_id"] and len(validated.images) == 3
    assert await stack.store.list(f"jobs/{body['job_id']}/incoming/") == []
