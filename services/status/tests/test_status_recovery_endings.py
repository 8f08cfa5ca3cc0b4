"""How jobs end on real Postgres (and RabbitMQ for dead letters): a work request dead-lettered by its
worker's queue fails the job with the reason, and an ended job leaves no training checkpoint behind."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from sqlalchemy import select

from photosplat_libs import keys, topology
from photosplat_libs.bus import Bus, Delivery, create_bus
from photosplat_libs.bus.rabbit import qualified
from photosplat_libs.db.models import ErrorLog, JobStatus
from photosplat_libs.events import (
    CancelRequested,
    LogLines,
    SfmDone,
    Stage,
    StageFailed,
    StageStarted,
    encode,
)
from photosplat_libs.store import ObjectStore, create_store
from photosplat_status import lifecycle
from photosplat_status import repository as repo
from photosplat_status.projection import project

LONG_AGO = datetime.now(timezone.utc) - timedelta(hours=1)


def sfm_done(job_id: uuid.UUID) -> SfmDone:
    return SfmDone(
        job_id=job_id, sparse_key=keys.sfm(job_id, "sparse"), registered_images=1, total_images=1, points=9,
        reprojection_error=0.5, occurred_at=LONG_AGO,
    )


@pytest.fixture
async def store(tmp_path: Path) -> ObjectStore:
    store = create_store(f"file:{tmp_path}/objects")
    await store.ensure_ready()
    return store


@pytest.fixture
async def status(pg_url: str, store: ObjectStore, kit: Any) -> AsyncIterator[Any]:
    bus = create_bus("memory://")
    await bus.start()
    async with kit.running_status(pg_url, bus, store) as running:
        yield running
    await bus.close()


async def training_job(status: Any, kit: Any) -> uuid.UUID:
    """A job in training whose trainer has stored a checkpoint."""
    job = await kit.insert_job(status.db, created_at=LONG_AGO, stage="sfm")
    for event in (sfm_done(job.id), StageStarted(job_id=job.id, stage=Stage.TRAIN, occurred_at=LONG_AGO)):
        await project(status.db, status.store, event)
    await status.store.put(keys.train_checkpoint(job.id), b"weights")
    return job.id


async def test_a_final_failure_drops_the_checkpoint(status: Any, kit: Any) -> None:
    job_id = await training_job(status, kit)
    retried = StageFailed(job_id=job_id, stage=Stage.TRAIN, error_type="OOM", message="m", final=False)
    await project(status.db, status.store, retried)
    assert await status.store.exists(keys.train_checkpoint(job_id)), "a retried job resumes from it"
    await project(status.db, status.store, retried.model_copy(update={"event_id": uuid.uuid4(), "final": True}))
    assert (await kit.load_job(status.db, job_id)).status == JobStatus.FAILED
    assert not await status.store.exists(keys.train_checkpoint(job_id))


async def test_a_cancelled_job_drops_the_checkpoint_also_one_written_while_its_trainer_stopped(
    status: Any, kit: Any
) -> None:
    job_id = await training_job(status, kit)
    async with status.db.transaction() as session:  # what the cancel routes do
        job = await repo.lock_job(session, job_id)
        await lifecycle.cancel(session, status.store, job, datetime.now(timezone.utc))
    await project(status.db, status.store, CancelRequested(job_id=job_id))
    assert not await status.store.exists(keys.train_checkpoint(job_id))
    # The trainer saved one more checkpoint before it noticed, then reported that it stopped.
    await status.store.put(keys.train_checkpoint(job_id), b"late weights")
    await project(status.db, status.store, LogLines(job_id=job_id, stage=Stage.TRAIN, lines=("train: cancelled",)))
    assert not await status.store.exists(keys.train_checkpoint(job_id))


async def test_giving_up_on_a_silent_trainer_drops_the_checkpoint(status: Any, kit: Any) -> None:
    job_id = await training_job(status, kit)
    async with status.db.transaction() as session:
        job = await repo.lock_job(session, job_id)
        job.attempt = status.settings.max_attempts
    assert await status.service.recovery.run_once() == 1
    assert (await kit.load_job(status.db, job_id)).status == JobStatus.FAILED
    assert not await status.store.exists(keys.train_checkpoint(job_id))


async def test_a_request_dead_lettered_by_its_worker_queue_fails_the_job_even_before_status_saw_it(
    pg_url: str, amqp_url: str, bus_namespace: str, store: ObjectStore, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bus: Bus = create_bus(amqp_url, namespace=bus_namespace)
    await bus.start()
    try:
        async with kit.running_status(pg_url, bus, store) as running:
            job = await kit.insert_job(running.db, created_at=LONG_AGO, stage="sfm")
            await store.put(keys.train_checkpoint(job.id), b"weights")
            request = sfm_done(job.id)

            async def crash(_event: Any, _delivery: Delivery) -> None:
                raise RuntimeError("the trainer died")

            await bus.consume(topology.TRAINER_WORK, crash)
            # Straight into the trainer's queue: status's own copy is still on its way (it lags).
            async with await aio_pika.connect(amqp_url) as connection:
                channel = await connection.channel()
                await channel.default_exchange.publish(
                    aio_pika.Message(encode(request)), routing_key=qualified(bus_namespace, topology.TRAINER_WORK.name)
                )

            async def failed() -> bool:
                return (await kit.load_job(running.db, job.id)).status == JobStatus.FAILED

            with caplog.at_level(logging.ERROR, logger="photosplat_status"):
                await kit.eventually(failed, timeout=15)
            row = await kit.load_job(running.db, job.id)
            limit = topology.TRAINER_WORK.delivery_limit
            assert row.error_stage == "train"
            assert row.error_message.startswith(f"the train work request was dead-lettered after {limit} deliveries")
            async with running.db.transaction() as session:
                errors = (await session.scalars(select(ErrorLog).where(ErrorLog.job_id == job.id))).all()
            assert [(e.stage, e.error_type, e.final) for e in errors] == [("train", "WorkerCrashed", True)]
            assert any("dead-lettered" in r.getMessage() and str(job.id) in r.getMessage() for r in caplog.records)
            assert not await store.exists(keys.train_checkpoint(job.id))
    finally:
        await bus.close()
