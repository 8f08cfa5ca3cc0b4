"""The status service on real Postgres, RabbitMQ and S3: a restart loses nothing, nothing applies twice."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from photosplat_libs import keys, topology
from photosplat_libs.bus import Bus, create_bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import JobStatus, LogLine, OutboxMessage, ProcessedEvent
from photosplat_libs.events import (
    Envelope,
    ExportInfo,
    ImageInfo,
    ImagesValidated,
    JobSubmitted,
    LogLines,
    SfmDone,
    Stage,
    StageProgress,
    StageStarted,
    TrainingDone,
)
from photosplat_libs.store import create_store

T0 = datetime.now(timezone.utc) - timedelta(minutes=5)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stream(job_id: uuid.UUID) -> list[Envelope]:
    image = ImageInfo(key=keys.image(job_id, 0, ".jpg"), name="a.jpg", width=64, height=48, bytes=10)
    train = [
        StageProgress(
            job_id=job_id,
            stage=Stage.TRAIN,
            fraction=i / 10,
            metrics={"step": i * 100, "loss": 1 / i},
            occurred_at=at(20 + i),
        )
        for i in range(1, 10)
    ]
    return [
        JobSubmitted(job_id=job_id, image_count=1, pub_key_hash="h", occurred_at=at(0)),
        ImagesValidated(job_id=job_id, images=(image,), occurred_at=at(1)),
        StageStarted(job_id=job_id, stage=Stage.SFM, occurred_at=at(2)),
        LogLines(job_id=job_id, stage=Stage.SFM, lines=("sfm 1", "sfm 2"), occurred_at=at(3)),
        SfmDone(
            job_id=job_id,
            sparse_key=keys.sfm(job_id, "sparse.zip"),
            registered_images=1,
            total_images=1,
            points=10,
            reprojection_error=0.5,
            occurred_at=at(10),
        ),
        StageStarted(job_id=job_id, stage=Stage.TRAIN, occurred_at=at(11)),
        *train,
        LogLines(job_id=job_id, stage=Stage.TRAIN, lines=("train done",), occurred_at=at(35)),
        TrainingDone(
            job_id=job_id,
            exports=(ExportInfo(format="splat", key=keys.output(job_id, "scene.splat"), bytes=2048),),
            gaussian_count=1000,
            psnr=24.0,
            occurred_at=at(40),
        ),
    ]


async def rabbit(amqp_url: str, namespace: str) -> Bus:
    bus = create_bus(amqp_url, namespace=namespace)
    await bus.start()
    return bus


async def count(db: Database, model: Any, job_id: uuid.UUID) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(model.job_id == job_id)) or 0


async def test_a_restart_in_the_middle_of_a_stream_loses_nothing(
    pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str, kit: Any
) -> None:
    store = create_store(s3_url)
    publisher = await rabbit(amqp_url, bus_namespace)
    await topology.declare_topology(publisher)
    db = Database(pg_url)
    try:
        job = await kit.insert_job(db, created_at=at(0))
        events = stream(job.id)
        half = len(events) // 2

        async def applied(n: int) -> Any:
            async def check() -> bool:
                return await count(db, ProcessedEvent, job.id) == n

            return check

        first_bus = await rabbit(amqp_url, bus_namespace)
        async with kit.running_status(pg_url, first_bus, store):
            for event in events[:half]:
                await publisher.publish(event)
            await kit.eventually(await applied(half), timeout=20)
            await first_bus.close()

        # While status is down: the rest, a duplicate, and two events that arrive out of order.
        late_sfm_start = StageStarted(job_id=job.id, stage=Stage.SFM, occurred_at=at(2.5))
        for event in [*events[half:], events[3], events[-1], late_sfm_start, events[half + 1]]:
            await publisher.publish(event)

        second_bus = await rabbit(amqp_url, bus_namespace)
        try:
            async with kit.running_status(pg_url, second_bus, store) as second:
                await kit.eventually(await applied(len(events) + 1), timeout=20)
                row = await kit.load_job(db, job.id)
                assert (row.status, row.stage, row.progress) == (JobStatus.DONE, "export", 1.0)
                assert (row.gaussian_count, row.file_sizes, row.held_out.psnr) == (1000, {"splat": 2048}, 24.0)
                assert (row.started_at, row.finished_at, row.attempt) == (at(2), at(40), 1)
                assert [p.step for p in row.statistics.curve] == [i * 100 for i in range(1, 10)]
                assert await count(db, LogLine, job.id) == 3

                await store.put(keys.image(job.id, 0, ".jpg"), b"photo")
                await store.put(keys.output(job.id, "scene.splat"), b"splat")
                response = await second.client.delete(
                    f"/recon/jobs/{job.id}", headers={"Authorization": f"Bearer {job.token}"}
                )
                assert response.status_code == 204
                # an event of a worker that had not heard of the delete yet, with its late object
                await store.put(keys.output(job.id, "late.ply"), b"late")
                await publisher.publish(LogLines(job_id=job.id, lines=("late",)))

                async def cleaned() -> bool:
                    return await store.list(keys.job_prefix(job.id)) == []

                await kit.eventually(cleaned, timeout=20)
                assert await kit.load_job(db, job.id) is None
                for model in (ProcessedEvent, LogLine, OutboxMessage):
                    assert await count(db, model, job.id) == 0
        finally:
            await second_bus.close()
    finally:
        await db.dispose()
        await publisher.close()


async def test_a_worker_crashing_on_every_delivery_fails_the_job(
    pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str, kit: Any
) -> None:
    bus = await rabbit(amqp_url, bus_namespace)
    db = Database(pg_url)
    try:
        async with kit.running_status(pg_url, bus, create_store(s3_url)) as status:
            job = await kit.insert_job(db)
            request = stream(job.id)[1]
            await bus.publish(request)

            async def projected() -> bool:
                return await count(db, ProcessedEvent, job.id) == 1

            await kit.eventually(projected, timeout=20)

            async def crash(_event: Envelope, _delivery: Any) -> None:
                raise RuntimeError("worker died")

            await bus.consume(topology.COLMAP_WORK, crash)

            async def failed() -> bool:
                row = await kit.load_job(db, job.id)
                return row.status == JobStatus.FAILED

            await kit.eventually(failed, timeout=30)
            errors = (
                await status.client.get(
                    f"/recon/jobs/{job.id}/errors", headers={"Authorization": f"Bearer {job.token}"}
                )
            ).json()
            assert [(e["stage"], e["error_type"], e["final"]) for e in errors] == [("sfm", "WorkerCrashed", True)]
            await bus.close()
    finally:
        await db.dispose()
