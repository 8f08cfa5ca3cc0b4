"""The rules a request's files are judged by, how a refusal is told, and the checks that need no
file content (names, counts, declared sizes).

A client's filename is only ever a display name: it decides nothing but the extension check, and
never becomes a path or an object key.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from photosplat_libs.media import PHOTO_EXTENSIONS, VIDEO_EXTENSIONS

MAX_NAME_CHARS = 200


class Rule(StrEnum):
    MIN_FILES = "min_files"
    MAX_FILES = "max_files"
    MAX_REQUEST_BYTES = "max_request_bytes"
    EXTENSION = "extension"
    EMPTY = "empty"
    MAX_BYTES = "max_bytes"
    FORMAT = "format"
    MAX_PIXELS = "max_pixels"
    MIN_SIDE = "min_side"
    CORRUPT = "corrupt"
    DUPLICATE = "duplicate"
    MISSING = "missing"
    DECLARED_SIZE = "declared_size"
    OPTIONS = "options"
    POSES = "poses"
    CALLBACK_URL = "callback_url"
    # a video upload
    VIDEO = "video"
    CODEC = "codec"
    DURATION = "duration"


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 64_000_000
    min_side: int = 100
    min_files: int = 3
    max_files: int = 1000
    # One multipart request; larger sets go through presigned uploads.
    max_request_bytes: int = 1024 * 1024 * 1024
    # One video instead of photos (see validation/video.py).
    max_video_bytes: int = 2 * 1024 * 1024 * 1024
    min_video_seconds: float = 2.0
    max_video_seconds: float = 300.0
    min_video_side: int = 240
    max_video_pixels: int = 4096 * 2160


@dataclass(frozen=True)
class FileError:
    # None for a rule about the whole request (file count).
    file: str | None
    rule: Rule
    message: str

    def as_dict(self) -> dict[str, str | None]:
        return {"file": self.file, "rule": str(self.rule), "message": self.message}


class FileRejected(Exception):
    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(message)
        self.rule, self.message = rule, message


class ValidationFailed(Exception):
    """A request with at least one bad file; ``errors`` names every one."""

    def __init__(self, errors: list[FileError]) -> None:
        count = sum(1 for e in errors if e.file is not None)
        message = f"{count} file(s) rejected" if count else errors[0].message
        super().__init__(message)
        self.message, self.errors = message, errors

    def detail(self) -> dict[str, object]:
        return {"message": self.message, "errors": [e.as_dict() for e in self.errors]}



def display_name(raw: str | None, index: int) -> str:
    """A printable, bounded version of a client filename, for messages and the UI only."""
    cleaned = "".join(c for c in (raw or "") if unicodedata.category(c)[0] != "C").strip()
    return cleaned[:MAX_NAME_CHARS] or f"file #{index + 1}"


def extension(name: str) -> str:
    """Lower-case extension of a display name ('' if none); what follows the last dot only."""
    head, dot, tail = name.rpartition(".")
    return f".{tail.lower()}" if dot and head and tail else ""


def check_count(count: int, limits: Limits) -> FileError | None:
    if count < limits.min_files:
        return FileError(
            None,
            Rule.MIN_FILES,
            f"{count} photo(s) given: at least {limits.min_files} are needed "
            "(Structure-from-Motion needs at least 3 overlapping views)",
        )
    if count > limits.max_files:
        return FileError(None, Rule.MAX_FILES, f"{count} photos given: at most {limits.max_files} are accepted")
    return None



def request_too_large(size: int, limits: Limits) -> FileError:
    return FileError(
        None,
        Rule.MAX_REQUEST_BYTES,
        f"the upload is over {limits.max_request_bytes} bytes, the most one multipart request may carry "
        f"({size} bytes received or declared): send large sets through POST /recon/uploads (one presigned URL per file)",
    )


def check_declared(name: str, size: int | None, limits: Limits) -> FileError | None:
    """The checks that need no content: extension and byte size (when known before reading)."""
    video = is_video(name)
    if extension(name) not in PHOTO_EXTENSIONS and not video:
        allowed = ", ".join(sorted(PHOTO_EXTENSIONS))
        videos = " or ".join(sorted(VIDEO_EXTENSIONS))
        return FileError(name, Rule.EXTENSION, f"file type not accepted (allowed: {allowed}; or one {videos} video)")
    if size is not None and size == 0:
        return FileError(name, Rule.EMPTY, "the file is empty")
    limit = limits.max_video_bytes if video else limits.max_file_bytes
    if size is not None and size > limit:
        return FileError(name, Rule.MAX_BYTES, f"{size} bytes exceeds the limit of {limit} bytes")
    return None


def is_video(name: str) -> bool:
    """Whether a display name is a video's (its content is checked all the same)."""
    return extension(name) in VIDEO_EXTENSIONS


def check_video_request(names: list[str], with_poses: bool) -> FileError | None:
    """A video comes alone: one file, no photos and no poses (those name photos). None when the
    request holds no video at all."""
    videos = [name for name in names if is_video(name)]
    if not videos:
        return None
    if len(names) > 1:
        return FileError(
            videos[0], Rule.VIDEO, f"a video comes alone: send one video, or photos ({len(names)} files were sent)"
        )
    if with_poses:
        return FileError(videos[0], Rule.VIDEO, "known poses name photos: they cannot come with a video")
    return None


def check_uploaded_size(name: str, size: int, declared: int) -> FileError | None:
    if size != declared:
        return FileError(name, Rule.DECLARED_SIZE, f"{size} bytes were uploaded, {declared} were declared")
    return None
