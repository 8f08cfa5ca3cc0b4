"""Queries of the ingest service: the shared ``jobs`` table, and its own quota charges,
idempotency keys and API keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Text, and_, case, delete, func, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.models import TERMINAL, ApiKey, IdempotencyKey, Job, JobStatus, QuotaCharge
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


# Rate limits


@dataclass(frozen=True)
class Usage:
    jobs: int
    upload_bytes: int


def add_charge(session: AsyncSession, client: str, job_id: uuid.UUID, nbytes: int, now: datetime) -> None:
    session.add(QuotaCharge(client=client, job_id=job_id, bytes=nbytes, created_at=now))


async def prune_charges(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(QuotaCharge).where(QuotaCharge.created_at < before))


async def usage(session: AsyncSession, client: str | None, *, jobs_since: datetime, bytes_since: datetime) -> Usage:
    """Jobs charged since ``jobs_since`` and bytes since ``bytes_since``, of one client or (None) of
    everyone."""
    query = select(
        func.coalesce(func.sum(case((QuotaCharge.created_at > jobs_since, 1), else_=0)), 0),
        func.coalesce(func.sum(case((QuotaCharge.created_at > bytes_since, QuotaCharge.bytes), else_=0)), 0),
    ).where(QuotaCharge.created_at > min(jobs_since, bytes_since))
    if client is not None:
        query = query.where(QuotaCharge.client == client)
    jobs, nbytes = (await session.execute(query)).one()
    return Usage(int(jobs), int(nbytes))


async def charges_since(session: AsyncSession, client: str | None, since: datetime) -> list[tuple[datetime, int]]:
    """(time, bytes) of each charge since ``since``, oldest first: when a window frees up."""
    query = select(QuotaCharge.created_at, QuotaCharge.bytes).where(QuotaCharge.created_at > since)
    if client is not None:
        query = query.where(QuotaCharge.client == client)
    return [(at, nbytes) for at, nbytes in (await session.execute(query.order_by(QuotaCharge.created_at))).all()]


async def unfinished_jobs(session: AsyncSession, client: str | None, upload_window_closed_before: datetime) -> int:
    """Jobs not yet ended, of one client (through its charges) or of everyone. A declared upload
    never submitted stops counting when its window closes (it can no longer start); a job still
    unfinished after a day stops counting for its client, whose charge is pruned then."""
    query = select(func.count(Job.id)).where(
        Job.status.not_in([s.value for s in TERMINAL]),
        not_(and_(Job.stage == Stage.UPLOAD.value, Job.created_at < upload_window_closed_before)),
    )
    if client is not None:
        query = query.join(QuotaCharge, QuotaCharge.job_id == Job.id).where(QuotaCharge.client == client)
    return int(await session.scalar(query) or 0)


# Idempotency keys


async def idempotency_record(session: AsyncSession, client: str, key_hash: str, now: datetime) -> IdempotencyKey | None:
    found = await session.get(IdempotencyKey, (client, key_hash))
    return found if found is not None and found.expires_at > now else None


async def add_idempotency_record(session: AsyncSession, record: IdempotencyKey) -> None:
    """Adds ``record``; an expired one of the same client and key (not yet purged) makes way."""
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.client == record.client,
            IdempotencyKey.key_hash == record.key_hash,
            IdempotencyKey.expires_at <= record.created_at,
        )
    )
    session.add(record)


async def purge_idempotency_records(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now))
    return cast("CursorResult[Any]", result).rowcount


# API keys


async def api_key_active(session: AsyncSession, key_hash: str) -> bool:
    found = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))
    return found is not None


async def active_api_key(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))


def add_api_key(session: AsyncSession, key: ApiKey) -> None:
    session.add(key)


async def api_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()


async def revoke_api_key(session: AsyncSession, key_id: int, now: datetime) -> bool:
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    return cast("CursorResult[Any]", result).rowcount == 1
