"""Validating the files of one request, then storing them: every file is checked before any object
is written, and a failure while writing removes what was written (docs/architecture.md §6: nothing half-created)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from photosplat_libs import keys
from photosplat_libs.events import ImageInfo
from photosplat_libs.store import ObjectStore

from photosplat_ingest.validation import (
    FileError,
    FileRejected,
    KnownPoses,
    Limits,
    PhotoSize,
    Rule,
    CheckedVideo,
    SanitizedImage,
    ValidationFailed,
    check_known_poses,
    check_video,
    sanitize,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcceptedImage:
    index: int
    name: str
    # The sanitised bytes, on local disk until every file of the request has passed.
    path: Path
    image: SanitizedImage


class Decoder:
    """Runs full decodes on at most ``slots`` threads of this process: each holds up to one
    max_pixels image, so this bounds the memory all requests together spend decoding. A pool rather
    than a semaphore: a request cancelled mid-decode (the client hung up) cannot free its slot while
    its thread still decodes."""

    def __init__(self, slots: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="ingest-decode")

    async def sanitize(self, data: bytes, limits: Limits) -> SanitizedImage:
        return await asyncio.get_running_loop().run_in_executor(self._pool, sanitize, data, limits)

    async def check_video(self, source: Path, dest: Path, limits: Limits) -> CheckedVideo:
        """A video's probe, first frame and remux, in the same slots as the photo decodes."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, check_video, source, dest, limits)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Intake:
    """Collects the verdicts on one request's files. Files are decoded one after the other and the
    sanitised images wait in ``workdir`` rather than in memory, so a request of hundreds of photos
    holds one decoded image at a time."""

    def __init__(self, limits: Limits, workdir: Path, decoder: Decoder) -> None:
        self.limits = limits
        self.errors: list[FileError] = []
        self.accepted: list[AcceptedImage] = []
        self._workdir, self._decoder = workdir, decoder
        self._first_name_by_digest: dict[str, str] = {}

    def reject(self, error: FileError) -> None:
        self.errors.append(error)

    async def add(self, index: int, name: str, data: bytes) -> bool:
        """Validate one file; returns whether it was accepted."""
        try:
            image = await self._decoder.sanitize(data, self.limits)
        except FileRejected as exc:
            self.reject(FileError(name, exc.rule, exc.message))
            return False
        first = self._first_name_by_digest.setdefault(image.source_sha256, name)
        if first is not name:
            # The same photo twice adds no view, only a zero-baseline pair that confuses SfM.
            self.reject(FileError(name, Rule.DUPLICATE, f"identical to {first!r}"))
            return False
        path = self._workdir / f"{index:04d}{image.ext}"
        await asyncio.to_thread(path.write_bytes, image.data)
        self.accepted.append(AcceptedImage(index, name, path, replace(image, data=b"")))
        return True

    async def add_poses(self, files: Sequence[tuple[str, bytes]]) -> KnownPoses | None:
        """Check poses files (name, bytes) against the photos accepted so far: call it after the
        last photo. None when they are rejected."""
        photos = [PhotoSize(a.name, a.image.width, a.image.height) for a in self.accepted]
        # Up to 10 MB of JSON or 100 MB of text per file, parsed: not on the event loop.
        checked = await asyncio.to_thread(check_known_poses, files, photos)
        if isinstance(checked, FileError):
            self.reject(checked)
            return None
        return checked

    def raise_if_rejected(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


async def store_images(store: ObjectStore, job_id: uuid.UUID, accepted: list[AcceptedImage]) -> list[ImageInfo]:
    """Write the sanitised images under the job's image keys; all of them or none."""
    written: list[str] = []
    infos: list[ImageInfo] = []
    try:
        for item in accepted:
            key = keys.image(job_id, item.index, item.image.ext)
            await store.put_file(key, str(item.path), item.image.content_type)
            written.append(key)
            infos.append(
                ImageInfo(
                    key=key,
                    name=item.name,
                    width=item.image.width,
                    height=item.image.height,
                    bytes=item.path.stat().st_size,
                    focal_length_px=item.image.focal_length_px,
                    camera=item.image.camera,
                )
            )
    except BaseException:
        await delete_quietly(store, written)
        raise
    return infos


def poses_keys(job_id: uuid.UUID, poses: KnownPoses) -> tuple[str, dict[str, str]]:
    """The ``poses_key`` of the job's ImagesValidated and the key of each poses file: a
    transforms.json's own key, or for a COLMAP model the folder holding its files (ending in ``/``,
    like an SfM result's key)."""
    transforms = keys.poses(job_id)
    if not poses.is_colmap_model:
        return transforms, {name: transforms for name in poses.files}
    folder = transforms.rpartition("/")[0] + "/"
    return folder, {name: folder + name for name in poses.files}


async def store_poses(store: ObjectStore, job_id: uuid.UUID, poses: KnownPoses) -> tuple[str, list[str]]:
    """Write checked poses under the job, all files or none; the ``poses_key`` and the keys written."""
    poses_key, by_name = poses_keys(job_id, poses)
    written: list[str] = []
    try:
        for name, data in poses.files.items():
            content_type = "text/plain" if poses.is_colmap_model else "application/json"
            await store.put(by_name[name], data, content_type)
            written.append(by_name[name])
    except BaseException:
        await delete_quietly(store, written)
        raise
    return poses_key, written


async def delete_quietly(store: ObjectStore, object_keys: list[str]) -> None:
    """Best-effort cleanup: a failure here must not hide the error that made it necessary."""
    for key in object_keys:
        try:
            await store.delete(key)
        except Exception:
            log.exception("could not delete %s", key)
