"""PlayCanvas's SOG ("Spatially Ordered Gaussians"), meta version 2, bundled as one zip (``scene.sog``).

Written as PlayCanvas's splat-transform writes it (``write-sog.ts``, read back by its ``read-sog.ts``)
and as Spark 2.2 reads it (a zip whose ``meta.json`` names lossless WebP images; Spark's file type
``pcsogszip``). Every per-Gaussian image holds one Gaussian per pixel, row-major, ``count`` of them in
a ``W x H`` texture (``W = ceil(sqrt(count) / 4) * 4``, ``H = ceil(count / W / 4) * 4``), RGBA:

* ``means_l`` / ``means_u``: the low and high byte of 16-bit positions, each axis mapped linearly
  between ``meta.means.mins`` and ``maxs`` after ``sign(v) * ln(|v| + 1)`` (fine near the middle of the
  scene, coarse far out, where a viewer cannot tell).
* ``quats``: "smallest three": the other three components of the normalised w-x-y-z quaternion,
  sign-flipped so the largest is positive, times sqrt(2), as ``255 * (v / 2 + 0.5)``; alpha is
  ``252 + index`` of the largest one. Each Gaussian is stored in whichever of its 24 equivalent
  frames (cube rotations with its scales permuted to match) keeps its shape best at 8 bits
  (``sog_rotations.py``).
* ``scales``: three indices into ``meta.scales.codebook`` (256 log-scales shared by the three axes).
* ``sh0``: three indices into ``meta.sh0.codebook`` (256 DC coefficients shared by R, G and B), then
  ``sigmoid(opacity) * 255``.
* ``shN_labels`` (degree > 0): a 16-bit index (R low, G high) into a palette of SH-rest vectors;
  ``shN_centroids`` holds that palette, 64 entries a row, each entry ``K`` pixels wide (``K`` the
  coefficients per channel), each pixel's R, G and B an index into ``meta.shN.codebook``.

Codebooks come from a 1-D k-means of each attribute over the ranges its values occupy (so that
sparse tails such as very large Gaussians keep their own entries); the SH palette from a two-level
k-means (coarse cells, then each cell's share of the palette), which is what keeps 300k Gaussians
to seconds in numpy. The pixel order is a Morton (Z-order) curve of the positions, so neighbours in
a texture are neighbours in space and WebP compresses them well.

Coordinates: splat-transform writes SOG in the PLY's own frame (it bakes every input into its PLY
space before writing), and Spark reads it as it reads a PLY, so our RDF (COLMAP) sets are stored as
they are, without the turn SPZ needs; a viewer turns SOG as it turns our PLY and ``.splat``.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from photosplat_trainer.export.clustering import CODEBOOK_SIZE, importance, quantize_1d, sh_palette
from photosplat_trainer.export.sog_order import inverse_log_transform, log_transform, spatial_order
from photosplat_trainer.export.sog_rotations import best_orientation, pack_quats, unpack_quats
from photosplat_trainer.gaussians import GaussianSet, opacity

VERSION = 2
CENTROIDS_PER_ROW = 64
MAX_PALETTE = 65536  # labels are 16-bit
# The SH palette's size against its loss on the 1600-px object (bench_sog.py, H200, 2026-11-30):
# one entry per 16 Gaussians 0.28 dB at 14.6 B/Gaussian, per 8 0.22 dB at 16.3, per 4 0.18 dB at 19.8.
# Per 8 keeps a margin under the 0.3 dB goal without nearing 20 B.
GAUSSIANS_PER_PALETTE_ENTRY = 8
FILES = {
    "means": ["means_l.webp", "means_u.webp"],
    "scales": ["scales.webp"],
    "quats": ["quats.webp"],
    "sh0": ["sh0.webp"],
    "shN": ["shN_centroids.webp", "shN_labels.webp"],
}
# A fixed zip timestamp: the same set writes the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def texture_size(count: int) -> tuple[int, int]:
    width = max(4, math.ceil(math.sqrt(count) / 4) * 4)
    return width, max(4, math.ceil(count / width / 4) * 4)


@dataclass(frozen=True)
class SogOptions:
    """The encoder's choices within the format (benchmarked in bench_sog.py)."""

    gaussians_per_palette_entry: int = GAUSSIANS_PER_PALETTE_ENTRY
    palette_weighted: bool = True  # the SH palette's k-means weighted by clustering.importance
    reorient: bool = True  # each Gaussian stored in whichever of its 24 equivalent frames rounds best


def palette_size(count: int, per_entry: int = GAUSSIANS_PER_PALETTE_ENTRY) -> int:
    """SH palette entries: a power of two near one per ``per_entry`` Gaussians (the reference's one
    per 1 to 16 costs ~10 B a Gaussian in centroids alone; view-dependent colour does not need it)."""
    if count < 2 * per_entry:
        return max(count, 1)
    return min(MAX_PALETTE, 1 << int(math.floor(math.log2(count / per_entry))))


def _webp(pixels: np.ndarray, width: int, height: int) -> bytes:
    """Lossless RGBA WebP of ``pixels`` (rows of up to 4 channels), padded to ``width x height``.

    ``exact``: libwebp otherwise rewrites the colour of fully transparent pixels, and alpha here is
    data (opacity 0 is a value)."""
    rgba = np.zeros((width * height, 4), np.uint8)
    rgba[:, 3] = 255
    rgba[: len(pixels), : pixels.shape[1]] = pixels
    out = io.BytesIO()
    image = Image.fromarray(rgba.reshape(height, width, 4), "RGBA")
    image.save(out, format="WEBP", lossless=True, quality=50, method=2, exact=True)
    return out.getvalue()


def _floats(values: np.ndarray) -> list[float]:
    """Each float32 by its shortest decimal that reads back the same: a 256-entry codebook in full
    float64 digits is ~1 B a Gaussian of meta.json on a small scene."""
    return [float(np.format_float_positional(v, unique=True, trim="-")) for v in np.asarray(values, np.float32)]


def _pack_means(means: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    warped = log_transform(means.astype(np.float64))
    mins = warped.min(axis=0) if len(means) else np.zeros(3)
    maxs = warped.max(axis=0) if len(means) else np.zeros(3)
    span = np.where(maxs > mins, maxs - mins, 1.0)
    fixed = np.clip(np.rint((warped - mins) / span * 65535.0), 0, 65535).astype(np.uint16)
    low, high = (fixed & 0xFF).astype(np.uint8), (fixed >> 8).astype(np.uint8)
    return low, high, {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": FILES["means"]}


def encode_sog(g: GaussianSet, options: SogOptions = SogOptions()) -> bytes:
    if g.sh_degree > 3:
        raise ValueError("SOG stores SH degrees 0 to 3")
    n = len(g)
    order = spatial_order(g.means)
    width, height = texture_size(n)
    images: dict[str, bytes] = {}

    low, high, means_meta = _pack_means(g.means[order])
    images["means_l.webp"] = _webp(low, width, height)
    images["means_u.webp"] = _webp(high, width, height)
    quats, log_scales = g.quats[order], g.log_scales[order]
    if options.reorient:
        quats, log_scales = best_orientation(quats, log_scales)
    images["quats.webp"] = _webp(pack_quats(quats), width, height)
    scales_codebook, scale_labels = quantize_1d(log_scales)
    images["scales.webp"] = _webp(scale_labels, width, height)
    colour_codebook, colour_labels = quantize_1d(g.sh0[order].reshape(n, 3))
    alpha = opacity(g.opacity_logits[order])
    opacity_bytes = np.clip(np.rint(alpha * 255.0), 0, 255).astype(np.uint8)
    images["sh0.webp"] = _webp(np.column_stack([colour_labels, opacity_bytes]), width, height)
    meta: dict[str, object] = {
        "version": VERSION,
        "asset": {"generator": "photosplat"},
        "count": n,
        "means": means_meta,
        "scales": {"codebook": _floats(scales_codebook), "files": FILES["scales"]},
        "quats": {"files": FILES["quats"]},
        "sh0": {"codebook": _floats(colour_codebook), "files": FILES["sh0"]},
    }
    if g.sh_degree > 0 and n > 0:
        weights = importance(g.opacity_logits[order], log_scales) if options.palette_weighted else None
        meta["shN"], centroids, labels = _pack_sh_rest(g.shN[order], g.sh_degree, options, weights)
        images["shN_centroids.webp"] = centroids
        images["shN_labels.webp"] = _webp(labels, width, height)

    out = io.BytesIO()
    # Stored, not deflated: WebP is compressed already. Images first and meta.json last, as the
    # reference streams them.
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as bundle:
        for name, data in [*images.items(), ("meta.json", json.dumps(meta).encode())]:
            bundle.writestr(zipfile.ZipInfo(name, _ZIP_DATE), data)
    return out.getvalue()


def _pack_sh_rest(
    shN: np.ndarray, degree: int, options: SogOptions, weights: np.ndarray | None
) -> tuple[dict[str, object], bytes, np.ndarray]:
    n, k, _ = shN.shape
    palette, labels = sh_palette(shN, palette_size(n, options.gaussians_per_palette_entry), weights=weights)
    codebook, indices = quantize_1d(palette)
    entries = len(palette)
    rows = math.ceil(entries / CENTROIDS_PER_ROW)
    grid = np.zeros((rows * CENTROIDS_PER_ROW, k, 3), np.uint8)
    grid[:entries] = indices
    centroids = _webp(grid.reshape(-1, 3), CENTROIDS_PER_ROW * k, rows)
    label_pixels = np.column_stack([labels & 0xFF, labels >> 8]).astype(np.uint8)
    meta = {"count": entries, "bands": degree, "codebook": _floats(codebook), "files": FILES["shN"]}
    return meta, centroids, label_pixels


def _read_image(bundle: zipfile.ZipFile, names: dict[str, str], name: str, count: int | None = None) -> np.ndarray:
    if name not in names:
        raise ValueError(f"SOG bundle: {name} is named in meta.json but not in the zip")
    with Image.open(io.BytesIO(bundle.read(names[name]))) as image:
        rgba = np.asarray(image.convert("RGBA"), np.uint8).reshape(-1, 4)
    if count is not None and len(rgba) < count:
        raise ValueError(f"SOG {name}: {len(rgba)} pixels for {count} Gaussians")
    return rgba if count is None else rgba[:count]


def _codebook(meta: dict, key: str) -> np.ndarray:
    codebook = np.asarray(meta[key]["codebook"], np.float32)
    if codebook.shape != (CODEBOOK_SIZE,):
        raise ValueError(f"SOG meta.json: {key}.codebook must hold {CODEBOOK_SIZE} numbers")
    return codebook


def decode_sog(data: bytes) -> GaussianSet:
    try:
        bundle = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError("not a SOG bundle (not a zip)") from exc
    with bundle:
        # Entries are found by their base name, as Spark and the reference find meta.json.
        names = {name.rsplit("/", 1)[-1]: name for name in bundle.namelist()}
        if "meta.json" not in names:
            raise ValueError("SOG bundle: no meta.json")
        meta = json.loads(bundle.read(names["meta.json"]))
        if meta.get("version") != VERSION:
            raise ValueError(f"SOG meta.json: version {meta.get('version')!r}, only version 2 is read")
        try:
            return _decode(meta, bundle, names)
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"SOG meta.json: missing or malformed field {exc}") from exc


def _decode(meta: dict, bundle: zipfile.ZipFile, names: dict[str, str]) -> GaussianSet:
    n = int(meta["count"])
    low = _read_image(bundle, names, meta["means"]["files"][0], n)[:, :3].astype(np.uint32)
    high = _read_image(bundle, names, meta["means"]["files"][1], n)[:, :3].astype(np.uint32)
    mins, maxs = np.asarray(meta["means"]["mins"], np.float64), np.asarray(meta["means"]["maxs"], np.float64)
    span = np.where(maxs != mins, maxs - mins, 1.0)
    means = inverse_log_transform(mins + span * ((low | (high << 8)) / 65535.0))

    scales = _codebook(meta, "scales")[_read_image(bundle, names, meta["scales"]["files"][0], n)[:, :3]]
    sh0 = _read_image(bundle, names, meta["sh0"]["files"][0], n)
    colours = _codebook(meta, "sh0")[sh0[:, :3]]
    alpha = np.clip(sh0[:, 3].astype(np.float64) / 255.0, 1e-6, 1.0 - 1e-6)
    quats = unpack_quats(_read_image(bundle, names, meta["quats"]["files"][0], n))

    shN = np.zeros((n, 0, 3), np.float32)
    if "shN" in meta:
        degree = int(meta["shN"]["bands"])
        if degree not in (1, 2, 3):
            raise ValueError(f"SOG meta.json: shN.bands {degree} (1 to 3)")
        k = (degree + 1) ** 2 - 1
        entries = int(meta["shN"]["count"])
        palette = _read_image(bundle, names, meta["shN"]["files"][0])
        width = CENTROIDS_PER_ROW * k
        if len(palette) < math.ceil(entries / CENTROIDS_PER_ROW) * width:
            raise ValueError(f"SOG {meta['shN']['files'][0]}: too small for {entries} palette entries")
        entries_rgb = palette[: entries * k, :3].reshape(entries, k, 3)
        label_rgba = _read_image(bundle, names, meta["shN"]["files"][1], n)
        labels = label_rgba[:, 0].astype(np.int64) | (label_rgba[:, 1].astype(np.int64) << 8)
        if n and labels.max() >= entries:
            raise ValueError(f"SOG {meta['shN']['files'][1]}: a label beyond the {entries} palette entries")
        shN = _codebook(meta, "shN")[entries_rgb][labels]
    return GaussianSet(
        means=means.astype(np.float32),
        log_scales=scales.astype(np.float32),
        quats=quats,
        opacity_logits=np.log(alpha / (1.0 - alpha)).astype(np.float32),
        sh0=colours.reshape(n, 1, 3).astype(np.float32),
        shN=shN.astype(np.float32),
    )


def write_sog(g: GaussianSet, path: Path) -> Path:
    path = Path(path)
    path.write_bytes(encode_sog(g))
    return path


def read_sog(path: Path) -> GaussianSet:
    return decode_sog(Path(path).read_bytes())
