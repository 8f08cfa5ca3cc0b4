"""Checking a client's COLMAP text model (``cameras.txt``, ``images.txt``, optional ``points3D.txt``)
against the photos it came with, and writing it back in a form the colmap stage reads safely.

Every value is checked here, so a bad model is a 400 naming the file, its line and the rule. What is
stored is rewritten from the parsed values: cameras and poses of the uploaded photos (the images
that name none are left out), the 3D points' positions and colours. 2D keypoints and point tracks
are dropped: training uses neither, and references between them are what a broken model gets wrong
(a track naming a missing image stops a C++ reader rather than raising). Pure: bytes in, bytes or
a :class:`~.rules.FileError` out.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from photosplat_ingest.validation.rules import FileError, Rule

CAMERAS, IMAGES, POINTS = "cameras.txt", "images.txt", "points3D.txt"
# COLMAP 3.12 and later also write these; images.txt holds every registered image's pose, so they
# are taken and not read.
UNREAD_FILES = ("rigs.txt", "frames.txt")
MODEL_FILES = (CAMERAS, IMAGES, POINTS, *UNREAD_FILES)
# images.txt carries every keypoint of every photo: tens of MB for a few hundred photos.
MAX_MODEL_FILE_BYTES = 100 * 1024 * 1024
# COLMAP's camera models: how many parameters, how many of them (first) are focal lengths.
CAMERA_MODELS = {
    "SIMPLE_PINHOLE": (3, 1), "PINHOLE": (4, 2), "SIMPLE_RADIAL": (4, 1), "SIMPLE_RADIAL_FISHEYE": (4, 1),
    "RADIAL": (5, 1), "RADIAL_FISHEYE": (5, 1), "OPENCV": (8, 2), "OPENCV_FISHEYE": (8, 2),
    "FULL_OPENCV": (12, 2), "FOV": (5, 2), "THIN_PRISM_FISHEYE": (12, 2), "RAD_TAN_THIN_PRISM_FISHEYE": (16, 2),
    "SIMPLE_DIVISION": (4, 1), "DIVISION": (5, 2), "SIMPLE_FISHEYE": (3, 1), "FISHEYE": (4, 2), "EUCM": (6, 2),
}
# A camera may be of the photos at another size (a model of the full-size originals), not of
# another shape: the colmap stage rescales it to the photo.
_ASPECT_TOLERANCE = 0.01
# Capture tools round their numbers; a quaternion further than this from unit length is not a rotation.
_UNIT_TOLERANCE = 1e-2
_MAX_COORDINATE = 1e9
_MIN_POSED_PHOTOS = 3


@dataclass(frozen=True)
class PhotoSize:
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class _Camera:
    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass(frozen=True)
class _Image:
    pose: tuple[float, ...]  # qw qx qy qz tx ty tz, the quaternion normalised
    camera_id: str
    name: str


class _Bad(ValueError):
    def __init__(self, file: str, message: str) -> None:
        super().__init__(message)
        self.file = file


def check_colmap_model(files: dict[str, bytes], photos: Sequence[PhotoSize]) -> dict[str, bytes] | FileError:
    """``files`` by their COLMAP names; the model as it is to be stored (all three files), or the
    first problem found."""
    try:
        cameras = _read_cameras(files[CAMERAS])
        images = _match_photos(_read_images(files[IMAGES], cameras), cameras, photos)
        points = _read_points(files[POINTS]) if POINTS in files else []
    except _Bad as exc:
        return FileError(exc.file, Rule.POSES, str(exc))
    used = {image.camera_id for image in images}
    return {
        CAMERAS: _write_cameras({k: c for k, c in cameras.items() if k in used}),
        IMAGES: _write_images(images),
        POINTS: _text("POINT3D_ID X Y Z R G B ERROR TRACK[] (no tracks kept)", points),
    }


def _lines(data: bytes, file: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line of ``data``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Bad(file, f"not UTF-8 text ({exc})") from exc
    # Line by line from the one decoded copy: a list of the lines would hold it twice.
    for number, line in enumerate(io.StringIO(text), start=1):
        yield number, line.strip()


def _number(token: str, file: str, where: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or abs(value) > _MAX_COORDINATE:
        raise _Bad(file, f"{where}: {what} must be a finite number, not {token[:40]!r}")
    return value


def _digits(token: str) -> bool:
    # isdigit alone lets through superscripts and other scripts' digits, which int() refuses.
    return token.isascii() and token.isdigit() and len(token) <= 20


def _integer(token: str, file: str, where: str, what: str, low: int = 0, high: int = 2**32 - 2) -> int:
    if not _digits(token) or not low <= int(token) <= high:
        raise _Bad(file, f"{where}: {what} must be a whole number from {low} to {high}, not {token[:40]!r}")
    return int(token)


def _read_cameras(data: bytes) -> dict[str, _Camera]:
    """``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]`` per line, keyed by the id as written."""
    cameras: dict[str, _Camera] = {}
    for number, line in _lines(data, CAMERAS):
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        tokens = line.split()
        if len(tokens) < 4:
            raise _Bad(CAMERAS, f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
        camera_id, model = str(_integer(tokens[0], CAMERAS, where, "CAMERA_ID")), tokens[1].upper()
        if model not in CAMERA_MODELS:
            raise _Bad(CAMERAS, f"{where}: camera model {tokens[1][:40]!r} is not one of {', '.join(CAMERA_MODELS)}")
        count, focals = CAMERA_MODELS[model]
        if len(tokens) != 4 + count:
            raise _Bad(CAMERAS, f"{where}: a {model} camera has {count} parameters, not {len(tokens) - 4}")
        width = _integer(tokens[2], CAMERAS, where, "WIDTH", low=1, high=1_000_000)
        height = _integer(tokens[3], CAMERAS, where, "HEIGHT", low=1, high=1_000_000)
        params = tuple(_number(t, CAMERAS, where, "every parameter") for t in tokens[4:])
        if min(params[:focals]) <= 0:
            raise _Bad(CAMERAS, f"{where}: the focal length must be positive")
        if camera_id in cameras:
            raise _Bad(CAMERAS, f"{where}: camera {camera_id} is defined twice")
        cameras[camera_id] = _Camera(model, width, height, params)
    if not cameras:
        raise _Bad(CAMERAS, "no cameras: expected lines of CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
    return cameras


def _read_images(data: bytes, cameras: dict[str, _Camera]) -> list[tuple[int, _Image]]:
    """(line number, image) of each ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` line; as COLMAP
    reads the file, the line after each is its POINTS2D line, whatever it holds."""
    images: list[tuple[int, _Image]] = []
    ids: set[int] = set()
    lines = _lines(data, IMAGES)
    for number, line in lines:
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        tokens = line.split()
        if len(tokens) != 10:
            raise _Bad(IMAGES, f"{where}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME (10 values)")
        image_id = _integer(tokens[0], IMAGES, where, "IMAGE_ID")
        if image_id in ids:
            raise _Bad(IMAGES, f"{where}: image {image_id} is defined twice")
        ids.add(image_id)
        q = [_number(t, IMAGES, where, "every value of the pose") for t in tokens[1:5]]
        t = [_number(t, IMAGES, where, "every value of the pose") for t in tokens[5:8]]
        norm = math.sqrt(sum(v * v for v in q))
        if abs(norm - 1.0) > _UNIT_TOLERANCE:
            raise _Bad(IMAGES, f"{where}: QW QX QY QZ is not a rotation (a unit quaternion; its length is {norm:.4g})")
        camera_id = str(int(tokens[8])) if _digits(tokens[8]) else None
        if camera_id not in cameras:
            raise _Bad(IMAGES, f"{where}: camera {tokens[8][:40]!r} is not in {CAMERAS}")
        # By file name only: the colmap stage matches it to its copy of the photo by stem.
        name = PurePosixPath(tokens[9].replace("\\", "/")).name
        images.append((number, _Image((*(v / norm for v in q), *t), camera_id, name)))
        next(lines, None)  # its POINTS2D line: keypoints are not kept
    return images


def _match_photos(
    images: list[tuple[int, _Image]], cameras: dict[str, _Camera], photos: Sequence[PhotoSize]
) -> list[_Image]:
    """The images that name an uploaded photo (by file name, any folder and extension), each
    camera checked against the size of the photos it took."""
    by_stem = {PurePosixPath(p.name).stem: p for p in photos}
    line_of_photo: dict[str, int] = {}
    size_of_camera: dict[str, tuple[int, int]] = {}
    matched = []
    for number, image in images:
        photo = by_stem.get(PurePosixPath(image.name).stem)
        if photo is None:
            continue
        if (first := line_of_photo.setdefault(photo.name, number)) != number:
            raise _Bad(IMAGES, f"line {number} names the same photo ({photo.name[:100]}) as line {first}")
        camera = cameras[image.camera_id]
        if abs(camera.width * photo.height - camera.height * photo.width) > _ASPECT_TOLERANCE * camera.width * photo.height:
            raise _Bad(
                CAMERAS,
                f"camera {image.camera_id} is {camera.width}x{camera.height}, but photo {photo.name[:100]} "
                f"({IMAGES} line {number}) is {photo.width}x{photo.height}: not the same shape",
            )
        if size_of_camera.setdefault(image.camera_id, (photo.width, photo.height)) != (photo.width, photo.height):
            raise _Bad(CAMERAS, f"camera {image.camera_id} is used by photos of different sizes")
        matched.append(image)
    if len(matched) < _MIN_POSED_PHOTOS:
        raise _Bad(
            IMAGES,
            f"its images name {len(matched)} of the uploaded photos; at least {_MIN_POSED_PHOTOS} must match by "
            "file name (e.g. NAME IMG_0001.JPG for IMG_0001.jpg)",
        )
    return matched


def _read_points(data: bytes) -> list[str]:
    """``POINT3D_ID X Y Z R G B ERROR TRACK[]`` lines, renumbered and without their tracks (not read)."""
    rows = []
    for number, line in _lines(data, POINTS):
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        tokens = line.split(maxsplit=8)
        if len(tokens) < 8:
            raise _Bad(POINTS, f"{where}: expected POINT3D_ID X Y Z R G B ERROR TRACK[]")
        _integer(tokens[0], POINTS, where, "POINT3D_ID", high=2**64 - 2)
        xyz = " ".join(repr(_number(t, POINTS, where, "X Y Z")) for t in tokens[1:4])
        rgb = " ".join(str(_integer(t, POINTS, where, "R G B", high=255)) for t in tokens[4:7])
        error = _number(tokens[7], POINTS, where, "ERROR")
        rows.append(f"{len(rows) + 1} {xyz} {rgb} {error!r}")
    return rows


def _write_cameras(cameras: dict[str, _Camera]) -> bytes:
    rows = [
        f"{camera_id} {c.model} {c.width} {c.height} {' '.join(repr(p) for p in c.params)}"
        for camera_id, c in cameras.items()
    ]
    return _text("CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]", rows)


def _write_images(images: list[_Image]) -> bytes:
    # Each image line is followed by its (empty) POINTS2D line.
    rows = [
        f"{i} {' '.join(repr(v) for v in image.pose)} {image.camera_id} {image.name}\n"
        for i, image in enumerate(images, start=1)
    ]
    return _text("IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, then POINTS2D[] (none kept)", rows)


def _text(header: str, rows: list[str]) -> bytes:
    return "".join([f"# {header}\n", *(row + "\n" for row in rows)]).encode()
