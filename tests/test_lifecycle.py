"""A job's whole lifecycle across all five services on real RabbitMQ, Postgres and S3.

Each service gets its own broker connection, database engine and store client, as separate
processes would. The SfM and training engines are replaced by small work functions (the engines
have their own tests); everything else is the production code path: HTTP upload, validation,
outbox, queues, projection, the viewer and delete.
"""

from __future__ import annotations

import asyncio
import secrets
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from photosplat_colmap.app import create as create_colmap
from photosplat_colmap.settings import ColmapSettings
from photosplat_ingest.app import create as create_ingest
from photosplat_ingest.settings import IngestSettings
from photosplat_libs import keys
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.db.models import ErrorLog, Job, LogLine, OutboxMessage, ProcessedEvent
from photosplat_libs.events import Envelope, ExportInfo, ImagesValidated, SfmDone, TrainingDone
from photosplat_libs.runner import build_app, running
from photosplat_libs.service import Deps, Service
from photosplat_libs.store import create_store
from photosplat_libs.worker import JobContext
from photosplat_status.app import create as create_status
from photosplat_status.settings import StatusSettings
from photosplat_trainer.app import create as create_trainer
from photosplat_trainer.settings import TrainerSettings
from photosplat_viewer.app import create as create_viewer
from photosplat_viewer.settings import ViewerSettings

BASE = "http://photosplat.test"
ADMIN = secrets.token_urlsafe(32)
SCENE = bytes(range(256)) * 40


def photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


async def small_sfm(event: Envelope, ctx: JobContext) -> Envelope:
    assert isinstance(event, ImagesValidated)
    for image in event.images:  # the worker reads what ingest stored
        await ctx.store.get(image.key)
    ctx.log("matched 3 pairs")
    sparse = keys.sfm(ctx.job_id, "undistorted/sparse/points3D.bin")
    await ctx.store.put(sparse, b"\x00" * 64)
    return SfmDone(
        job_id=ctx.job_id,
        sparse_key=keys.sfm(ctx.job_id, "undistorted/"),
        registered_images=len(event.images),
        total_images=len(event.images),
        points=1234,
        reprojection_error=0.8,
    )


async def small_training(event: Envelope, ctx: JobContext) -> Envelope:
    assert isinstance(event, SfmDone)
    ctx.progress(0.5, loss=0.1, psnr=20.0, step=100)
    key = keys.output(ctx.job_id, "scene.splat")
    await ctx.store.put(key, SCENE)
    return TrainingDone(
        job_id=ctx.job_id,
        exports=(ExportInfo(format="splat", key=key, bytes=len(SCENE)),),
        gaussian_count=len(SCENE) // 32,
        psnr=27.5,
        ssim=0.9,
    )


@dataclass
class System:
    http: httpx.AsyncClient
    db: Database
    store_url: str


@pytest.fixture
async def system(pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str) -> AsyncIterator[System]:
    def deps(with_db: bool) -> Deps:
        return Deps(
            bus=RabbitBus(amqp_url, namespace=bus_namespace),
            store=create_store(s3_url, public_url="http://127.0.0.1:1"),
            db=Database(pg_url) if with_db else None,
        )

    common = {"bus_url": amqp_url, "database_url": pg_url, "store_url": s3_url, "public_base_url": BASE}
    services: list[tuple[Service, Deps]] = []
    for create, settings, with_db in (
        (create_status, StatusSettings(**common, admin_token=ADMIN), True),
        (create_ingest, IngestSettings(**common), True),
        (create_viewer, ViewerSettings(**common), True),
    ):
        d = deps(with_db)
        services.append((create(settings, d), d))  # type: ignore[operator]
    worker_common = {k: v for k, v in common.items() if k != "public_base_url"}
    d = deps(False)
    services.append((create_colmap(ColmapSettings(**worker_common), d, work=small_sfm), d))
    d = deps(False)
    services.append((create_trainer(TrainerSettings(**worker_common), d, work=small_training), d))

    app_services = [s for s, _ in services if s.router is not None]
    gateway = build_app(app_services, Deps(bus=services[0][1].bus, store=services[0][1].store))
    async with AsyncExitStack() as stack:
        for service, d in services:
            await stack.enter_async_context(running([service], d))
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url=BASE)
        stack.push_async_callback(http.aclose)
        db = Database(pg_url)
        stack.push_async_callback(db.dispose)
        yield System(http=http, db=db, store_url=s3_url)


async def wait_status(http: httpx.AsyncClient, job_id: str, token: str, want: str) -> dict[str, object]:
    async with asyncio.timeout(30):
        while True:
            r = await http.get(f"/recon/jobs/{job_id}/status", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            body = r.json()
            if body["status"] == want:
                return body
            assert body["status"] in ("PENDING", "RUNNING"), body
            await asyncio.sleep(0.2)


async def rows_of(db: Database, job_id: uuid.UUID) -> dict[str, int]:
    counts = {}
    async with db.sessions() as session:
        for model in (Job, ProcessedEvent, ErrorLog, LogLine, OutboxMessage):
            column = model.id if model is Job else model.job_id
            counts[model.__tablename__] = await session.scalar(select(func.count()).where(column == job_id))
    return counts


async def test_job_lifecycle_upload_to_viewer_to_delete(system: System) -> None:
    files = [("files", (f"photo{i}.jpg", photo(i), "image/jpeg")) for i in range(3)]
    r = await system.http.post("/recon/jobs", files=files, data={"original_resolution": "false"})
    assert r.status_code == 201, r.text
    created = r.json()
    job_id, token, pub_key = created["job_id"], created["token"], created["pub_key"]
    assert uuid.UUID(job_id).version == 4 and len(pub_key) >= 22

    done = await wait_status(system.http, job_id, token, "DONE")
    assert done["image_count"] == 3 and done["registered_image_count"] == 3
    assert done["gaussian_count"] == len(SCENE) // 32
    assert done["metrics"]["psnr"] == 27.5
    assert done["viewer_url"] == f"{BASE}/v/{pub_key}"
    assert any("matched 3 pairs" in line for line in done["log_tail"])
    assert done["processing_time_seconds"] is not None

    page = await system.http.get(f"/v/{pub_key}")
    assert page.status_code == 200 and "scene.splat" in page.text
    part = await system.http.get(f"/recon/pub/{pub_key}/scene.splat", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == SCENE[10:20]

    # another client sees nothing, a missing token is refused, the admin sees the job
    other = await system.http.post("/recon/jobs", files=[("files", (f"o{i}.jpg", photo(10 + i), "image/jpeg")) for i in range(3)])
    other_token = other.json()["token"]
    assert (await system.http.delete(f"/recon/jobs/{job_id}")).status_code == 401
    foreign = {"Authorization": f"Bearer {other_token}"}
    assert (await system.http.delete(f"/recon/jobs/{job_id}", headers=foreign)).status_code == 404
    assert (await system.http.get(f"/recon/jobs/{job_id}/status", headers=foreign)).status_code == 404
    listing = await system.http.get("/recon/jobs", headers={"Authorization": f"Bearer {ADMIN}"})
    assert job_id in {item["job_id"] for item in listing.json()["items"]}

    r = await system.http.delete(f"/recon/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    await asyncio.sleep(1.0)  # late events of the deleted job must not bring anything back
    assert await rows_of(system.db, uuid.UUID(job_id)) == dict.fromkeys(
        ("jobs", "events", "error_logs", "log_lines", "outbox"), 0
    )
    assert await create_store(system.store_url).list(keys.job_prefix(uuid.UUID(job_id))) == []
    assert (await system.http.get(f"/v/{pub_key}")).status_code == 404
    # the other client's job is untouched
    assert (await system.http.get(f"/recon/jobs/{other.json()['job_id']}/status", headers=foreign)).status_code == 200


async def test_rejected_upload_leaves_nothing(system: System) -> None:
    good = [("files", (f"p{i}.jpg", photo(i), "image/jpeg")) for i in range(3)]
    bad = [("files", ("cut.jpg", photo(9)[:1500], "image/jpeg")), ("files", ("notes.jpg", b"hello", "image/jpeg"))]
    r = await system.http.post("/recon/jobs", files=good + bad)
    assert r.status_code == 400
    named = {e["file"]: e["rule"] for e in r.json()["detail"]["errors"]}
    assert set(named) == {"cut.jpg", "notes.jpg"}
    async with system.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job)) == 0
    assert await create_store(system.store_url).list("jobs/") == []
