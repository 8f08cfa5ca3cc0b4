"""HTTP edge of ingest: parses requests, owns the database session, maps failures to 4xx.

- ``POST /recon/jobs``: multipart photos in, a validated job out (201);
- ``POST /recon/uploads``: declare files, get presigned PUT URLs (201);
- ``POST /recon/jobs/{job_id}/submit``: validate what was uploaded and start the job (200).

Creating a job is rate limited per client and globally (429 with Retry-After, see quotas.py); all
three take an ``Idempotency-Key`` (idempotency.py).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from photosplat_libs import keys
from photosplat_libs.db.engine import Database
from photosplat_libs.db.outbox import OutboxRelay, add_to_outbox
from photosplat_libs.events import PRESET_NAMES, ImageInfo, JobOptions, Stage
from photosplat_libs.media import PHOTO_TYPES
from photosplat_libs.security import hash_token, looks_like_token, new_token, same, unseal_pub_key
from photosplat_libs.store import ObjectNotFound, ObjectStore

from photosplat_ingest import idempotency, repository
from photosplat_ingest.clients import Client, identify
from photosplat_ingest.idempotency import Idempotent
from photosplat_ingest.intake import Decoder, Intake, delete_quietly, store_images
from photosplat_ingest.jobs import NewJob, parse_options, submission_events
from photosplat_ingest.quotas import QuotaExceeded, Quotas
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.validation import (
    FileError,
    Limits,
    Rule,
    ValidationFailed,
    check_count,
    check_declared,
    check_poses,
    check_uploaded_size,
    request_too_large,
    display_name,
    extension,
)

log = logging.getLogger(__name__)



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
        return Limits(s.max_file_bytes, s.max_pixels, s.min_side, s.min_files, s.max_files, s.max_request_bytes)

    @property
    def idempotency_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.idempotency_ttl_seconds)

    def links(self, job_id: uuid.UUID, pub_key: str | None) -> dict[str, str | None]:
        viewer = self.settings.public_url(f"/v/{pub_key}") if pub_key else None
        return {"status_url": self.settings.public_url(f"/recon/jobs/{job_id}/status"), "viewer_url": viewer}


class DeclaredFile(BaseModel):
    name: str = Field(max_length=1000)
    size: int = Field(ge=0)
    content_type: str = ""


class UploadRequest(BaseModel):
    files: list[DeclaredFile] = Field(default_factory=list)
    original_resolution: bool = False
    preset: str = "standard"


def _bearer(request: Request) -> str | None:
    """The value of a Bearer Authorization header; other schemes (a proxy's Basic credentials) are
    not ours and count as none."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def bearer_token(request: Request) -> str | None:
    value = _bearer(request)
    return value if value is not None and looks_like_token(value) else None


async def owner_token(ctx: IngestContext, request: Request) -> str:
    """The token a new job is filed under. Only the server mints tokens (256 bits): a client may
    present one it was given with an earlier job, but a token no job of this server carries (chosen
    by the client, mistyped, or whose jobs were all deleted) is refused rather than adopted, so no
    job ever gets a weak or shared owner token."""
    presented = _bearer(request)
    if presented is None:
        return new_token()
    if looks_like_token(presented):
        async with ctx.db.transaction() as session:
            if await repository.owner_known(session, hash_token(presented)):
                return presented
    raise HTTPException(
        401,
        "this token was not issued by this server (or all its jobs were deleted): "
        "send the request without an Authorization header to get a new token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _rejected(exc: ValidationFailed) -> HTTPException:
    too_large = any(e.rule is Rule.MAX_REQUEST_BYTES for e in exc.errors)
    return HTTPException(status_code=413 if too_large else 400, detail=exc.detail())


class _BodyTooLarge(Exception):
    def __init__(self, received: int) -> None:
        self.received = received


def _capped(request: Request, limit: int) -> Request:
    """``request`` whose body stops with :class:`_BodyTooLarge` past ``limit`` bytes (a chunked body
    declares no length, so the count is what arrives)."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge(received)
        return message

    return Request(request.scope, receive)


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="a random key (a UUID): a retry with the same key gets the first response, not a second job",
    ),
]
ApiKeyHeader = Annotated[
    str | None, Header(alias="X-API-Key", description="a key from the operator: no rate limits apply")
]
# The refusals of the job-creating routes besides their own, for the API description.
IDEMPOTENT: dict[int | str, dict[str, Any]] = {
    401: {"description": "an owner token or API key this server did not issue"},
    422: {"description": "an Idempotency-Key already used for a different request"},
}
LIMITED: dict[int | str, dict[str, Any]] = {
    **IDEMPOTENT,
    413: {"description": "the request is larger than a limit (request size, or a daily upload limit)"},
    429: {"description": "a rate limit: the body names it and when it resets; see the Retry-After header"},
}


@contextmanager
def _as_http() -> Iterator[None]:
    try:
        yield
    except ValidationFailed as exc:
        raise _rejected(exc) from exc
    except QuotaExceeded as exc:
        raise exc.http() from exc


# Documents the token in the OpenAPI schema only: auto_error=False never refuses a request, the
# routes read and check the header themselves (a missing token is fine when creating a job).
CLIENT_TOKEN = HTTPBearer(
    scheme_name="clientToken",
    description="The client token answered by POST /recon/jobs or POST /recon/uploads.",
    auto_error=False,
)
# FastAPI appends this list to the route's [{clientToken: []}]: the token may also be left out.
TOKEN_OPTIONAL: dict[str, Any] = {"security": [{}]}
# POST /recon/jobs reads its multipart body itself (capped while it streams, see _capped), so no
# parameter describes it: the schema is declared for clients and for the API fuzzing.
JOB_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["files"],
    "properties": {
        "files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "The photos (JPEG, PNG or WebP), one part each.",
        },
        "poses": {
            "type": "string",
            "format": "binary",
            "description": "Optional transforms.json with the cameras of the photos: SfM is skipped.",
        },
        "original_resolution": {"type": "boolean", "default": False},
        "preset": {"type": "string", "enum": list(PRESET_NAMES), "default": "standard"},
    },
}
CREATE_JOB_OPENAPI: dict[str, Any] = {
    **TOKEN_OPTIONAL,
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": JOB_FORM,
                "encoding": {
                    "files": {"contentType": ", ".join(sorted(set(PHOTO_TYPES.values())))},
                    "poses": {"contentType": "application/json"},
                },
            }
        },
    },
}


def build_router(ctx: IngestContext) -> APIRouter:
    router = APIRouter(dependencies=[Security(CLIENT_TOKEN)])

    async def client_of(request: Request, token: str | None, api_key: str | None) -> Client:
        hops = ctx.settings.trusted_proxy_hops
        return await identify(ctx.db, request, token=token, api_key=api_key, trusted_proxy_hops=hops)

    @router.post(
        "/recon/jobs", status_code=201, responses=LIMITED, operation_id="create_job", openapi_extra=CREATE_JOB_OPENAPI
    )
    async def create_job(
        request: Request, idempotency_key: IdempotencyKeyHeader = None, api_key: ApiKeyHeader = None
    ) -> Response:
        token = await owner_token(ctx, request)
        client = await client_of(request, token if _bearer(request) is not None else None, api_key)
        retry = idempotency.parse(idempotency_key, client)
        return await idempotency.guarded(ctx.db, retry, _create_job(ctx, request, token, client, retry))

    @router.post(
        "/recon/uploads",
        status_code=201,
        responses=LIMITED,
        operation_id="declare_uploads",
        openapi_extra=TOKEN_OPTIONAL,
    )
    async def declare_uploads(
        declaration: UploadRequest,
        request: Request,
        idempotency_key: IdempotencyKeyHeader = None,
        api_key: ApiKeyHeader = None,
    ) -> Response:
        token = await owner_token(ctx, request)
        client = await client_of(request, token if _bearer(request) is not None else None, api_key)
        retry = idempotency.parse(idempotency_key, client)
        if retry is not None:
            retry.fingerprint = idempotency.fingerprint(request, declaration.model_dump(mode="json"))
        return await idempotency.guarded(ctx.db, retry, _declare_uploads(ctx, declaration, token, client, retry))

    @router.post("/recon/jobs/{job_id}/submit", responses=IDEMPOTENT, operation_id="submit_uploads")
    async def submit_uploads(
        job_id: uuid.UUID, request: Request, idempotency_key: IdempotencyKeyHeader = None, api_key: ApiKeyHeader = None
    ) -> Response:
        token = bearer_token(request)
        if token is None:
            raise HTTPException(
                401, "an owner token is required: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
            )
        # Submitting is not charged again (the declaration was): the client only scopes the key.
        retry = idempotency.parse(idempotency_key, await client_of(request, token, api_key))
        if retry is not None:
            retry.fingerprint = idempotency.fingerprint(request)
        return await idempotency.guarded(ctx.db, retry, _submit_uploads(ctx, job_id, token, retry))

    return router


async def _create_job(
    ctx: IngestContext, request: Request, token: str, client: Client, retry: Idempotent | None
) -> Response:
    with _as_http():
        return await _create_job_checked(ctx, request, token, client, retry)


async def _create_job_checked(
    ctx: IngestContext, request: Request, token: str, client: Client, retry: Idempotent | None
) -> Response:
    limits = ctx.limits
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise ValidationFailed([request_too_large(int(declared), limits)])
    earlier = await retry.find(ctx.db) if retry is not None else None
    if earlier is None:
        # Before the photos arrive; a retry of a request that was answered is not a new job.
        await ctx.quotas.precheck(client, int(declared) if declared.isdigit() else 1)
    try:
        form = await _capped(request, limits.max_request_bytes).form(max_files=limits.max_files + 1, max_fields=20)  # + the poses file
    except _BodyTooLarge as exc:
        raise ValidationFailed([request_too_large(exc.received, limits)]) from exc
    except StarletteHTTPException as exc:
        # Starlette refuses a multipart body with more files than max_files, or a malformed one.
        rule = Rule.MAX_FILES if "too many files" in str(exc.detail).lower() else Rule.FORMAT
        message = f"at most {limits.max_files} photos are accepted" if rule is Rule.MAX_FILES else str(exc.detail)
        raise ValidationFailed([FileError(None, rule, message)]) from exc
    try:
        if retry is not None:
            retry.fingerprint = await idempotency.form_fingerprint(request, form)
            if earlier is not None:
                return retry.replay(earlier)
        options = parse_options(form.get("original_resolution"), form.get("preset"))
        parts = form.getlist("files")
        if (too_many := check_count(len(parts), limits)) and too_many.rule is Rule.MAX_FILES:
            raise ValidationFailed([too_many])
        with tempfile.TemporaryDirectory(prefix="photosplat-ingest-") as workdir:
            intake = Intake(limits, Path(workdir), ctx.decoder)
            if too_many:
                intake.reject(too_many)
            for index, part in enumerate(parts):
                await _take_part(intake, index, part)
            poses = await _take_poses(intake, form.get("poses"))
            intake.raise_if_rejected()
            job = NewJob.mint(token)
            images = await store_images(ctx.store, job.id, intake.accepted)
        body = {
            "job_id": str(job.id),
            "pub_key": job.pub_key,
            "token": token,
            "status": "PENDING",
            "image_count": len(images),
            "original_resolution": options.original_resolution,
            **ctx.links(job.id, job.pub_key),
        }
        admission = Admission(client, _uploaded_bytes(form), retry, body)
        await _commit_submission(ctx, admission, job, options, images, poses)
    finally:
        await form.close()
    return JSONResponse(body, status_code=201)


def _uploaded_bytes(form: FormData) -> int:
    return sum(part.size or 0 for _, part in form.multi_items() if isinstance(part, UploadFile))


async def _take_part(intake: Intake, index: int, part: UploadFile | str) -> None:
    if not isinstance(part, UploadFile):
        intake.reject(FileError(f"files[{index}]", Rule.FORMAT, "a text field where a file was expected"))
        return
    name = display_name(part.filename, index)
    if problem := check_declared(name, part.size, intake.limits):
        intake.reject(problem)
        return
    await intake.add(index, name, await part.read())


async def _take_poses(intake: Intake, part: UploadFile | str | None) -> bytes | None:
    """The optional ``poses`` field: a transforms.json for photos whose cameras are known."""
    if part is None:
        return None
    if not isinstance(part, UploadFile):
        intake.reject(FileError("poses", Rule.POSES, "a text field where a transforms.json file was expected"))
        return None
    data = await part.read()
    # Up to 10 MB of JSON and a matrix check per frame: not on the event loop.
    if problem := await asyncio.to_thread(check_poses, data, [a.name for a in intake.accepted]):
        intake.reject(problem)
        return None
    return data


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


async def _commit_submission(
    ctx: IngestContext,
    admission: Admission,
    job: NewJob,
    options: JobOptions,
    images: list[ImageInfo],
    poses: bytes | None = None,
) -> None:
    """The job row and its two events in one transaction (outbox); the images (and poses) are stored
    first and removed again if anything fails (a limit reached meanwhile included)."""
    try:
        poses_key = None
        if poses is not None:
            poses_key = keys.poses(job.id)
            await ctx.store.put(poses_key, poses, "application/json")
        async with admission.transaction(ctx, job.id) as session:
            repository.add_job(session, job.row(options, stage=Stage.SFM, image_count=len(images), uploads=[]))
            add_to_outbox(session, *submission_events(job.id, hash_token(job.pub_key), options, images, poses_key))
    except BaseException:
        await ctx.store.delete_prefix(keys.job_prefix(job.id))
        raise
    ctx.relay.notify()


async def _declare_uploads(
    ctx: IngestContext, declaration: UploadRequest, token: str, client: Client, retry: Idempotent | None
) -> Response:
    if retry is not None and (earlier := await retry.find(ctx.db)) is not None:
        return retry.replay(earlier)
    with _as_http():
        return await _declare_uploads_checked(ctx, declaration, token, client, retry)


async def _declare_uploads_checked(
    ctx: IngestContext, declaration: UploadRequest, token: str, client: Client, retry: Idempotent | None
) -> Response:
    limits = ctx.limits
    options = parse_options(declaration.original_resolution, declaration.preset)
    errors = [e for e in [check_count(len(declaration.files), limits)] if e]
    names = [display_name(f.name, i) for i, f in enumerate(declaration.files)]
    if not any(e.rule is Rule.MAX_FILES for e in errors):
        errors += [
            e for name, f in zip(names, declaration.files, strict=True) if (e := check_declared(name, f.size, limits))
        ]
    if errors:
        raise ValidationFailed(errors)
    job = NewJob.mint(token)
    uploads = [
        {"name": name, "key": keys.incoming(job.id, i, extension(name)), "size": f.size}
        for i, (name, f) in enumerate(zip(names, declaration.files, strict=True))
    ]
    ttl = timedelta(seconds=ctx.settings.upload_url_ttl_seconds)
    expires_at = datetime.now(timezone.utc) + ttl
    # Each URL takes exactly the declared bytes of the declared type, so nothing larger than what
    # was checked here can be parked in the store. The URLs of a request refused below (a limit) are
    # never handed out.
    urls = [
        await ctx.store.presigned_put(
            u["key"], ttl, content_type=PHOTO_TYPES[extension(u["name"])], content_length=u["size"]
        )
        for u in uploads
    ]
    body = {
        "job_id": str(job.id),
        "pub_key": job.pub_key,
        "token": token,
        "expires_at": expires_at.isoformat(),
        "submit_url": ctx.settings.public_url(f"/recon/jobs/{job.id}/submit"),
        "uploads": [
            {
                "name": u["name"],
                "key": u["key"],
                "url": url,
                "method": "PUT",
                "headers": {"Content-Type": PHOTO_TYPES[extension(u["name"])]},
            }
            for u, url in zip(uploads, urls, strict=True)
        ],
    }
    admission = Admission(client, sum(u["size"] for u in uploads), retry, body)
    async with admission.transaction(ctx, job.id) as session:
        repository.add_job(session, job.row(options, stage=Stage.UPLOAD, image_count=len(uploads), uploads=uploads))
    return JSONResponse(body, status_code=201)


async def _submit_uploads(ctx: IngestContext, job_id: uuid.UUID, token: str, retry: Idempotent | None) -> Response:
    if retry is not None and (earlier := await retry.find(ctx.db)) is not None:
        return retry.replay(earlier)
    with _as_http():
        return await _submit_uploads_checked(ctx, job_id, token, retry)


async def _submit_uploads_checked(
    ctx: IngestContext, job_id: uuid.UUID, token: str, retry: Idempotent | None
) -> Response:
    async with ctx.db.transaction() as session:
        job = await repository.get_job(session, job_id)
    # A job of someone else answers exactly like a missing one: ids are not a secret worth probing.
    if job is None or not same(job.owner_hash, hash_token(token)):
        raise HTTPException(404, "no such job")
    if job.stage != Stage.UPLOAD.value:
        raise HTTPException(409, f"this job was already submitted (stage {job.stage!r})")
    window = timedelta(seconds=ctx.settings.upload_ttl_seconds)
    if job.created_at + window < datetime.now(timezone.utc):
        # Its uploads are swept (or about to be): declare the files again.
        raise HTTPException(
            410, f"the upload window of this job closed {window} after it was declared: use POST /recon/uploads again"
        )
    options = JobOptions.model_validate(job.options)
    incoming = [u["key"] for u in job.uploads]
    with tempfile.TemporaryDirectory(prefix="photosplat-ingest-") as workdir:
        intake = Intake(ctx.limits, Path(workdir), ctx.decoder)
        bad = [u["key"] for i, u in enumerate(job.uploads) if not await _take_uploaded(ctx, intake, i, u)]
        if intake.errors:
            # The client may upload these again (its URLs may still be valid) and submit again.
            await delete_quietly(ctx.store, bad)
            intake.raise_if_rejected()
        images = await store_images(ctx.store, job_id, intake.accepted)
    pub_key = unseal_pub_key(job.pub_key_sealed, token, str(job_id))
    body = {
        "job_id": str(job_id),
        "status": "PENDING",
        "image_count": len(images),
        "original_resolution": options.original_resolution,
        **ctx.links(job_id, pub_key),
    }
    try:
        async with ctx.db.transaction() as session:
            moved = await repository.mark_uploaded(session, job_id, len(images))
            if moved:
                add_to_outbox(session, *submission_events(job_id, job.pub_key_hash, options, images))
                if retry is not None:
                    await retry.record(session, job_id, 200, body, ctx.idempotency_ttl)
    except BaseException:
        # The uploads stay in place: the client can simply submit again.
        await delete_quietly(ctx.store, [image.key for image in images])
        raise
    if not moved:
        # A concurrent submit won; it wrote the same sanitised images, so nothing to undo (and one
        # with the same Idempotency-Key is answered with the winner's response).
        raise HTTPException(409, "this job was already submitted")
    ctx.relay.notify()
    await delete_quietly(ctx.store, incoming)
    return JSONResponse(body)


async def _take_uploaded(ctx: IngestContext, intake: Intake, index: int, upload: dict[str, Any]) -> bool:
    """Validate one presigned upload; False when it is missing or rejected."""
    name, key = upload["name"], upload["key"]
    try:
        info = await ctx.store.stat(key)
    except ObjectNotFound:
        intake.reject(FileError(name, Rule.MISSING, "this file was declared but never uploaded"))
        return False
    # The URL was signed for the declared size; a store that does not check signatures (a test
    # server) is caught here, before anything is downloaded.
    problem = check_declared(name, info.size, intake.limits) or check_uploaded_size(name, info.size, upload["size"])
    if problem:
        intake.reject(problem)
        return False
    return await intake.add(index, name, await ctx.store.get(key))
