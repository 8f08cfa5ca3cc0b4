"""``POST /recon/jobs/{job_id}/submit``: validate what the presigned URLs of :mod:`.presigned`
received and start the job (200). Takes an ``Idempotency-Key``; not charged again (the declaration
was)."""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from photosplat_libs.db.models import Job
from photosplat_libs.db.outbox import add_to_outbox
from photosplat_libs.events import ImageInfo, JobOptions, Stage, VideoInfo
from photosplat_libs.security import hash_token, same, unseal_pub_key
from photosplat_libs.store import ObjectNotFound

from photosplat_ingest import idempotency, repository
from photosplat_ingest.context import IngestContext
from photosplat_ingest.idempotency import Idempotent
from photosplat_ingest.intake import Intake, delete_quietly, store_images, store_poses
from photosplat_ingest.jobs import submission_events
from photosplat_ingest.routes.common import (
    SUBMIT_REFUSALS,
    ApiKeyHeader,
    IdempotencyKeyHeader,
    as_http,
    bearer_token,
    client_of,
)
from photosplat_ingest.validation import (
    FileError,
    Rule,
    check_declared,
    check_uploaded_size,
    is_video,
    poses_size_problem,
)
from photosplat_ingest.video_intake import store_uploaded_video


def router(ctx: IngestContext) -> APIRouter:
    routes = APIRouter()

    @routes.post("/recon/jobs/{job_id}/submit", responses=SUBMIT_REFUSALS, operation_id="submit_uploads")
    async def submit_uploads(
        job_id: uuid.UUID, request: Request, idempotency_key: IdempotencyKeyHeader = None, api_key: ApiKeyHeader = None
    ) -> Response:
        token = bearer_token(request)
        if token is None:
            raise HTTPException(
                401, "an owner token is required: Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
            )
        # Submitting is not charged again (the declaration was): the client only scopes the key.
        retry = idempotency.parse(idempotency_key, await client_of(ctx, request, token, api_key))
        if retry is not None:
            retry.fingerprint = idempotency.fingerprint(request)
        return await idempotency.guarded(ctx.db, retry, _submit_uploads(ctx, job_id, token, retry))

    return routes


async def _submit_uploads(ctx: IngestContext, job_id: uuid.UUID, token: str, retry: Idempotent | None) -> Response:
    if retry is not None and (earlier := await retry.find(ctx.db)) is not None:
        return retry.replay(earlier)
    with as_http():
        return await _submit_uploads_checked(ctx, job_id, token, retry)


async def _submit_uploads_checked(
    ctx: IngestContext, job_id: uuid.UUID, token: str, retry: Idempotent | None
) -> Response:
    job = await _submittable_job(ctx, job_id, token)
    options = JobOptions.model_validate(job.options)
    incoming = [u["key"] for u in job.uploads]
    video = await _store_video_upload(ctx, job)
    images, poses_key, stored = ([], None, [video.key]) if video else await _store_uploads(ctx, job)
    pub_key = unseal_pub_key(job.pub_key_sealed, token, str(job_id))
    body = {
        "job_id": str(job_id),
        "status": "PENDING",
        "image_count": len(images),
        "capture": "photos" if video is None else "video",
        "original_resolution": options.original_resolution,
        **ctx.links(job_id, pub_key),
    }
    try:
        async with ctx.db.transaction() as session:
            moved = await repository.mark_uploaded(session, job_id, len(images))
            if moved:
                events = submission_events(job_id, job.pub_key_hash, options, images, poses_key, video)
                add_to_outbox(session, *events)
                if retry is not None:
                    await retry.record(session, job_id, 200, body, ctx.idempotency_ttl)
    except BaseException:
        # The uploads stay in place: the client can simply submit again.
        await delete_quietly(ctx.store, stored)
        raise
    if not moved:
        # A concurrent submit won; it wrote the same sanitised images, so nothing to undo (and one
        # with the same Idempotency-Key is answered with the winner's response).
        raise HTTPException(409, "this job was already submitted")
    ctx.relay.notify()
    await delete_quietly(ctx.store, incoming)
    return JSONResponse(body)


async def _submittable_job(ctx: IngestContext, job_id: uuid.UUID, token: str) -> Job:
    """The caller's job, still waiting for its uploads within its upload window."""
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
    return job


async def _store_video_upload(ctx: IngestContext, job: Job) -> VideoInfo | None:
    """The job's one upload checked and stored as its video, when a video was declared."""
    uploads = [u for u in job.uploads if "poses" not in u]
    if len(uploads) == 1 and is_video(uploads[0]["name"]):
        return await store_uploaded_video(ctx, job.id, uploads[0])
    return None


async def _store_uploads(ctx: IngestContext, job: Job) -> tuple[list[ImageInfo], str | None, list[str]]:
    """Every uploaded file checked, then stored as the job's images (and poses); the rejected
    uploads are deleted. The images, the ``poses_key`` and every key written."""
    photos = [u for u in job.uploads if "poses" not in u]
    poses_uploads = [u for u in job.uploads if "poses" in u]
    with tempfile.TemporaryDirectory(prefix="photosplat-ingest-") as workdir:
        intake = Intake(ctx.limits, Path(workdir), ctx.decoder)
        bad = [u["key"] for i, u in enumerate(photos) if not await _take_uploaded(ctx, intake, i, u)]
        poses = None
        if poses_uploads:
            files = [(u, data) for u in poses_uploads if (data := await _uploaded_poses(ctx, intake, u)) is not None]
            bad += [u["key"] for u in poses_uploads if all(u is not f for f, _ in files)]
            if len(files) == len(poses_uploads):
                poses = await intake.add_poses([(u["name"], data) for u, data in files])
                # Which file of a model is wrong is in the message; the client uploads the set again.
                bad += [u["key"] for u in poses_uploads] if poses is None else []
        if intake.errors:
            # The client may upload these again (its URLs may still be valid) and submit again.
            await delete_quietly(ctx.store, bad)
            intake.raise_if_rejected()
        images = await store_images(ctx.store, job.id, intake.accepted)
    if poses is None:
        return images, None, [image.key for image in images]
    try:
        poses_key, written = await store_poses(ctx.store, job.id, poses)
    except BaseException:
        await delete_quietly(ctx.store, [image.key for image in images])
        raise
    return images, poses_key, [image.key for image in images] + written


async def _uploaded_poses(ctx: IngestContext, intake: Intake, upload: dict[str, Any]) -> bytes | None:
    """The bytes of one presigned poses upload; None when it is missing or of another size."""
    name, key = upload["name"], upload["key"]
    try:
        info = await ctx.store.stat(key)
    except ObjectNotFound:
        intake.reject(FileError(name, Rule.MISSING, "this file was declared but never uploaded"))
        return None
    problem = poses_size_problem(upload["poses"], info.size) or check_uploaded_size(name, info.size, upload["size"])
    if problem:
        intake.reject(problem)
        return None
    return await ctx.store.get(key)


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
