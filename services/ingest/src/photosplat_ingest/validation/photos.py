"""Image validation and sanitising (docs/architecture.md §6). Pure functions: bytes in, sanitised bytes or a
:class:`~.rules.FileRejected` naming the rule out. CPU-heavy; callers run :func:`sanitize` in a thread.

The decode limits come first: the pixel count and sides are checked from the header, before a
single pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

from photosplat_libs.media import PHOTO_TYPES

from photosplat_ingest.validation.rules import FileRejected, Limits, Rule

# Pillow decodes only these; everything else (TIFF, PSD, EPS, ...) is refused before any parser of
# it runs.
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
JPEG_QUALITY = 95

# EXIF tags kept for SfM (focal length and the camera it belongs to); everything else (GPS,
# dates, serial numbers, owner, maker notes, orientation once applied) is dropped.
_MAKE, _MODEL = ExifTags.Base.Make, ExifTags.Base.Model
_FOCAL, _FOCAL_35 = ExifTags.Base.FocalLength, ExifTags.Base.FocalLengthIn35mmFilm



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
