"""Queries of the ingest service on the shared ``jobs`` table."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.events import Stage


def add_job(session: AsyncSession, job: Job) -> None:
    session.add(job)


async def get_job(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id)


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
