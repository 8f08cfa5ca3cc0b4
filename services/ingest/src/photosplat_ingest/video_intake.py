"""A video sent instead of photos (multipart or presigned): copied to local disk, checked
(:mod:`.validation.video`), and its video track stored as the job's video; the colmap stage
extracts the frames. Like the photos, nothing is written to the store before the check passed, and
a failure while writing removes what was written (docs/architecture.md §6)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any

from photosplat_libs import keys
from photosplat_libs.events import VideoInfo
from photosplat_libs.media import VIDEO_TYPES
from photosplat_libs.store import ObjectNotFound

from photosplat_ingest.context import IngestContext
from photosplat_ingest.intake import delete_quietly
from photosplat_ingest.validation import (
    CheckedVideo,
    FileError,
    FileRejected,
    Rule,
    ValidationFailed,
    check_declared,
    check_uploaded_size,
)

async def store_video_part(
    ctx: IngestContext, job_id: uuid.UUID, name: str, file: IO[bytes], size: int | None
) -> VideoInfo:
    """A multipart ``files`` part holding a video (Starlette spooled it to disk): checked, then stored."""
    if problem := check_declared(name, size, ctx.limits):
        raise ValidationFailed([problem])
    with tempfile.TemporaryDirectory(prefix="photosplat-ingest-") as workdir:
        source = Path(workdir) / "upload"
        await asyncio.to_thread(_copy, file, source)
        checked = await _checked(ctx, name, source, Path(workdir))
        return await _store(ctx, job_id, name, checked)


async def store_uploaded_video(ctx: IngestContext, job_id: uuid.UUID, upload: dict[str, Any]) -> VideoInfo:
    """A presigned upload holding a video: checked, then stored. A rejected upload is deleted (the
    client may upload it again and submit again)."""
    name, key = upload["name"], upload["key"]
    try:
        info = await ctx.store.stat(key)
    except ObjectNotFound:
        raise ValidationFailed([FileError(name, Rule.MISSING, "this file was declared but never uploaded")]) from None
    if problem := check_declared(name, info.size, ctx.limits) or check_uploaded_size(name, info.size, upload["size"]):
        await delete_quietly(ctx.store, [key])
        raise ValidationFailed([problem])
    with tempfile.TemporaryDirectory(prefix="photosplat-ingest-") as workdir:
        source = Path(workdir) / "upload"
        await ctx.store.get_file(key, str(source))
        try:
            checked = await _checked(ctx, name, source, Path(workdir))
        except ValidationFailed:
            await delete_quietly(ctx.store, [key])
            raise
        return await _store(ctx, job_id, name, checked)


def _copy(file: IO[bytes], dest: Path) -> None:
    file.seek(0)
    with dest.open("wb") as out:
        shutil.copyfileobj(file, out, 1024 * 1024)


async def _checked(ctx: IngestContext, name: str, source: Path, workdir: Path) -> CheckedVideo:
    try:
        return await ctx.decoder.check_video(source, workdir / "video.mp4", ctx.limits)
    except FileRejected as exc:
        raise ValidationFailed([FileError(name, exc.rule, exc.message)]) from exc


async def _store(ctx: IngestContext, job_id: uuid.UUID, name: str, checked: CheckedVideo) -> VideoInfo:
    key = keys.video(job_id)
    try:
        await ctx.store.put_file(key, str(checked.path), VIDEO_TYPES[".mp4"])
    except BaseException:
        await delete_quietly(ctx.store, [key])
        raise
    return VideoInfo(
        key=key,
        name=name,
        bytes=checked.path.stat().st_size,
        codec=checked.codec,
        width=checked.width,
        height=checked.height,
        duration_seconds=round(checked.duration_seconds, 3),
        frame_rate=round(checked.frame_rate, 3) if checked.frame_rate else None,
        # SfM needs three views whatever the photo limit says.
        max_frames=max(ctx.settings.max_files, 3),
    )
