"""Image validation and sanitising (docs/architecture.md §6). Pure functions: bytes in, sanitised bytes or a
:class:`FileRejected` naming the rule out. CPU-heavy; callers run :func:`sanitize` in a thread.

A client's filename is only ever a display name: it decides nothing but the extension check, and
never becomes a path or an object key.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError
from photosplat_libs.media import PHOTO_EXTENSIONS, PHOTO_TYPES

# Pillow decodes only these; everything else (TIFF, PSD, EPS, ...) is refused before any parser of
# it runs.
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
JPEG_QUALITY = 95
MAX_NAME_CHARS = 200

# EXIF tags kept for SfM (focal length and the camera it belongs to); everything else (GPS,
# dates, serial numbers, owner, maker notes, orientation once applied) is dropped.
_MAKE, _MODEL = ExifTags.Base.Make, ExifTags.Base.Model
_FOCAL, _FOCAL_35 = ExifTags.Base.FocalLength, ExifTags.Base.FocalLengthIn35mmFilm


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


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 64_000_000
    min_side: int = 100
    min_files: int = 3
    max_files: int = 1000
    # One multipart request; larger sets go through presigned uploads.
    max_request_bytes: int = 1024 * 1024 * 1024


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


@dataclass(frozen=True)
class SanitizedImage:
    data: bytes
    ext: str
    content_type: str
    width: int
    height: int
    focal_length_px: float | None
    camera: str | None
    # Of the uploaded bytes: spots the same file sent twice.
    source_sha256: str


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


def request_too_large(size: int, limits: Limits) -> FileError:
    return FileError(
        None,
        Rule.MAX_REQUEST_BYTES,
        f"the upload is over {limits.max_request_bytes} bytes, the most one multipart request may carry "
        f"({size} bytes received or declared): send large sets through POST /recon/uploads (one presigned URL per file)",
    )


def check_declared(name: str, size: int | None, limits: Limits) -> FileError | None:
    """The checks that need no content: extension and byte size (when known before reading)."""
    if extension(name) not in PHOTO_EXTENSIONS:
        allowed = ", ".join(sorted(PHOTO_EXTENSIONS))
        return FileError(name, Rule.EXTENSION, f"file type not accepted (allowed: {allowed})")
    if size is not None and size == 0:
        return FileError(name, Rule.EMPTY, "the file is empty")
    if size is not None and size > limits.max_file_bytes:
        return FileError(name, Rule.MAX_BYTES, f"{size} bytes exceeds the limit of {limits.max_file_bytes} bytes")
    return None


def check_uploaded_size(name: str, size: int, declared: int) -> FileError | None:
    if size != declared:
        return FileError(name, Rule.DECLARED_SIZE, f"{size} bytes were uploaded, {declared} were declared")
    return None


def sanitize(data: bytes, limits: Limits) -> SanitizedImage:
    """Fully decode an upload and re-encode its pixels with only SfM-relevant EXIF.

    Raises :class:`FileRejected` for anything that is not a complete, allowed, bounded image."""
    if not data:
        raise FileRejected(Rule.EMPTY, "the file is empty")
    if len(data) > limits.max_file_bytes:
        raise FileRejected(Rule.MAX_BYTES, f"{len(data)} bytes exceeds the limit of {limits.max_file_bytes} bytes")
    # Someone flipping this global would let half-received images through.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    img = _open(data)
    source_format = img.format
    _check_dimensions(img.size, limits)
    # One decoded copy of the pixels at a time (the pixel limit bounds it): the rotation and the
    # mode conversion replace it rather than keep the original beside the result.
    try:
        img.load()
        exif = img.getexif()
        ImageOps.exif_transpose(img, in_place=True)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise FileRejected(Rule.CORRUPT, f"the image could not be fully decoded ({exc})") from exc
    tags = _sfm_tags(exif)
    width, height = img.size
    ext = ".png" if source_format == "PNG" else ".jpg"
    img = _pixels_only(img)
    encoded = _encode(img, ext, tags.exif_bytes())
    img.close()
    return SanitizedImage(
        data=encoded,
        ext=ext,
        content_type=PHOTO_TYPES[ext],
        width=width,
        height=height,
        focal_length_px=tags.focal_length_px(width, height),
        camera=tags.camera,
        source_sha256=hashlib.sha256(data).hexdigest(),
    )


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(PILLOW_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (2x MAX_IMAGE_PIXELS), or its warning when a caller made warnings
        # errors: either way the declared size is far beyond anything we decode.
        raise FileRejected(Rule.MAX_PIXELS, f"the image declares too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise FileRejected(Rule.FORMAT, "not a JPEG, PNG or WebP image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise FileRejected(Rule.CORRUPT, f"the image header is invalid ({exc})") from exc


def _check_dimensions(size: tuple[int, int], limits: Limits) -> None:
    """From the header only, before a single pixel is decoded: a small file declaring a huge
    canvas (decompression bomb) is refused here."""
    width, height = size
    if width * height > limits.max_pixels:
        raise FileRejected(
            Rule.MAX_PIXELS, f"{width}x{height} = {width * height} pixels exceeds the limit of {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise FileRejected(Rule.MIN_SIDE, f"{width}x{height} is smaller than {limits.min_side} pixels on a side")


@dataclass(frozen=True)
class _SfmTags:
    make: str | None = None
    model: str | None = None
    focal_mm: float | None = None
    focal_35mm: int | None = None

    @property
    def camera(self) -> str | None:
        return " ".join(v for v in (self.make, self.model) if v) or None

    def focal_length_px(self, width: int, height: int) -> float | None:
        return self.focal_35mm / 36.0 * max(width, height) if self.focal_35mm else None

    def exif_bytes(self) -> bytes:
        exif = Image.Exif()
        if self.make:
            exif[_MAKE] = self.make
        if self.model:
            exif[_MODEL] = self.model
        details: dict[int, object] = {}
        if self.focal_mm is not None:
            details[_FOCAL] = TiffImagePlugin.IFDRational(self.focal_mm)
        if self.focal_35mm is not None:
            details[_FOCAL_35] = self.focal_35mm
        if details:
            exif[ExifTags.IFD.Exif] = details
        return exif.tobytes()


def _sfm_tags(exif: Image.Exif) -> _SfmTags:
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        # Malformed EXIF (a common camera bug) costs only the focal length, not the photo.
        details = {}
    focal_35 = _positive(details.get(_FOCAL_35))
    return _SfmTags(
        make=_clean_text(exif.get(_MAKE)),
        model=_clean_text(exif.get(_MODEL)),
        focal_mm=_positive(details.get(_FOCAL)),
        focal_35mm=min(int(round(focal_35)), 65535) if focal_35 else None,
    )


def _clean_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return "".join(c for c in value if c.isprintable()).strip()[:64] or None


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if 0 < number < 100_000 else None


def _pixels_only(img: Image.Image) -> Image.Image:
    """8-bit RGB or L pixels with no metadata left in ``info`` (PNG saving falls back to ``info``
    for the ICC profile, and other writers for XMP)."""
    source = img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    if img is not source:
        source.close()
    img.info = {}
    return img


def _encode(img: Image.Image, ext: str, exif: bytes) -> bytes:
    out = io.BytesIO()
    # WebP comes out as JPEG: SfM readers handle JPEG everywhere, WebP not always.
    if ext == ".png":
        img.save(out, "PNG", exif=exif, compress_level=6)
    else:
        img.save(out, "JPEG", exif=exif, quality=JPEG_QUALITY)
    return out.getvalue()
