"""The file types the system handles, named once: the photo formats accepted, and the media type
each file goes to the object store and to browsers with."""

from __future__ import annotations

import posixpath

# Photos: what ingest accepts and SfM reads (Pillow decodes exactly these formats).
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
PHOTO_EXTENSIONS = frozenset(PHOTO_TYPES)
# Videos: one phone video instead of photos (MP4 or QuickTime, both ISO base media files); the
# colmap stage extracts the frames.
VIDEO_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime"}
VIDEO_EXTENSIONS = frozenset(VIDEO_TYPES)

# Scene files are binary blobs to a browser; the PLY too (text/plain would invite showing it inline).
_TYPES = {
    **PHOTO_TYPES,
    ".splat": "application/octet-stream",
    ".ksplat": "application/octet-stream",
    ".spz": "application/octet-stream",
    ".sog": "application/octet-stream",
    ".ply": "application/octet-stream",
    ".json": "application/json",
}


def media_type(name: str) -> str:
    """The media type of a file by its extension (octet-stream for any other)."""
    return _TYPES.get(posixpath.splitext(name)[1].lower(), "application/octet-stream")
