"""Capture check and working copies: each photo is decoded once, scaled to the working resolution,
scored for blur and hashed for near-duplicates, before any SfM runs."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from photosplat_libs.media import PHOTO_EXTENSIONS

# Blur is judged against the set's own median (a sharp photo of a white wall has little detail):
# below this fraction a photo is flagged, below the next it is left out.
BLUR_WARN_RATIO = 0.3
BLUR_DROP_RATIO = 0.1
# Side of the grey image that blur and hashes are computed on, so scores do not depend on resolution.
_ANALYSIS_SIDE = 512
# Hamming distance (of 64 bits) up to which two photos count as near-duplicates.
DUPLICATE_MAX_BITS = 3
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Photo:
    """One input photo. ``name`` is its file name in the working folder and in the model."""

    path: Path
    name: str
    focal_length_px: float | None = None  # at the photo's own resolution
    camera: str | None = None  # EXIF make and model
    # The name the photographer gave it (hints at video frames); ``name`` if not known.
    original_name: str | None = None


@dataclass(frozen=True)
class Prepared:
    photo: Photo
    width: int  # of the working copy
    height: int
    scale: float  # working copy / original
    blur: float  # variance of the Laplacian; higher is sharper
    dhash: int


@dataclass
class CaptureReport:
    kept: list[Prepared]
    blurry_removed: list[str] = field(default_factory=list)
    blurry_flagged: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    missing_focal: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        out = []
        if self.blurry_removed:
            out.append(f"{len(self.blurry_removed)} very blurry photo(s) left out: {_names(self.blurry_removed)}")
        if self.blurry_flagged:
            out.append(f"{len(self.blurry_flagged)} photo(s) look blurry: {_names(self.blurry_flagged)}")
        if self.duplicates:
            pairs = ", ".join(f"{a}~{b}" for a, b in self.duplicates[:5])
            out.append(
                f"{len(self.duplicates)} near-duplicate pair(s) (no new viewpoint, step sideways between shots): {pairs}"
            )
        if self.missing_focal:
            out.append(
                f"{len(self.missing_focal)} photo(s) have no focal length in EXIF: it will be estimated, "
                "which is less reliable"
            )
        return out


def _names(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


_MAKE, _MODEL, _EXIF_IFD, _FOCAL_35, _ORIENTATION = 0x010F, 0x0110, 0x8769, 0xA405, 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # rotated by 90 degrees: width and height swap


def photos_from_folder(folder: Path) -> list[Photo]:
    """The photos of a local folder (CLI), with the focal length and camera their EXIF gives, the
    same way ingest derives them for the service (35 mm equivalent / 36 * longer side)."""
    photos = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS):
        with Image.open(path) as image:
            exif = image.getexif()
            focal_35 = exif.get_ifd(_EXIF_IFD).get(_FOCAL_35)
            make, model = exif.get(_MAKE), exif.get(_MODEL)
            camera = " ".join(str(v).strip() for v in (make, model) if v) or None
            focal = float(focal_35) / 36.0 * max(image.size) if focal_35 else None
        photos.append(Photo(path=path, name=path.name, focal_length_px=focal, camera=camera))
    return photos


def usable_cpus() -> int:
    """The CPUs this process may run on. Not ``os.cpu_count()`` nor COLMAP's ``-1`` (the host's
    count): in a container limited to 16 of 192 cores those oversubscribe the cores ~10x."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def prepare(photos: list[Photo], out_dir: Path, max_side: int | None) -> CaptureReport:
    """Write working copies to ``out_dir`` (scaled so the longer side is at most ``max_side``,
    EXIF orientation applied, no metadata) and check the capture."""
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = min(len(photos), usable_cpus()) or 1
    # PIL releases the GIL while decoding and resizing, so threads use all cores.
    with ThreadPoolExecutor(workers) as pool:
        prepared = list(pool.map(lambda p: _prepare_one(p, out_dir, max_side), photos))
    return _check(prepared, out_dir)


def _prepare_one(photo: Photo, out_dir: Path, max_side: int | None) -> Prepared:
    with Image.open(photo.path) as opened:
        stored = opened.size
        scale = max_side / max(stored) if max_side is not None and max(stored) > max_side else 1.0
        if scale < 1.0:
            # A JPEG then decodes at 1/2, 1/4 or 1/8 size (never below the target): a 12 MP phone
            # photo bound for 1600 px decodes several times faster than in full.
            opened.draft("RGB", (math.ceil(stored[0] * scale), math.ceil(stored[1] * scale)))
        swapped = opened.getexif().get(_ORIENTATION) in _SWAPPING_ORIENTATIONS
        image = ImageOps.exif_transpose(opened).convert("RGB")
    original = (stored[1], stored[0]) if swapped else stored
    if scale < 1.0:
        image = image.resize((round(original[0] * scale), round(original[1] * scale)), Image.Resampling.LANCZOS)
    image.save(out_dir / photo.name, quality=JPEG_QUALITY)
    grey = ImageOps.contain(image.convert("L"), (_ANALYSIS_SIDE, _ANALYSIS_SIDE))
    # Rounding makes the two axes' scales differ slightly; the focal prior uses the longer side's.
    return Prepared(
        photo=photo,
        width=image.size[0],
        height=image.size[1],
        scale=max(image.size) / max(original),
        blur=laplacian_variance(np.asarray(grey, np.float32)),
        dhash=difference_hash(grey),
    )


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low when edges are soft (motion or focus blur)."""
    lap = -4 * grey[1:-1, 1:-1] + grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
    return float(lap.var())


def difference_hash(grey: Image.Image) -> int:
    """64-bit dHash: signs of horizontal gradients of a 9x8 thumbnail (robust to exposure and scale)."""
    small = np.asarray(grey.resize((9, 8), Image.Resampling.BILINEAR), np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def _check(prepared: list[Prepared], out_dir: Path) -> CaptureReport:
    median = float(np.median([p.blur for p in prepared])) if prepared else 0.0
    report = CaptureReport(kept=[])
    for p in prepared:
        if p.blur < BLUR_DROP_RATIO * median and len(prepared) - len(report.blurry_removed) > 3:
            report.blurry_removed.append(p.photo.name)
            (out_dir / p.photo.name).unlink()
            continue
        if p.blur < BLUR_WARN_RATIO * median:
            report.blurry_flagged.append(p.photo.name)
        if p.photo.focal_length_px is None:
            report.missing_focal.append(p.photo.name)
        report.kept.append(p)
    report.duplicates = _near_duplicates(report.kept)
    return report


def _near_duplicates(prepared: list[Prepared]) -> list[tuple[str, str]]:
    if len(prepared) < 2:
        return []
    hashes = np.array([p.dhash for p in prepared], np.uint64)
    x = hashes[:, None] ^ hashes[None, :]
    # Popcount of 64-bit words via bytes (numpy has no portable popcount before 2.0).
    bits = np.unpackbits(x.view(np.uint8).reshape(len(prepared), len(prepared), 8), axis=-1).sum(axis=-1)
    i, j = np.nonzero(np.triu(bits <= DUPLICATE_MAX_BITS, k=1))
    return [(prepared[a].photo.name, prepared[b].photo.name) for a, b in zip(i, j, strict=True)]
