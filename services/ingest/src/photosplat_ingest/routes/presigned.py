"""``POST /recon/uploads``: the client declares its files (photos, and optional known poses) and gets
one presigned PUT URL per file (201); it then submits the job (:mod:`.submit`). Rate limited and
idempotent like ``POST /recon/jobs``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from photosplat_libs import keys
from photosplat_libs.events import Stage
from photosplat_libs.media import PHOTO_TYPES, VIDEO_TYPES
from photosplat_libs.webhooks.addresses import MAX_URL_LENGTH

from photosplat_ingest import idempotency, repository
from photosplat_ingest.callbacks import callback_for
from photosplat_ingest.clients import Client
from photosplat_ingest.context import Admission, IngestContext
from photosplat_ingest.idempotency import Idempotent
from photosplat_ingest.jobs import NewJob, parse_options
from photosplat_ingest.routes.common import (
    LIMITED,
    TOKEN_OPTIONAL,
    ApiKeyHeader,
    IdempotencyKeyHeader,
    as_http,
    creating_client,
)
from photosplat_ingest.validation import (
    POSES_FILE,
    FileError,
    Limits,
    Rule,
    ValidationFailed,
    check_count,
    check_declared,
    check_video_request,
    display_name,
    extension,
    is_video,
    poses_names,
    poses_size_problem,
)


class DeclaredFile(BaseModel):
    name: str = Field(max_length=1000)
    size: int = Field(ge=0)
    content_type: str = ""


class UploadRequest(BaseModel):
    files: list[DeclaredFile] = Field(default_factory=list)
    # Known cameras, as for POST /recon/jobs: one transforms.json, or cameras.txt, images.txt (and
    # points3D.txt) of a COLMAP text model.
    poses: list[DeclaredFile] = Field(default_factory=list)
    original_resolution: bool = False
    preset: str = "standard"
    # Where the end of the job is announced (webhook, signed): http(s) to a public address.
    callback_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)


def router(ctx: IngestContext) -> APIRouter:
    routes = APIRouter()

    @routes.post(
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
        token, client = await creating_client(ctx, request, api_key)
        retry = idempotency.parse(idempotency_key, client)
        if retry is not None:
            retry.fingerprint = idempotency.fingerprint(request, declaration.model_dump(mode="json"))
        return await idempotency.guarded(ctx.db, retry, _declare_uploads(ctx, declaration, token, client, retry))

    return routes


async def _declare_uploads(
    ctx: IngestContext, declaration: UploadRequest, token: str, client: Client, retry: Idempotent | None
) -> Response:
    if retry is not None and (earlier := await retry.find(ctx.db)) is not None:
        return retry.replay(earlier)
    with as_http():
        return await _declare_uploads_checked(ctx, declaration, token, client, retry)


async def _declare_uploads_checked(
    ctx: IngestContext, declaration: UploadRequest, token: str, client: Client, retry: Idempotent | None
) -> Response:
    options = parse_options(declaration.original_resolution, declaration.preset)
    names, poses = _checked_names(declaration, ctx.limits)
    callback = await callback_for(ctx, client, token, declaration.callback_url)
    job = NewJob.mint(token)
    uploads = [
        {"name": name, "key": keys.incoming(job.id, i, extension(name)), "size": f.size}
        for i, (name, f) in enumerate(zip(names, declaration.files, strict=True))
    ]
    # After the photos, so their indices (and image keys) are those of a job without poses; "poses"
    # marks them (and tells which poses file each is) for the submit.
    for known, f in zip(poses, declaration.poses, strict=True):
        ext = ".json" if known == POSES_FILE else ".txt"
        name = display_name(f.name, len(uploads))
        uploads.append({"name": name, "key": keys.incoming(job.id, len(uploads), ext), "size": f.size, "poses": known})
    # A video's frames are counted when the colmap stage has chosen them.
    photo_count = 0 if any(is_video(name) for name in names) else len(names)
    ttl = timedelta(seconds=ctx.settings.upload_url_ttl_seconds)
    expires_at = datetime.now(timezone.utc) + ttl
    body = {
        "job_id": str(job.id),
        "pub_key": job.pub_key,
        "token": token,
        "expires_at": expires_at.isoformat(),
        "submit_url": ctx.settings.public_url(f"/recon/jobs/{job.id}/submit"),
        "uploads": await _presign(ctx, uploads, ttl),
        **(callback.response_fields() if callback else {}),
    }
    admission = Admission(client, sum(u["size"] for u in uploads), retry, body)
    async with admission.transaction(ctx, job.id) as session:
        repository.add_job(session, job.row(options, stage=Stage.UPLOAD, image_count=photo_count, uploads=uploads))
        if callback is not None:
            session.add(callback.row(job.id, ctx.links(job.id, job.pub_key)))
    return JSONResponse(body, status_code=201)


def _checked_names(declaration: UploadRequest, limits: Limits) -> tuple[list[str], list[str]]:
    """The display names of the declared photos and the names its poses files are known by, once
    their count, types and sizes are acceptable."""
    names = [display_name(f.name, i) for i, f in enumerate(declaration.files)]
    if problem := check_video_request(names, bool(declaration.poses)):
        raise ValidationFailed([problem])
    video = any(is_video(name) for name in names)
    errors = [e for e in [None if video else check_count(len(declaration.files), limits)] if e]
    if not any(e.rule is Rule.MAX_FILES for e in errors):
        errors += [
            e for name, f in zip(names, declaration.files, strict=True) if (e := check_declared(name, f.size, limits))
        ]
    poses = poses_names([f.name for f in declaration.poses]) if declaration.poses else []
    if isinstance(poses, FileError):
        errors.append(poses)
    else:
        errors += [e for known, f in zip(poses, declaration.poses, strict=True) if (e := poses_size_problem(known, f.size))]
    if errors:
        raise ValidationFailed(errors)
    return names, poses if isinstance(poses, list) else []


async def _presign(ctx: IngestContext, uploads: list[dict[str, Any]], ttl: timedelta) -> list[dict[str, Any]]:
    """What the client needs to upload each file. Each URL takes exactly the declared bytes of the
    declared type, so nothing larger than what was checked can be parked in the store. The URLs of a
    request refused later (a limit) are never handed out."""
    answers: list[dict[str, Any]] = []
    for upload in uploads:
        name, key, size = upload["name"], upload["key"], upload["size"]
        content_type = _content_type(upload)
        url = await ctx.store.presigned_put(key, ttl, content_type=content_type, content_length=size)
        headers = {"Content-Type": content_type}
        answers.append({"name": name, "key": key, "url": url, "method": "PUT", "headers": headers})
    return answers


def _content_type(upload: dict[str, Any]) -> str:
    known = upload.get("poses")
    if known is None:
        return {**PHOTO_TYPES, **VIDEO_TYPES}[extension(upload["name"])]
    return "application/json" if known == POSES_FILE else "text/plain"
