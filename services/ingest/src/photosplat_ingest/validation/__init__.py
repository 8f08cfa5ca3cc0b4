"""Validating the files of a request (docs/architecture.md §6): the rules and the checks that need no
content (:mod:`.rules`), decoding and sanitising photos (:mod:`.photos`), and a client's poses files
(:mod:`.poses_files`: a transforms.json, :mod:`.poses`, or a COLMAP text model, :mod:`.colmap_model`),
and a video sent instead of photos (:mod:`.video`).
Pure functions; the callers decide where they run."""

from __future__ import annotations

from photosplat_ingest.validation.colmap_model import MAX_MODEL_FILE_BYTES, MODEL_FILES, PhotoSize
from photosplat_ingest.validation.photos import SanitizedImage, sanitize
from photosplat_ingest.validation.poses import MAX_POSES_BYTES, MIN_POSED_PHOTOS, POSES_FILE, check_poses
from photosplat_ingest.validation.poses_files import (
    KnownPoses,
    check_known_poses,
    poses_names,
    poses_size_problem,
)
from photosplat_ingest.validation.rules import (
    FileError,
    FileRejected,
    Limits,
    Rule,
    ValidationFailed,
    check_count,
    check_declared,
    check_uploaded_size,
    check_video_request,
    display_name,
    extension,
    is_video,
    request_too_large,
)
from photosplat_ingest.validation.video import CheckedVideo, check_video

__all__ = [
    "MAX_MODEL_FILE_BYTES",
    "MAX_POSES_BYTES",
    "MIN_POSED_PHOTOS",
    "MODEL_FILES",
    "POSES_FILE",
    "CheckedVideo",
    "FileError",
    "FileRejected",
    "KnownPoses",
    "Limits",
    "PhotoSize",
    "Rule",
    "SanitizedImage",
    "ValidationFailed",
    "check_count",
    "check_declared",
    "check_known_poses",
    "check_poses",
    "check_uploaded_size",
    "check_video",
    "check_video_request",
    "display_name",
    "extension",
    "is_video",
    "poses_names",
    "poses_size_problem",
    "request_too_large",
    "sanitize",
]
