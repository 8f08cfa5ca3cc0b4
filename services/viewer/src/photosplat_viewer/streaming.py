"""Streaming a scene file with HTTP range support, so viewers can load large scenes progressively
and downloads can resume."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.store import ObjectInfo, ObjectNotFound, ObjectStore
from photosplat_viewer.pages import PRIVATE_HEADERS
from photosplat_viewer.ranges import ByteRange, Unsatisfiable, parse_range
from photosplat_viewer.scene_files import SceneFile, content_type, find_file


def _not_found() -> Response:
    return PlainTextResponse("not found", status_code=404, headers=PRIVATE_HEADERS)


def _etag(info: ObjectInfo, job: Job) -> str:
    if info.etag:
        return f'"{info.etag.strip(chr(34))}"'
    # A store without ETags: the key, size and finish time change whenever a re-run rewrites the file.
    seed = f"{info.key}:{info.size}:{job.finished_at.isoformat() if job.finished_at else ''}"
    return f'"{hashlib.sha256(seed.encode()).hexdigest()[:32]}"'


def _matches(header: str, etag: str) -> bool:
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


async def serve_file(request: Request, store: ObjectStore, job: Job | None, filename: str) -> Response:
    if job is None or job.status != JobStatus.DONE:
        return _not_found()
    file = find_file(job, filename)
    if file is None:
        return _not_found()
    try:
        info = await store.stat(file.key)
    except ObjectNotFound:
        return _not_found()

    etag = _etag(info, job)
    headers = {
        **PRIVATE_HEADERS,
        "Accept-Ranges": "bytes",
        "ETag": etag,
        # Revalidate with the ETag each time: a deleted job must stop serving its files.
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(file.filename)}",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)

    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        # The client's partial copy is of another version: send it the whole current file.
        range_header = None
    try:
        byte_range = parse_range(range_header, info.size)
    except Unsatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{info.size}"})
    return _stream(request, store, file, info, byte_range, headers)


def _stream(
    request: Request,
    store: ObjectStore,
    file: SceneFile,
    info: ObjectInfo,
    byte_range: ByteRange | None,
    headers: dict[str, str],
) -> Response:
    media_type = content_type(file.filename)
    if byte_range is None:
        status_code, start, end, length = 200, 0, info.size - 1, info.size
    else:
        status_code, start, end, length = 206, byte_range.start, byte_range.end, byte_range.length
        headers = {**headers, "Content-Range": byte_range.content_range(info.size)}
    headers = {**headers, "Content-Length": str(length)}
    if request.method == "HEAD" or length == 0:
        return Response(status_code=status_code, headers=headers, media_type=media_type)
    return StreamingResponse(
        store.stream(file.key, start, end), status_code=status_code, headers=headers, media_type=media_type
    )
