"""Which poses files a job brings: one NeRF-style ``transforms.json`` (:mod:`.poses`) or a COLMAP
text model, ``cameras.txt`` + ``images.txt`` (+ ``points3D.txt``) (:mod:`.colmap_model`). The files
are told apart by name; a lone file of any other name is a transforms.json. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from photosplat_ingest.validation.colmap_model import (
    CAMERAS,
    IMAGES,
    MAX_MODEL_FILE_BYTES,
    MODEL_FILES,
    POINTS,
    UNREAD_FILES,
    PhotoSize,
    check_colmap_model,
)
from photosplat_ingest.validation.poses import MAX_POSES_BYTES, POSES_FILE, check_poses
from photosplat_ingest.validation.rules import FileError, Rule

_WHICH = (
    f"poses are one {POSES_FILE}, or the text files of a COLMAP model: {CAMERAS}, {IMAGES} "
    f"and optionally {POINTS} (e.g. from colmap model_converter --output_type TXT; "
    f"{' and '.join(UNREAD_FILES)} may come too and are not used)"
)


@dataclass(frozen=True)
class KnownPoses:
    """Checked poses as they are to be stored, by file name."""

    files: dict[str, bytes]

    @property
    def is_colmap_model(self) -> bool:
        return IMAGES in self.files


def poses_names(names: Sequence[str]) -> list[str] | FileError:
    """The name each poses file is known by (a COLMAP model's files by their COLMAP names, a lone
    other file as transforms.json), or why these files are not a set of poses."""
    by_lower = {name.lower(): name for name in MODEL_FILES}
    canonical = [by_lower.get(PurePosixPath(name).name.lower()) for name in names]
    if len(names) == 1 and canonical[0] is None:
        return [POSES_FILE]
    if None in canonical:
        stray = names[canonical.index(None)]
        return FileError(stray[:200], Rule.POSES, f"not a file of a COLMAP model: {_WHICH}")
    model = [name for name in canonical if name is not None]
    for name in MODEL_FILES:
        if model.count(name) > 1:
            return FileError(name, Rule.POSES, f"given {model.count(name)} times: {_WHICH}")
    missing = [name for name in (CAMERAS, IMAGES) if name not in model]
    if missing:
        return FileError(missing[0], Rule.POSES, f"missing: {_WHICH}")
    return model


def poses_size_problem(name: str, size: int) -> FileError | None:
    """The checks of a poses file (by its known name) that need no content."""
    limit = MAX_POSES_BYTES if name == POSES_FILE else MAX_MODEL_FILE_BYTES
    if size == 0:
        return FileError(name, Rule.POSES, "the file is empty")
    if size > limit:
        return FileError(name, Rule.POSES, f"{size} bytes exceeds the limit of {limit} bytes for a poses file")
    return None


def check_known_poses(files: Sequence[tuple[str, bytes]], photos: Sequence[PhotoSize]) -> KnownPoses | FileError:
    """Poses files as uploaded (name, bytes) against the accepted photos: what to store, or the
    first problem."""
    names = poses_names([name for name, _ in files])
    if isinstance(names, FileError):
        return names
    for name, (_, data) in zip(names, files, strict=True):
        if problem := poses_size_problem(name, len(data)):
            return problem
    if names == [POSES_FILE]:
        data = files[0][1]
        return check_poses(data, [p.name for p in photos]) or KnownPoses({POSES_FILE: data})
    read = {name: data for name, (_, data) in zip(names, files, strict=True) if name not in UNREAD_FILES}
    model = check_colmap_model(read, photos)
    return model if isinstance(model, FileError) else KnownPoses(model)
