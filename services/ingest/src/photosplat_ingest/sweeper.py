"""Sweeping presigned uploads nothing will use: a URL stays valid until it expires, so a client can
PUT again after its submit, and a client may never submit at all. Neither leaves data behind for
longer than the URL lifetime (submitted) or the upload window (never submitted). The same loop
purges expired idempotency keys."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta, timezone

from photosplat_libs import keys
from photosplat_libs.db.engine import Database
from photosplat_libs.store import ObjectStore

from photosplat_ingest import repository
from photosplat_ingest.settings import IngestSettings

log = logging.getLogger(__name__)

# The store checks a URL's expiry on its own clock, and a PUT that started just before the expiry
# may still be streaming: sweep a little after.
EXPIRY_GRACE = timedelta(minutes=5)


def incoming_prefix(job_id: uuid.UUID) -> str:
    """Where the presigned uploads of a job land (the folder of :func:`keys.incoming`)."""
    return keys.incoming(job_id, 0, "").rpartition("/")[0] + "/"


async def sweep_uploads(settings: IngestSettings, db: Database, store: ObjectStore, now: datetime) -> int:
    """One pass; returns how many jobs' uploads it removed."""
    async with db.transaction() as session:
        due = await repository.uploads_to_sweep(
            session,
            urls_expired_before=now - timedelta(seconds=settings.upload_url_ttl_seconds) - EXPIRY_GRACE,
            window_closed_before=now - timedelta(seconds=settings.upload_ttl_seconds),
        )
    for job_id in due:
        removed = await store.delete_prefix(incoming_prefix(job_id))
        # Only once the objects are gone: a pass that fails in between tries the job again.
        async with db.transaction() as session:
            await repository.forget_uploads(session, job_id)
        if removed:
            log.info("job %s: swept %d upload(s) nothing will read", job_id, removed)
    return len(due)


async def purge_idempotency_keys(db: Database, now: datetime) -> int:
    """Expired keys are already ignored; this only keeps the table small."""
    async with db.transaction() as session:
        return await repository.purge_idempotency_records(session, now)


class UploadSweeper:
    def __init__(self, settings: IngestSettings, db: Database, store: ObjectStore) -> None:
        self._settings, self._db, self._store = settings, db, store
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ingest-upload-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                now = datetime.now(timezone.utc)
                await sweep_uploads(self._settings, self._db, self._store, now)
                await purge_idempotency_keys(self._db, now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("upload sweep failed, will retry")
            await asyncio.sleep(self._settings.upload_sweep_interval_seconds)
