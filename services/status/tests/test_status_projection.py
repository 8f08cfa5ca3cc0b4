"""The projection on SQLite + the embedded bus: state only moves forward, each event applies once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select

from photosplat_libs import keys, topology
from photosplat_libs.bus import Delivery
from photosplat_libs.db import Database
from photosplat_libs.db.job_statistics import CurvePoint, HeldOutScores, JobStatistics, LatestProgress, SfmSummary
from photosplat_libs.db.models import ErrorLog, Job, JobStatus, LogLine, ProcessedEvent
from photosplat_libs.events import (
    HomeView,
    Envelope,
    ExportInfo,
    ImageInfo,
    ImagesValidated,
    JobSubmitted,
    LogLines,
    SfmDone,
    SfmStats,
    SfmTimings,
    Stage,
    StageFailed,
    StageProgress,
    StageStarted,
    TrainingDone,
    TrainingTimings,
)
from photosplat_libs.store import ObjectStore
from photosplat_status import repository as repo
from photosplat_status.projection import project

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pipeline(job_id: uuid.UUID) -> list[Envelope]:
    """One job from submission to the finished scene, as the services publish it."""
    images = tuple(
        ImageInfo(key=keys.image(job_id, i, ".jpg"), name=f"{i}.jpg", width=64, height=48, bytes=1000) for i in range(3)
    )
    return [
        JobSubmitted(job_id=job_id, image_count=3, pub_key_hash="h", occurred_at=at(0)),
        ImagesValidated(job_id=job_id, images=images, occurred_at=at(1)),
        StageStarted(job_id=job_id, stage=Stage.SFM, worker="colmap-1", occurred_at=at(2)),
        StageProgress(job_id=job_id, stage=Stage.SFM, fraction=0.5, eta_seconds=10, occurred_at=at(3)),
        LogLines(job_id=job_id, stage=Stage.SFM, lines=("matching", "mapping"), occurred_at=at(4)),
        SfmDone(
            job_id=job_id,
            sparse_key=keys.sfm(job_id, "sparse.zip"),
            registered_images=3,
            total_images=3,
            points=1200,
            reprojection_error=0.7,
            stats=SFM_STATS,
            occurred_at=at(10),
        ),
        StageStarted(job_id=job_id, stage=Stage.TRAIN, worker="trainer-1", occurred_at=at(11)),
        StageProgress(
            job_id=job_id,
            stage=Stage.TRAIN,
            fraction=0.4,
            eta_seconds=30,
            metrics={"step": 400, "loss": 0.2, "psnr": 21.0},
            occurred_at=at(20),
        ),
        StageProgress(
            job_id=job_id,
            stage=Stage.TRAIN,
            fraction=0.9,
            eta_seconds=5,
            metrics={"step": 900, "loss": 0.1, "psnr": 25.0},
            occurred_at=at(40),
        ),
        TrainingDone(
            job_id=job_id,
            exports=(
                ExportInfo(format="ply", key=keys.output(job_id, "scene.ply"), bytes=3 * 1024 * 1024),
                ExportInfo(format="splat", key=keys.output(job_id, "scene.splat"), bytes=1024 * 1024),
            ),
            gaussian_count=50_000,
            psnr=26.5,
            ssim=0.88,
            timings=TIMINGS,
            home_view=HOME,
            occurred_at=at(50),
        ),
    ]


HOME = HomeView(position=(0, 0, -4), target=(0, 0, 0), up=(0, -1, 0), fov_y_deg=50)
SFM_STATS = SfmStats(
    mean_track_length=3.2,
    timings=SfmTimings(capture=0.5, extraction=4.0, matching=6.0, mapping=9.0, undistortion=1.0),
    warnings=("2 photo(s) look blurry: a.jpg, b.jpg",),
    matcher="exhaustive",
    mapper="incremental",
    attempts=("exhaustive + incremental: 3 of 3",),
)
TIMINGS = TrainingTimings(
    download_seconds=1.0, train_seconds=30.0, train_stage_seconds=34.0, upload_seconds=2.0, total_seconds=37.0
)


def snapshot(job: Job | None) -> dict[str, Any]:
    assert job is not None
    return {column.key: getattr(job, column.key) for column in Job.__table__.columns}


def state(job: Job | None) -> dict[str, Any]:
    """What events change: the snapshot without the job's identity and keys."""
    return {k: v for k, v in snapshot(job).items() if k not in {"id", "owner_hash", "pub_key_hash", "pub_key_sealed"}}


async def count(db: Database, model: Any, job_id: uuid.UUID) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model).where(model.job_id == job_id)) or 0


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    yield database
    await database.dispose()


async def apply(db: Database, store: ObjectStore, *events: Envelope) -> None:
    for event in events:
        await project(db, store, event)


async def test_a_whole_pipeline_is_projected(db: Database, folder_store: ObjectStore, kit: Any) -> None:
    job = await kit.insert_job(db, created_at=at(0))
    events = pipeline(job.id)
    await apply(db, folder_store, *events[:4])
    row = await kit.load_job(db, job.id)
    assert row is not None
    assert (row.status, row.stage, row.progress, row.eta_seconds) == (JobStatus.RUNNING, "sfm", 0.5, 10)
    assert (row.started_at, row.heartbeat_at, row.image_count) == (at(2), at(3), 3)
    # made at at(3): 4 s later, 6 s are left
    assert row.eta_at == at(3) and row.eta_left(at(7)) == 6 and row.eta_left(at(30)) == 0

    await apply(db, folder_store, *events[4:])
    row = await kit.load_job(db, job.id)
    assert row is not None
    assert (row.status, row.stage, row.progress) == (JobStatus.DONE, "export", 1.0)
    assert row.registered_image_count == 3 and row.statistics.sfm is not None and row.statistics.sfm.points == 1200
    assert row.gaussian_count == 50_000
    assert row.file_sizes == {"ply": 3 * 1024 * 1024, "splat": 1024 * 1024}
    assert row.outputs["splat"] == keys.output(job.id, "scene.splat")
    assert row.held_out == HeldOutScores(psnr=26.5, ssim=0.88)
    assert row.statistics.latest == LatestProgress(stage=Stage.TRAIN, step=900, loss=0.1, psnr=25.0)
    assert [p.step for p in row.statistics.curve] == [400, 900]
    assert (row.statistics.home_view, row.statistics.timings, row.statistics.worker) == (HOME, TIMINGS, "trainer-1")
    assert (row.finished_at, row.processing_time_seconds) == (at(50), 48.0)
    assert await count(db, LogLine, job.id) == 2
    assert await count(db, ProcessedEvent, job.id) == len(events)


async def test_a_duplicated_event_changes_nothing(db: Database, folder_store: ObjectStore, kit: Any) -> None:
    job = await kit.insert_job(db, created_at=at(0))
    events = pipeline(job.id)
    once = await kit.insert_job(db, created_at=at(0))
    await apply(db, folder_store, *pipeline(once.id)[:5])
    await apply(db, folder_store, *[e for event in events[:5] for e in (event, event)])
    assert state(await kit.load_job(db, job.id)) == state(await kit.load_job(db, once.id))
    assert await count(db, LogLine, job.id) == 2
    assert await count(db, ProcessedEvent, job.id) == 5

    await apply(db, folder_store, *events[5:])
    done = snapshot(await kit.load_job(db, job.id))
    await apply(db, folder_store, events[-1], events[-2], events[4])
    assert snapshot(await kit.load_job(db, job.id)) == done
    assert await count(db, LogLine, job.id) == 2


async def test_late_events_never_move_a_finished_job_back(db: Database, folder_store: ObjectStore, kit: Any) -> None:
    job = await kit.insert_job(db, created_at=at(0))
    events = pipeline(job.id)
    await apply(db, folder_store, *events)
    done = snapshot(await kit.load_job(db, job.id))
    late = [
        StageProgress(job_id=job.id, stage=Stage.TRAIN, fraction=0.95, occurred_at=at(60)),
        StageStarted(job_id=job.id, stage=Stage.SFM, occurred_at=at(61)),
        StageFailed(job_id=job.id, stage=Stage.TRAIN, error_type="OOM", message="late", occurred_at=at(62)),
    ]
    await apply(db, folder_store, *late)
    assert snapshot(await kit.load_job(db, job.id)) == done
    # the late failure is still on record, as history
    assert await count(db, ErrorLog, job.id) == 1


async def test_reordered_events_never_move_a_stage_or_progress_back(
    db: Database, folder_store: ObjectStore, kit: Any
) -> None:
    job = await kit.insert_job(db, created_at=at(0))
    train_started = StageStarted(job_id=job.id, stage=Stage.TRAIN, occurred_at=at(11))
    sfm_started = StageStarted(job_id=job.id, stage=Stage.SFM, occurred_at=at(2))
    sfm_progress = StageProgress(job_id=job.id, stage=Stage.SFM, fraction=0.9, occurred_at=at(5))
    await apply(db, folder_store, train_started, sfm_started, sfm_progress)
    row = await kit.load_job(db, job.id)
    assert row is not None
    assert (row.stage, row.progress, row.heartbeat_at) == ("train", 0.0, at(11))
    assert (row.eta_seconds, row.eta_at) == (None, None), "a new stage has no estimate yet"

    ahead = StageProgress(job_id=job.id, stage=Stage.TRAIN, fraction=0.6, eta_seconds=40, occurred_at=at(30))
    behind = StageProgress(job_id=job.id, stage=Stage.TRAIN, fraction=0.3, eta_seconds=70, occurred_at=at(20))
    await apply(db, folder_store, ahead, behind)
    row = await kit.load_job(db, job.id)
    assert row is not None
    assert (row.progress, row.eta_seconds, row.eta_at, row.heartbeat_at) == (0.6, 40, at(30), at(30))


async def test_a_later_attempt_restarts_progress_an_older_one_cannot(
    db: Database, folder_store: ObjectStore, kit: Any
) -> None:
    job = await kit.insert_job(db, created_at=at(0), stage="train", status=JobStatus.RUNNING)
    first = StageProgress(job_id=job.id, stage=Stage.TRAIN, fraction=0.7, occurred_at=at(10))
    retry = StageProgress(job_id=job.id, stage=Stage.TRAIN, fraction=0.2, attempt=2, occurred_at=at(20))
    zombie = StageProgress(job_id=job.id, stage=Stage.TRAIN, fraction=0.8, attempt=1, occurred_at=at(21))
    await apply(db, folder_store, first, retry, zombie)
    row = await kit.load_job(db, job.id)
    assert row is not None and row.progress == 0.2


async def test_events_of_a_deleted_job_never_recreate_it(db: Database, folder_store: ObjectStore, kit: Any) -> None:
    job_id = uuid.uuid4()
    late_object = keys.output(job_id, "scene.ply")
    await folder_store.put(late_object, b"written by a worker after the delete")
    await apply(db, folder_store, *pipeline(job_id))
    assert await kit.load_job(db, job_id) is None
    assert not await folder_store.exists(late_object)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedEvent)) == 0


async def test_a_failure_that_will_be_retried_leaves_the_job_running(
    db: Database, folder_store: ObjectStore, kit: Any
) -> None:
    job = await kit.insert_job(db, created_at=at(0))
    await apply(
        db,
        folder_store,
        StageStarted(job_id=job.id, stage=Stage.SFM, occurred_at=at(1)),
        StageFailed(
            job_id=job.id, stage=Stage.SFM, error_type="Timeout", message="retrying", final=False, occurred_at=at(2)
        ),
    )
    row = await kit.load_job(db, job.id)
    assert row is not None and row.status == JobStatus.RUNNING and row.error_message is None

    final = StageFailed(
        job_id=job.id,
        stage=Stage.SFM,
        error_type="NotEnoughImages",
        message="only 2 of 30 images could be registered",
        traceback="Traceback ...",
        attempt=2,
        occurred_at=at(5),
    )
    await apply(db, folder_store, final, StageProgress(job_id=job.id, stage=Stage.SFM, fraction=1, occurred_at=at(6)))
    row = await kit.load_job(db, job.id)
    assert row is not None
    assert (row.status, row.error_stage, row.error_message) == (
        JobStatus.FAILED,
        "sfm",
        "only 2 of 30 images could be registered",
    )
    assert (row.finished_at, row.processing_time_seconds) == (at(5), 4.0)
    async with db.transaction() as session:
        errors = (await session.scalars(select(ErrorLog).order_by(ErrorLog.id))).all()
        assert [(e.error_type, e.final, e.attempt) for e in errors] == [
            ("Timeout", False, 1),
            ("NotEnoughImages", True, 2),
        ]
        assert errors[1].traceback == "Traceback ..."
        lines = (await session.scalars(select(LogLine.line).order_by(LogLine.id))).all()
        assert lines == [
            "sfm failed (attempt 1, will retry): retrying",
            "sfm failed (attempt 2): only 2 of 30 images could be registered",
        ]


async def test_the_training_curve_stays_bounded(db: Database, folder_store: ObjectStore, kit: Any) -> None:
    job = await kit.insert_job(db, created_at=at(0), stage="train", status=JobStatus.RUNNING)
    steps = range(0, 10_000, 10)
    await apply(
        db,
        folder_store,
        *[
            StageProgress(
                job_id=job.id, stage=Stage.TRAIN, fraction=s / 10_000, metrics={"step": s, "loss": 1 / (s + 1)}
            )
            for s in steps
        ],
    )
    row = await kit.load_job(db, job.id)
    assert row is not None
    curve = row.statistics.curve
    assert len(curve) <= 400
    assert curve[0].step == 0 and curve[-1].step == 9990
    assert [p.step for p in curve] == sorted(p.step for p in curve)


async def test_the_statistics_are_stored_and_read_back_typed(
    either_database: str, folder_store: ObjectStore, kit: Any
) -> None:
    """On SQLite and Postgres: the read model a pipeline leaves is the one read back, through the
    row, the status answer's stored JSON and the totals' JSON paths."""
    database = Database(either_database)
    try:
        job = await kit.insert_job(database, created_at=at(0))
        await apply(database, folder_store, *pipeline(job.id))
        row = await kit.load_job(database, job.id)
        assert row is not None
        expected = JobStatistics(
            worker="trainer-1",
            latest=LatestProgress(stage=Stage.TRAIN, step=900, loss=0.1, psnr=25.0),
            curve=(CurvePoint(step=400, loss=0.2, psnr=21.0), CurvePoint(step=900, loss=0.1, psnr=25.0)),
            sfm=SfmSummary(registered_images=3, total_images=3, points=1200, reprojection_error=0.7, **dict(SFM_STATS)),
            timings=TIMINGS,
            home_view=HOME,
        )
        assert (row.statistics, row.progress_attempt) == (expected, 1)
        assert row.held_out == HeldOutScores(psnr=26.5, ssim=0.88)
        async with database.transaction() as session:
            stored = await repo.status_row(session, job.id)
            timings = await repo.all_job_timings(session)
        assert stored is not None and JobStatistics.model_validate_json(stored.statistics_json) == expected
        assert timings == [(SFM_STATS.timings, TIMINGS)]
    finally:
        await database.dispose()


async def test_events_travel_through_the_embedded_bus(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db, created_at=at(0))
    events = pipeline(job.id)
    for event in events + events[3:6]:
        await embedded.bus.publish(event)

    async def done() -> bool:
        return await count(embedded.db, ProcessedEvent, job.id) == len(events)

    await kit.eventually(done)
    row = await kit.load_job(embedded.db, job.id)
    assert row is not None and row.status == JobStatus.DONE
    assert await count(embedded.db, LogLine, job.id) == 2


async def test_a_work_request_its_worker_keeps_crashing_on_fails_the_job(embedded: Any, kit: Any) -> None:
    job = await kit.insert_job(embedded.db)
    request = pipeline(job.id)[1]
    await embedded.bus.publish(request)

    async def projected() -> bool:
        return await count(embedded.db, ProcessedEvent, job.id) == 1

    await kit.eventually(projected)

    async def crash(_event: Envelope, _delivery: Delivery) -> None:
        raise RuntimeError("segfault in the SfM library")

    await embedded.bus.consume(topology.COLMAP_WORK, crash)

    async def failed() -> bool:
        row = await kit.load_job(embedded.db, job.id)
        return row is not None and row.status == JobStatus.FAILED

    await kit.eventually(failed)
    row = await kit.load_job(embedded.db, job.id)
    assert row is not None and row.error_stage == "sfm"
    assert row.error_message == (
        "the sfm work request was dead-lettered after 3 deliveries: its worker stopped on each without getting further"
    )
