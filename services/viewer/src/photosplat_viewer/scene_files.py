"""Which files of a job may be downloaded, and how they are named and typed."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from photosplat_libs.db.models import Job
from photosplat_libs.media import media_type



THUMBNAIL = "thumbnail"


@dataclass(frozen=True)
class SceneFile:
    format: str
    filename: str
    key: str
    size: int | None


def content_type(filename: str) -> str:
    return media_type(filename)


def scene_files(job: Job) -> list[SceneFile]:
    """The job's exports, named by the basename of their object key. The key was written by the
    trainer, so its basename is ours; a client's filename is only ever compared against these."""
    outputs = dict(job.outputs or {})
    thumbnail_key = job.statistics.thumbnail_key
    if thumbnail_key is not None and thumbnail_key not in outputs.values():
        # The trainer may report its thumbnail beside the exports rather than among them.
        outputs.setdefault(THUMBNAIL, thumbnail_key)
    files = []
    for fmt, key in sorted(outputs.items()):
        if not isinstance(key, str) or not key:
            continue
        size = (job.file_sizes or {}).get(fmt)
        files.append(SceneFile(fmt, posixpath.basename(key), key, size if isinstance(size, int) else None))
    return files


def thumbnail(job: Job) -> SceneFile | None:
    return next((f for f in scene_files(job) if f.format == THUMBNAIL), None)


def find_file(job: Job, filename: str) -> SceneFile | None:
    return next((f for f in scene_files(job) if f.filename == filename), None)
