"""Queries of the ingest service on the shared ``jobs`` table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Text, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.events import Stage


def add_job(session: AsyncSession, job: Job) -> None:
    session.add(job)


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


async def owner_known(session: AsyncSession, owner_hash: str) -> bool:
    """Whether a job belongs to this token hash: the tokens this service issued and still in use."""
    found = await session.scalar(select(Job.id).where(Job.owner_hash == owner_hash).limit(1))
    return found is not None


async def mark_uploaded(session: AsyncSession, job_id: uuid.UUID, image_count: int) -> bool:
    """Move a presigned-upload job on to SfM; False when it already left the upload stage (a
    concurrent submit won, or the job was cancelled meanwhile)."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.stage == Stage.UPLOAD.value, Job.status == JobStatus.PENDING.value)
        .values(stage=Stage.SFM.value, image_count=image_count)
    )
    # An UPDATE yields a cursor result, which is what carries the row count.
    return cast("CursorResult[Any]", result).rowcount == 1


async def uploads_to_sweep(
    session: AsyncSession, *, urls_expired_before: datetime, window_closed_before: datetime, limit: int = 200
) -> Sequence[uuid.UUID]:
    """Presigned-upload jobs whose uploads nothing can use any more: every URL has expired and the
    job left its upload stage (submitted, cancelled), or its upload window closed unsubmitted."""
    query = (
        select(Job.id)
        .where(
            # A swept job's list is emptied (forget_uploads): each job is visited once. JSON has no
            # equality in Postgres, its text has.
            Job.uploads.cast(Text) != "[]",
            Job.created_at < urls_expired_before,
            or_(
                Job.stage != Stage.UPLOAD.value,
                Job.status != JobStatus.PENDING.value,
                Job.created_at < window_closed_before,
            ),
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def forget_uploads(session: AsyncSession, job_id: uuid.UUID) -> None:
    await session.execute(update(Job).where(Job.id == job_id).values(uploads=[]))
