"""``POST /recon/jobs``: multipart photos (and optional known poses) in, a validated job out
(201). Creating a job is rate limited per client and globally (429 with Retry-After, see
quotas.py) and takes an ``Idempotency-Key`` (idempotency.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from photosplat_libs import keys
from photosplat_libs.db.outbox import add_to_outbox
from photosplat_libs.events import PRESET_NAMES, ImageInfo, JobOptions, Stage, VideoInfo
from photosplat_libs.media import PHOTO_TYPES, VIDEO_TYPES
from photosplat_libs.security import hash_token

from photosplat_ingest import idempotency, repository
from photosplat_ingest.callbacks import CALLBACK_URL_SCHEMA, Callback, callback_for
from photosplat_ingest.clients import Client
from photosplat_ingest.context import Admission, IngestContext
from photosplat_ingest.idempotency import Idempotent
from photosplat_ingest.intake import Intake, store_images, store_poses
from photosplat_ingest.jobs import NewJob, parse_options, submission_events
from photosplat_ingest.video_intake import store_video_part
from photosplat_ingest.routes.common import (
    LIMITED,
    TOKEN_OPTIONAL,
    ApiKeyHeader,
    IdempotencyKeyHeader,
    as_http,
    creating_client,
)
from photosplat_ingest.validation import (
    MODEL_FILES,
    POSES_FILE,
    FileError,
    KnownPoses,
    Limits,
    Rule,
    ValidationFailed,
    check_count,
    check_declared,
    check_video_request,
    display_name,
    is_video,
    request_too_large,
)

# POST /recon/jobs reads its multipart body itself (capped while it streams, see _capped), so no
# parameter describes it: the schema is declared for clients and for the API fuzzing.
JOB_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["files"],
    "properties": {
        "files": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "The photos (JPEG, PNG or WebP), one part each; or one video (MP4 or MOV) alone.",
        },
        "poses": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": (
                "Optional cameras of the photos, SfM is then skipped: one NeRF-style transforms.json, or the "
                "files of a COLMAP text model named cameras.txt, images.txt and (optional) points3D.txt."
            ),
        },
        "original_resolution": {"type": "boolean", "default": False},
        "preset": {"type": "string", "enum": list(PRESET_NAMES), "default": "standard"},
        "callback_url": CALLBACK_URL_SCHEMA,
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
                    "files": {"contentType": ", ".join(sorted({*PHOTO_TYPES.values(), *VIDEO_TYPES.values()}))},
                    "poses": {"contentType": "application/json, text/plain"},
                },
            }
        },
    },
}


def router(ctx: IngestContext) -> APIRouter:
    routes = APIRouter()

    @routes.post(
        "/recon/jobs", status_code=201, responses=LIMITED, operation_id="create_job", openapi_extra=CREATE_JOB_OPENAPI
    )
    async def create_job(
        request: Request, idempotency_key: IdempotencyKeyHeader = None, api_key: ApiKeyHeader = None
    ) -> Response:
        token, client = await creating_client(ctx, request, api_key)
        retry = idempotency.parse(idempotency_key, client)
        return await idempotency.guarded(ctx.db, retry, _create_job(ctx, request, token, client, retry))

    return routes


async def _create_job(
    ctx: IngestContext, request: Request, token: str, client: Client, retry: Idempotent | None
) -> Response:
    with as_http():
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
    form = await _read_form(request, limits)
    try:
        if retry is not None:
            retry.fingerprint = await idempotency.form_fingerprint(request, form)
            if earlier is not None:
                return retry.replay(earlier)
        options = parse_options(form.get("original_resolution"), form.get("preset"))
        callback = await callback_for(ctx, client, token, form.get("callback_url"))
        job, images, poses, video = await _store_photos(ctx, form, token)
        body = {
            "job_id": str(job.id),
            "pub_key": job.pub_key,
            "token": token,
            "status": "PENDING",
            "image_count": len(images),
            "capture": "photos" if video is None else "video",
            "original_resolution": options.original_resolution,
            **ctx.links(job.id, job.pub_key),
            **(callback.response_fields() if callback else {}),
        }
        admission = Admission(client, _uploaded_bytes(form), retry, body)
        await _commit_submission(ctx, admission, job, options, images, poses, callback, video)
    finally:
        await form.close()
    return JSONResponse(body, status_code=201)


async def _read_form(request: Request, limits: Limits) -> FormData:
    try:
        # Beyond the photos: the poses files (a COLMAP model's three at most).
        max_files = limits.max_files + len(MODEL_FILES)
        return await _capped(request, limits.max_request_bytes).form(max_files=max_files, max_fields=20)
    except _BodyTooLarge as exc:
        raise ValidationFailed([request_too_large(exc.received, limits)]) from exc
    except StarletteHTTPException as exc:
        # Starlette refuses a multipart body with more files than max_files, or a malformed one.
        rule = Rule.MAX_FILES if "too many files" in str(exc.detail).lower() else Rule.FORMAT
        message = f"at most {limits.max_files} photos are accepted" if rule is Rule.MAX_FILES else str(exc.detail)
        raise ValidationFailed([FileError(None, rule, message)]) from exc


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


async def _store_photos(
    ctx: IngestContext, form: FormData, token: str
) -> tuple[NewJob, list[ImageInfo], KnownPoses | None, VideoInfo | None]:
    """Every photo of the form (and its poses file) checked, then the photos stored under a new job;
    or the one video of the form checked and stored."""
    limits = ctx.limits
    parts = form.getlist("files")
    names = [display_name(p.filename if isinstance(p, UploadFile) else None, i) for i, p in enumerate(parts)]
    if problem := check_video_request(names, bool(form.getlist("poses"))):
        raise ValidationFailed([problem])
    if len(parts) == 1 and isinstance(parts[0], UploadFile) and is_video(names[0]):
        job = NewJob.mint(token)
        video = await store_video_part(ctx, job.id, names[0], parts[0].file, parts[0].size)
        return job, [], None, video
    if (too_many := check_count(len(parts), limits)) and too_many.rule is Rule.MAX_FILES:
        raise ValidationFailed([too_many])
    with tempfile.TemporaryDirectory(prefix="photosplat-ingest-") as workdir:
        intake = Intake(limits, Path(workdir), ctx.decoder)
        if too_many:
            intake.reject(too_many)
        for index, part in enumerate(parts):
            await _take_part(intake, index, part)
        poses = await _take_poses(intake, form.getlist("poses"))
        intake.raise_if_rejected()
        job = NewJob.mint(token)
        images = await store_images(ctx.store, job.id, intake.accepted)
    return job, images, poses, None


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


async def _take_poses(intake: Intake, parts: list[UploadFile | str]) -> KnownPoses | None:
    """The optional ``poses`` field(s): the cameras of photos whose cameras are known."""
    if not parts:
        return None
    files = []
    for part in parts:
        if not isinstance(part, UploadFile):
            intake.reject(FileError("poses", Rule.POSES, "a text field where a poses file was expected"))
            return None
        files.append((part.filename or POSES_FILE, await part.read()))
    return await intake.add_poses(files)


async def _commit_submission(
    ctx: IngestContext,
    admission: Admission,
    job: NewJob,
    options: JobOptions,
    images: list[ImageInfo],
    poses: KnownPoses | None = None,
    callback: Callback | None = None,
    video: VideoInfo | None = None,
) -> None:
    """The job row and its two events in one transaction (outbox); the images (and poses), or the
    video, are stored first and removed again if anything fails (a limit reached meanwhile included)."""
    try:
        poses_key = None if poses is None else (await store_poses(ctx.store, job.id, poses))[0]
        async with admission.transaction(ctx, job.id) as session:
            repository.add_job(session, job.row(options, stage=Stage.SFM, image_count=len(images), uploads=[]))
            if callback is not None:
                session.add(callback.row(job.id, ctx.links(job.id, job.pub_key)))
            events = submission_events(job.id, hash_token(job.pub_key), options, images, poses_key, video)
            add_to_outbox(session, *events)
    except BaseException:
        await ctx.store.delete_prefix(keys.job_prefix(job.id))
        raise
    ctx.relay.notify()
