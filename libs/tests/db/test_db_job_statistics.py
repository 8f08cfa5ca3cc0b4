"""The job's statistics as typed JSON columns, and migration 0004 that converts the free dicts of
older rows, on SQLite and Postgres."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from pydantic import ValidationError

from photosplat_libs.db import Database
from photosplat_libs.db.engine import MIGRATIONS
from photosplat_libs.db.job_statistics import CurvePoint, HeldOutScores, JobStatistics, LatestProgress
from photosplat_libs.db.models import Job, LogLine
from photosplat_libs.events import HomeView, SfmTimings, Stage, TrainingTimings

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
OLD_JOBS = sa.table(
    "jobs",
    *(sa.column(name) for name in ("owner_hash", "pub_key_hash", "pub_key_sealed", "status", "stage")),
    *(sa.column(name) for name in ("progress", "image_count", "attempt")),
    sa.column("id", sa.Uuid()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    *(sa.column(name, sa.JSON()) for name in ("file_sizes", "outputs", "metrics", "stats", "options", "uploads")),
)
# A finished job as status projected it before the statistics were typed.
FINISHED = (
    {"psnr": 27.5, "ssim": 0.91, "latest": {"stage": "train", "step": 900.0, "loss": 0.1, "psnr": 25.0}},
    {
        "progress_attempt": 2,
        "worker": "trainer-1",
        "curve": [{"step": 400, "loss": 0.2, "psnr": 21.0}, {"step": 900, "loss": 0.1, "psnr": None}],
        "sfm": {
            "registered_images": 11,
            "total_images": 12,
            "points": 900,
            "reprojection_error": 0.7,
            "mean_track_length": 3.2,
            "timings": {"extraction": 10.0, "matching": 20.0},
            "blurry_removed": 1,
            "warnings": ["3 photos are blurry"],
            "matcher": "exhaustive",
            "mapper": "incremental",
            "attempts": ["exhaustive + incremental: 11 of 12"],
        },
        "timings": {
            "download_seconds": 1.0,
            "train_seconds": 600.0,
            "train_stage_seconds": 640.0,
            "upload_seconds": 3.0,
            "total_seconds": 644.0,
            "gpu_seconds": 600.0,
        },
        "thumbnail_key": "jobs/x/output/thumbnail.png",
        "home_view": {"position": [0, 0, -4], "target": [0, 0, 0], "up": [0, -1, 0], "fov_y_deg": 50},
    },
)
# Keys no producer wrote (hand-made rows, the "train" key of an old test): dropped, never guessed.
ODD = (
    {"psnr": "n/a", "latest": {"stage": "nowhere", "step": 1}},
    {"timings": {"train": 30.0}, "sfm": {"points": 5}, "curve": [{"loss": 1.0}], "empty": {}, "flag": True},
)


def alembic(db: Database, action: str, revision: str) -> Coroutine[Any, Any, None]:
    def run(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async def go() -> None:
        async with db.engine.begin() as connection:
            await connection.run_sync(run)

    return go()


@pytest.fixture(params=["sqlite_url", "pg_url"])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def insert_old(db: Database, metrics: dict[str, Any], stats: dict[str, Any]) -> uuid.UUID:
    job_id = uuid.uuid4()
    async with db.transaction() as session:
        await session.execute(
            OLD_JOBS.insert().values(
                id=job_id, owner_hash="o", pub_key_hash=job_id.hex, pub_key_sealed="", status="DONE", stage="export",
                progress=1.0, image_count=12, attempt=2, created_at=NOW, file_sizes={}, outputs={},
                metrics=metrics, stats=stats, options={}, uploads=[],
            )  # fmt: skip
        )
        session.add(LogLine(job_id=job_id, stage="train", line="kept", created_at=NOW))
    return job_id


async def test_migration_0004_converts_the_dicts_of_older_rows(db: Database) -> None:
    await alembic(db, "downgrade", "0003")
    finished = await insert_old(db, *FINISHED)
    odd = await insert_old(db, *ODD)
    empty = await insert_old(db, {}, {})
    await alembic(db, "upgrade", "head")

    async with db.transaction() as session:
        rows = {job.id: job for job in (await session.scalars(sa.select(Job))).all()}
        lines = (await session.scalars(sa.select(sa.func.count()).select_from(LogLine))).one()
    assert lines == 3, "renaming the columns must not copy (and cascade-delete under) the jobs table"
    done = rows[finished]
    assert done.held_out == HeldOutScores(psnr=27.5, ssim=0.91) and done.progress_attempt == 2
    stats = done.statistics
    assert (stats.worker, stats.thumbnail_key) == ("trainer-1", "jobs/x/output/thumbnail.png")
    assert stats.latest == LatestProgress(stage=Stage.TRAIN, step=900, loss=0.1, psnr=25.0)
    assert stats.curve == (CurvePoint(step=400, loss=0.2, psnr=21.0), CurvePoint(step=900, loss=0.1))
    assert stats.sfm is not None and stats.sfm.points == 900 and stats.sfm.warnings == ("3 photos are blurry",)
    assert stats.sfm.timings == SfmTimings(extraction=10.0, matching=20.0)
    assert stats.timings is not None and stats.timings.gpu_seconds == 600.0
    assert stats.home_view == HomeView(position=(0, 0, -4), target=(0, 0, 0), up=(0, -1, 0), fov_y_deg=50)
    for job_id in (odd, empty):
        assert (rows[job_id].statistics, rows[job_id].held_out, rows[job_id].progress_attempt) == (
            JobStatistics(),
            HeldOutScores(),
            1,
        )

    # and back: the dicts the code before 0004 read
    await alembic(db, "downgrade", "0003")
    async with db.transaction() as session:
        metrics, stats_dict = (
            await session.execute(sa.select(OLD_JOBS.c.metrics, OLD_JOBS.c.stats).where(OLD_JOBS.c.id == finished))
        ).one()
    assert metrics["psnr"] == 27.5 and metrics["latest"]["step"] == 900
    assert stats_dict["progress_attempt"] == 2 and stats_dict["timings"]["train_seconds"] == 600.0
    await alembic(db, "upgrade", "head")


async def test_only_the_model_is_stored_and_it_is_read_back_typed(db: Database) -> None:
    timings = TrainingTimings(
        download_seconds=1, train_seconds=2, train_stage_seconds=3, upload_seconds=4, total_seconds=10
    )
    job_id = uuid.uuid4()
    async with db.transaction() as session:
        session.add(Job(id=job_id, owner_hash="o", pub_key_hash="p", created_at=NOW))
    async with db.transaction() as session:
        job = await session.get(Job, job_id)
        assert job is not None and job.statistics == JobStatistics() and job.held_out == HeldOutScores()
        job.statistics = job.statistics.replaced(timings=timings)
    async with db.transaction() as session:
        job = await session.get(Job, job_id)
        assert job is not None and job.statistics.timings == timings

    with pytest.raises(sa.exc.StatementError, match="JobStatistics is stored here, not dict"):
        async with db.transaction() as session:
            job = await session.get(Job, job_id)
            assert job is not None
            job.statistics = {"timings": {"train": 30.0}}  # type: ignore[assignment]


def test_a_misspelt_field_is_refused_where_it_is_written() -> None:
    with pytest.raises(ValidationError, match="thumbnail"):
        JobStatistics().replaced(thumbnial_key="jobs/x/output/thumbnail.png")
    with pytest.raises(ValidationError):
        HeldOutScores.model_validate({"psnr": 27.0, "PSNR": 27.0})
