"""Image validation and sanitising (DESIGN §6). Pure functions: bytes in, sanitised bytes or a
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

from PIL import ExifTags, Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

# Pillow decodes only these; everything else (TIFF, PSD, EPS, ...) is refused before any parser of
# it runs.
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
ALLOWED_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp"})
CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}
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
    OPTIONS = "options"
    POSES = "poses"


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 120_000_000
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


def check_poses(data: bytes, photo_names: Sequence[str]) -> FileError | None:
    """A NeRF-style ``transforms.json``: a ``frames`` list, each with a ``file_path`` naming one of
    the photos (by file name, any folder and extension) and a 4x4 ``transform_matrix``, and a focal
    length (``camera_angle_x`` or ``fl_x``, shared or per frame)."""

    def bad(message: str) -> FileError:
        return FileError(POSES_FILE, Rule.POSES, message)

    if len(data) > MAX_POSES_BYTES:
        return bad(f"{len(data)} bytes exceeds the limit of {MAX_POSES_BYTES} bytes for a poses file")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return bad(f"not valid JSON ({exc})")
    frames = doc.get("frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not frames:
        return bad('no "frames" list: expected a NeRF-style transforms.json')
    stems = {PurePosixPath(name).stem for name in photo_names}
    matched = 0
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            return bad(f'frame {i} has no "file_path"')
        matrix = frame.get("transform_matrix")
        if not (
            isinstance(matrix, list)
            and len(matrix) == 4
            and all(isinstance(row, list) and len(row) == 4 for row in matrix)
            and all(isinstance(v, int | float) and math.isfinite(v) for row in matrix for v in row)
        ):
            return bad(f'frame {i} ({frame["file_path"]}) has no 4x4 "transform_matrix" of finite numbers')
        intrinsics = {**doc, **frame}
        if not any(isinstance(intrinsics.get(k), int | float) and intrinsics[k] > 0 for k in ("fl_x", "camera_angle_x")):
            return bad(f'frame {i} ({frame["file_path"]}) has no focal length ("camera_angle_x" or "fl_x")')
        matched += PurePosixPath(frame["file_path"]).stem in stems
    if matched < MIN_POSED_PHOTOS:
        return bad(
            f"its frames name {matched} of the uploaded photos; at least {MIN_POSED_PHOTOS} must match "
            "by file name (e.g. file_path \"images/IMG_0001\" for IMG_0001.jpg)"
        )
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
    if extension(name) not in ALLOWED_EXTENSIONS:
        allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
        return FileError(name, Rule.EXTENSION, f"file type not accepted (allowed: {allowed})")
    if size is not None and size == 0:
        return FileError(name, Rule.EMPTY, "the file is empty")
    if size is not None and size > limits.max_file_bytes:
        return FileError(name, Rule.MAX_BYTES, f"{size} bytes exceeds the limit of {limits.max_file_bytes} bytes")
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
    try:
        img.load()
        exif = img.getexif()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise FileRejected(Rule.CORRUPT, f"the image could not be fully decoded ({exc})") from exc
    tags = _sfm_tags(exif)
    width, height = img.size
    ext = ".png" if source_format == "PNG" else ".jpg"
    encoded = _encode(_pixels_only(img), ext, tags.exif_bytes())
    return SanitizedImage(
        data=encoded,
        ext=ext,
        content_type=CONTENT_TYPES[ext],
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
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
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
