"""What the routes of ingest share: the service's adapters and settings, and the transaction that
admits a new job."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs.db.engine import Database
from photosplat_libs.db.outbox import OutboxRelay
from photosplat_libs.store import ObjectStore

from photosplat_ingest.clients import Client
from photosplat_ingest.idempotency import Idempotent
from photosplat_ingest.intake import Decoder
from photosplat_ingest.quotas import Quotas
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.validation import Limits


@dataclass
class IngestContext:
    settings: IngestSettings
    store: ObjectStore
    db: Database
    relay: OutboxRelay
    decoder: Decoder
    quotas: Quotas

    @property
    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            s.max_file_bytes, s.max_pixels, s.min_side, s.min_files, s.max_files, s.max_request_bytes,
            max_video_bytes=s.max_video_bytes, min_video_seconds=s.min_video_seconds,
            max_video_seconds=s.max_video_seconds, min_video_side=s.min_video_side,
            max_video_pixels=s.max_video_pixels,
        )

    @property
    def idempotency_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.idempotency_ttl_seconds)

    def links(self, job_id: uuid.UUID, pub_key: str | None) -> dict[str, str | None]:
        viewer = self.settings.public_url(f"/v/{pub_key}") if pub_key else None
        return {"status_url": self.settings.public_url(f"/recon/jobs/{job_id}/status"), "viewer_url": viewer}


@dataclass(frozen=True)
class Admission:
    """What the transaction creating a job also records: the charge against the client's limits
    and, for a request with an Idempotency-Key, the response a retry gets."""

    client: Client
    nbytes: int
    retry: Idempotent | None
    response: dict[str, Any]

    @asynccontextmanager
    async def transaction(self, ctx: IngestContext, job_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """The caller adds the job row in the block."""
        async with ctx.quotas.admit(self.client, job_id, self.nbytes) as session:
            yield session
            if self.retry is not None:
                await session.flush()  # the job row before the record that refers to it
                await self.retry.record(session, job_id, 201, self.response, ctx.idempotency_ttl)
