"""Rate limits on creating jobs, per client and for everyone together: new jobs per hour, unfinished
jobs, bytes uploaded per day. Everything is counted in the database (a charge per job created, kept a
day), so several ingest replicas enforce one limit; the check that decides runs under a lock in the
transaction that creates the job."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from fastapi import HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.engine import Database

from photosplat_ingest import repository
from photosplat_ingest.clients import Client
from photosplat_ingest.settings import IngestSettings

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Postgres advisory lock held while a job is admitted: the check and the charge of one request
# are not interleaved with another's, on any replica.
ADMISSION_LOCK = 74022


class Kind(StrEnum):
    JOBS_PER_HOUR = "jobs_per_hour"
    UNFINISHED_JOBS = "unfinished_jobs"
    UPLOAD_BYTES_PER_DAY = "upload_bytes_per_day"


@dataclass(frozen=True)
class Limit:
    scope: str  # "client" or "global"
    kind: Kind
    maximum: int

    @property
    def name(self) -> str:
        """The setting that sets it, without the env prefix."""
        return f"{self.scope}_{self.kind}"

    def describe(self) -> str:
        who = "per client" if self.scope == "client" else "for all clients together"
        if self.kind is Kind.JOBS_PER_HOUR:
            return f"at most {self.maximum} new jobs per hour {who}"
        if self.kind is Kind.UNFINISHED_JOBS:
            return f"at most {self.maximum} unfinished jobs {who}"
        return f"at most {_size(self.maximum)} of photos per day {who}"


class QuotaExceeded(Exception):
    """``retry_after`` None: waiting does not help (the request alone is over the limit)."""

    def __init__(self, limit: Limit, used: int, message: str, retry_after: int | None, resets_at: datetime | None):
        super().__init__(message)
        self.limit, self.used, self.message = limit, used, message
        self.retry_after, self.resets_at = retry_after, resets_at

    def http(self) -> HTTPException:
        detail: dict[str, Any] = {
            "message": self.message,
            "limit": self.limit.name,
            "scope": self.limit.scope,
            "maximum": self.limit.maximum,
            "used": self.used,
            "retry_after_seconds": self.retry_after,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
        }
        if self.retry_after is None:
            return HTTPException(413, detail=detail)
        return HTTPException(429, detail=detail, headers={"Retry-After": str(self.retry_after)})


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


class Quotas:
    def __init__(self, settings: IngestSettings, db: Database) -> None:
        self._db = db
        self._upload_window = timedelta(seconds=settings.upload_ttl_seconds)
        self._unfinished_retry_after = settings.unfinished_retry_after_seconds
        candidates = [
            Limit(scope, kind, getattr(settings, f"{scope}_{kind}")) for scope in ("client", "global") for kind in Kind
        ]
        self.limits = [limit for limit in candidates if limit.maximum > 0]

    async def precheck(self, client: Client, nbytes: int) -> None:
        """Refuse early, before a request's photos are read; :meth:`admit` decides."""
        if client.limited and self.limits:
            async with self._db.transaction() as session:
                await self._check(session, client, nbytes, datetime.now(timezone.utc))

    @asynccontextmanager
    async def admit(self, client: Client, job_id: uuid.UUID, nbytes: int) -> AsyncIterator[AsyncSession]:
        """The transaction that creates job ``job_id`` (the caller adds its row): raises
        :class:`QuotaExceeded` if the client may not, else charges the job as the block ends."""
        now = datetime.now(timezone.utc)
        async with self._db.transaction() as session:
            if client.limited or self._db.is_sqlite:
                await self._serialise(session, now)
            if client.limited:
                await self._check(session, client, nbytes, now)
            yield session
            await session.flush()  # the job row before the charge that refers to it
            repository.add_charge(session, client.id, job_id, nbytes, now)

    async def _serialise(self, session: AsyncSession, now: datetime) -> None:
        """Admissions one at a time, on every replica, and old charges pruned meanwhile. On SQLite
        the prune, a write, takes the database's write lock: that serialises them there. (Unlimited
        clients on Postgres do neither: concurrent prunes outside the lock could deadlock.)"""
        if not self._db.is_sqlite:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADMISSION_LOCK})
        await repository.prune_charges(session, now - DAY)

    async def _check(self, session: AsyncSession, client: Client, nbytes: int, now: datetime) -> None:
        for scope, who in (("client", client.id), ("global", None)):
            limits = [limit for limit in self.limits if limit.scope == scope]
            if not limits:
                continue
            used = await repository.usage(session, who, jobs_since=now - HOUR, bytes_since=now - DAY)
            for limit in limits:
                if limit.kind is Kind.UNFINISHED_JOBS:
                    await self._check_unfinished(session, limit, who, now)
                elif limit.kind is Kind.JOBS_PER_HOUR and used.jobs >= limit.maximum:
                    raise await self._jobs_exceeded(session, limit, who, now)
                elif limit.kind is Kind.UPLOAD_BYTES_PER_DAY and used.upload_bytes + nbytes > limit.maximum:
                    raise await self._bytes_exceeded(session, limit, who, used.upload_bytes, nbytes, now)

    async def _check_unfinished(self, session: AsyncSession, limit: Limit, who: str | None, now: datetime) -> None:
        count = await repository.unfinished_jobs(session, who, now - self._upload_window)
        if count >= limit.maximum:
            message = f"{limit.describe()}: {count} are queued or running; try again when one has ended"
            raise QuotaExceeded(limit, count, message, self._unfinished_retry_after, None)

    async def _jobs_exceeded(
        self, session: AsyncSession, limit: Limit, who: str | None, now: datetime
    ) -> QuotaExceeded:
        times = [at for at, _ in await repository.charges_since(session, who, now - HOUR)]
        # The window holds one job fewer than the maximum once this one has left it.
        frees_at = times[max(0, len(times) - limit.maximum)] + HOUR if times else now
        wait = _seconds_until(frees_at, now)
        message = f"{limit.describe()}: the next one can start in {wait} s"
        return QuotaExceeded(limit, len(times), message, wait, frees_at)

    async def _bytes_exceeded(
        self, session: AsyncSession, limit: Limit, who: str | None, used: int, nbytes: int, now: datetime
    ) -> QuotaExceeded:
        asked = f"{_size(used)} used, this request {_size(nbytes)}"
        if nbytes > limit.maximum:
            message = f"{limit.describe()}: this request alone is larger ({_size(nbytes)}); send fewer photos"
            return QuotaExceeded(limit, used, message, None, None)
        excess, freed, frees_at = used + nbytes - limit.maximum, 0, now + DAY
        for at, charged in await repository.charges_since(session, who, now - DAY):
            freed += charged
            if freed >= excess:
                frees_at = at + DAY
                break
        wait = _seconds_until(frees_at, now)
        return QuotaExceeded(limit, used, f"{limit.describe()} ({asked}): room again in {wait} s", wait, frees_at)
