"""Checking a client's poses file (a NeRF-style transforms.json) against the photos it came with.
Pure: bytes in, a :class:`~.rules.FileError` or None out."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import PurePosixPath

import numpy as np

from photosplat_ingest.validation.rules import FileError, Rule

POSES_FILE = "transforms.json"
MAX_POSES_BYTES = 10 * 1024 * 1024
# SfM needs three views; so does a job that brings its own cameras.
MIN_POSED_PHOTOS = 3
# Every number photosplat_libs.transforms reads, with the values it can use. A horizontal field of
# view this close to 0 or pi gives an infinite or zero focal length.
_POSITIVE_FIELDS = ("fl_x", "fl_y", "w", "h")
_REAL_FIELDS = ("cx", "cy")
_MIN_ANGLE = 1e-6
# Capture apps round their matrices; a rotation further than this from orthonormal is not a pose.
_ROTATION_TOLERANCE = 1e-2
# Room for georeferenced (UTM) coordinates; far beyond, scene statistics overflow.
_MAX_TRANSLATION = 1e9


class _BadPoses(ValueError):
    pass


def check_poses(data: bytes, photo_names: Sequence[str]) -> FileError | None:
    """A NeRF-style ``transforms.json``: a ``frames`` list, each with a ``file_path`` naming one of
    the photos (by file name, any folder and extension; one frame per photo) and a 4x4 rigid
    ``transform_matrix``, and a focal length (``camera_angle_x`` or ``fl_x``, shared or per frame).
    Every number the camera reader uses must be finite (a JSON ``true`` is not a number); focal
    lengths and sizes positive."""
    try:
        _check_poses(data, photo_names)
    except _BadPoses as exc:
        return FileError(POSES_FILE, Rule.POSES, str(exc))
    return None


def _check_poses(data: bytes, photo_names: Sequence[str]) -> None:
    if len(data) > MAX_POSES_BYTES:
        raise _BadPoses(f"{len(data)} bytes exceeds the limit of {MAX_POSES_BYTES} bytes for a poses file")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _BadPoses(f"not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise _BadPoses("nested too deeply to be a transforms.json") from exc
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not frames:
        raise _BadPoses('no "frames" list: expected a NeRF-style transforms.json')
    _check_intrinsics(doc, "the file")
    stems = {PurePosixPath(name).stem for name in photo_names}
    frame_of_photo: dict[str, int] = {}
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise _BadPoses(f'frame {i} has no "file_path"')
        where = f'frame {i} ({frame["file_path"][:100]})'
        _check_intrinsics(frame, where)
        _check_pose(frame.get("transform_matrix"), where)
        if "fl_x" not in frame and "camera_angle_x" not in frame and "fl_x" not in doc and "camera_angle_x" not in doc:
            raise _BadPoses(f'{where} has no focal length ("camera_angle_x" or "fl_x")')
        stem = PurePosixPath(frame["file_path"]).stem
        if stem in stems and (first := frame_of_photo.setdefault(stem, i)) != i:
            raise _BadPoses(f"{where} names the same photo as frame {first}")
    if len(frame_of_photo) < MIN_POSED_PHOTOS:
        raise _BadPoses(
            f"its frames name {len(frame_of_photo)} of the uploaded photos; at least {MIN_POSED_PHOTOS} must "
            'match by file name (e.g. file_path "images/IMG_0001" for IMG_0001.jpg)'
        )


def _real(value: object) -> float | None:
    """``value`` as a finite float, or None: bools, strings, nulls, NaN, infinities and integers
    too large for a float are not numbers a camera can use."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _check_intrinsics(fields: dict[str, object], where: str) -> None:
    def bad(name: str, rule: str) -> _BadPoses:
        return _BadPoses(f'{where}: "{name}" must be {rule}, not {str(fields[name])[:40]!r}')

    for name in (*_POSITIVE_FIELDS, *_REAL_FIELDS, "camera_angle_x"):
        if name not in fields:
            continue
        number = _real(fields[name])
        if number is None:
            raise bad(name, "a finite number")
        if name in _POSITIVE_FIELDS and number <= 0:
            raise bad(name, "a positive number")
        if name == "camera_angle_x" and not _MIN_ANGLE <= number <= math.pi - _MIN_ANGLE:
            raise bad(name, "an angle in radians between 0 and pi")


def _check_pose(matrix: object, where: str) -> None:
    """A camera-to-world rigid transform whose inverse (what SfM uses) is finite."""
    problem = f'{where} has no 4x4 "transform_matrix" of finite numbers'
    if not (isinstance(matrix, list) and len(matrix) == 4 and all(isinstance(r, list) and len(r) == 4 for r in matrix)):
        raise _BadPoses(problem)
    numbers = [_real(v) for row in matrix for v in row]
    if any(v is None for v in numbers):
        raise _BadPoses(problem)
    pose = np.array(numbers, dtype=float).reshape(4, 4)
    rotation = pose[:3, :3]
    with np.errstate(all="ignore"):
        rigid = (
            np.allclose(pose[3], (0, 0, 0, 1))
            and np.allclose(rotation.T @ rotation, np.eye(3), atol=_ROTATION_TOLERANCE)
            and np.linalg.det(rotation) > 0
        )
    if not rigid:
        raise _BadPoses(f'{where}: "transform_matrix" is not a rigid pose (a rotation and a translation)')
    if np.abs(pose[:3, 3]).max() > _MAX_TRANSLATION:
        raise _BadPoses(f'{where}: "transform_matrix" puts the camera over {_MAX_TRANSLATION:g} from the origin')
