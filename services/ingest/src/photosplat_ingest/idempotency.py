"""``Idempotency-Key`` on the requests that create or start a job: a retry with the same key from the
same client gets the first response again (status and body) instead of a second job; the same key
with another request is refused with 422. The record is written in the transaction that creates
the job, unique per client and key, so replicas agree and of two concurrent requests one wins; the
other returns the winner's response."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from cryptography.fernet import Fernet
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile

from photosplat_libs.db.engine import Database
from photosplat_libs.db.models import IdempotencyKey
from photosplat_libs.security import same

from photosplat_ingest import repository
from photosplat_ingest.clients import Client

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as Stripe takes it
_CHUNK = 1024 * 1024


@dataclass
class Idempotent:
    """One request's key; ``fingerprint`` is what it asks for, known once its body is read."""

    client: str
    key: str
    fingerprint: str = ""

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()

    def _fernet(self) -> Fernet:
        # The response holds the owner token: it is kept encrypted with a key only the client
        # knows (its Idempotency-Key), like the sealed public key.
        secret = hashlib.sha256(f"photosplat-idempotency:{self.client}:{self.key}".encode()).digest()
        return Fernet(base64.urlsafe_b64encode(secret))

    async def find(self, db: Database) -> IdempotencyKey | None:
        async with db.transaction() as session:
            return await repository.idempotency_record(session, self.client, self.key_hash, datetime.now(timezone.utc))

    def replay(self, record: IdempotencyKey) -> Response:
        if not same(record.request_hash, self.fingerprint):
            raise HTTPException(
                422,
                f"this {HEADER} was already used for a different request (another body or endpoint): "
                "use a new key for a new request",
            )
        body = json.loads(self._fernet().decrypt(record.response_sealed.encode()))
        return JSONResponse(body, status_code=record.status_code, headers={REPLAYED_HEADER: "true"})

    async def record(
        self, session: AsyncSession, job_id: uuid.UUID, status_code: int, body: dict[str, Any], ttl: timedelta
    ) -> None:
        """Keep the response in ``session``, the transaction that creates (or starts) the job."""
        now = datetime.now(timezone.utc)
        sealed = self._fernet().encrypt(json.dumps(body).encode()).decode()
        await repository.add_idempotency_record(
            session,
            IdempotencyKey(
                client=self.client,
                key_hash=self.key_hash,
                request_hash=self.fingerprint,
                job_id=job_id,
                status_code=status_code,
                response_sealed=sealed,
                created_at=now,
                expires_at=now + ttl,
            ),
        )


def parse(value: str | None, client: Client) -> Idempotent | None:
    """The request's key (its Idempotency-Key header), scoped to its client."""
    if value is None:
        return None
    if not _KEY.match(value):
        raise HTTPException(400, f"{HEADER} must be 1 to 255 visible ASCII characters (a random UUID is a good key)")
    return Idempotent(client.id, value)


def fingerprint(request: Request, *parts: object) -> str:
    canonical = json.dumps([request.method, request.url.path, *parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def form_fingerprint(request: Request, form: FormData) -> str:
    """A multipart body by its fields and file contents, not its bytes: a client that retries picks
    a new boundary."""
    parts: list[list[str | None]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            parts.append([name, value.filename, await asyncio.to_thread(_digest, value.file)])
        else:
            parts.append([name, value])
    return fingerprint(request, parts)


def _digest(file: IO[bytes]) -> str:
    file.seek(0)
    digest = hashlib.sha256()
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    file.seek(0)  # read again when the photos are checked
    return digest.hexdigest()


async def guarded(db: Database, request: Idempotent | None, work: Awaitable[Response]) -> Response:
    """``work``, or the response of the same request that won a race with it: the loser fails in
    its own way (a duplicate key, a job already submitted, uploads already moved) and then finds
    the winner's record."""
    try:
        return await work
    except Exception:
        if request is not None and request.fingerprint:
            if (winner := await request.find(db)) is not None:
                return request.replay(winner)
        raise
