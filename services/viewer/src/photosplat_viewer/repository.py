"""Queries of the viewer. It only reads: status owns every job row."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import security
from photosplat_libs.db.models import Job


async def job_by_pub_key(session: AsyncSession, pub_key: str) -> Job | None:
    """The job whose public key this is, or None. A malformed key never reaches the database, and a
    deleted job has no row, so both read as unknown."""
    if not security.looks_like_token(pub_key):
        return None
    result = await session.execute(select(Job).where(Job.pub_key_hash == security.hash_token(pub_key)))
    return result.scalar_one_or_none()
