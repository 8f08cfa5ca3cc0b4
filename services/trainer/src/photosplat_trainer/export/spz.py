"""Niantic's SPZ, written as version 3 (browser renderers read versions 1 to 3; version 4 is newer).

Niantic's own Python binding is not on PyPI (``spz`` there is a third-party Rust binding at 0.0.1;
``gsply`` pulls in Numba and does no coordinate conversion), so this follows the reference C++
(nianticlabs/spz ``load-spz.cc``) and was checked against gsply's reader and writer:

* gzip of: a 16-byte little-endian header ``magic 0x5053474e ("NGSP"), version 3, numPoints (u32),
  shDegree, fractionalBits, flags, reserved (u8 each)``, then attribute blocks in this order:
  positions (24-bit signed fixed point, ``fractionalBits`` fraction bits, x y z per point), alphas
  (``sigmoid(opacity) * 255``), colours (``sh0 * 0.15 * 255 + 127.5``: 0.15, not SH_C0, leaves headroom
  for out-of-range DC), scales (``(log_scale + 10) * 16``), rotations ("smallest three": a 2-bit index
  of the largest |component| of the normalised x y z w quaternion, then the other three as sign bit +
  9-bit magnitude scaled by 1/sqrt(2), packed into a little-endian u32) and SH coefficients
  (``x * 128 + 128``, coefficient-major with the colour channel fastest; degree-1 coefficients rounded
  to 5 significant bits, higher ones to 4, by the reference's defaults; we keep all 8 bits).
* Coordinates: SPZ stores RUB (x right, y up, z back: three.js / OpenGL). Our sets are RDF (COLMAP,
  the PLY convention), so, exactly as the reference does with ``PackOptions.from = RDF``, we rotate 180
  degrees about x on write (negate y and z of positions, the y and z quaternion components and the SH
  coefficients odd in y or z) and rotate back on read.
* ``fractionalBits`` is the reference's 12 (1/4096 unit) unless the scene extends beyond +-2048
  units, where it drops just enough for the 24-bit range; readers take it from the header.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from photosplat_trainer.gaussians import GaussianSet, opacity

MAGIC = 0x5053474E
VERSION = 3
FLAG_ANTIALIASED = 0x1
COLOR_SCALE = 0.15
_HEADER = struct.Struct("<IIIBBBB")
_SQRT1_2 = np.float32(0.7071067811865476)
_MAX_FRACTIONAL_BITS = 12

# RDF <-> RUB is a 180-degree turn about x: x kept, y and z negated (the reference's converter with
# x=1, y=-1, z=-1). Per-SH-coefficient signs follow the reference table (degree 1: y, z, x; ...).
_FLIP_POSITION = np.array([1.0, -1.0, -1.0], np.float32)
_FLIP_QUAT_XYZ = np.array([1.0, -1.0, -1.0], np.float32)  # (y*z, x*z, x*y)
_FLIP_SH = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float32)


def _round(x: np.ndarray) -> np.ndarray:
    """C's ``std::round`` (halves away from zero; numpy's ``rint`` rounds them to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(_round(x), 0, 255).astype(np.uint8)


def _fractional_bits(means: np.ndarray) -> int:
    extent = float(np.abs(means).max()) if means.size else 0.0
    if extent == 0.0:
        return _MAX_FRACTIONAL_BITS
    headroom = int(np.floor(np.log2((2**23 - 1) / extent)))
    return max(0, min(_MAX_FRACTIONAL_BITS, headroom))


def _pack_positions(means: np.ndarray, fractional_bits: int) -> np.ndarray:
    fixed = _round(means.astype(np.float64) * (1 << fractional_bits)).astype(np.int64)
    fixed = np.clip(fixed, -(2**23), 2**23 - 1).astype("<i4").reshape(-1)
    return fixed.view(np.uint8).reshape(-1, 4)[:, :3].reshape(-1)


def _unpack_positions(raw: np.ndarray, n: int, fractional_bits: int) -> np.ndarray:
    b = raw.reshape(-1, 3).astype(np.int32)
    fixed = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    return (fixed.astype(np.float32) / np.float32(1 << fractional_bits)).reshape(n, 3)


def _pack_rotations(quats_wxyz: np.ndarray) -> np.ndarray:
    q = quats_wxyz[:, [1, 2, 3, 0]].astype(np.float32)  # SPZ orders x y z w
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norms > 0, q / np.where(norms > 0, norms, 1.0), np.array([0, 0, 0, 1], np.float32))
    n = len(q)
    largest = np.argmax(np.abs(q), axis=1)
    negate = q[np.arange(n), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        keep = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = (np.float32(511.0) * (np.abs(q[:, i]) / _SQRT1_2) + np.float32(0.5)).astype(np.uint32)
        comp = np.where(keep, (comp << np.uint32(10)) | (negbit << np.uint32(9)) | mag, comp)
    return comp.astype("<u4").view(np.uint8)


def _unpack_rotations(raw: np.ndarray, n: int) -> np.ndarray:
    comp = raw.view("<u4").astype(np.uint32).copy()
    largest = (comp >> np.uint32(30)).astype(np.int64)
    q = np.zeros((n, 4), np.float32)
    for i in (3, 2, 1, 0):
        keep = largest != i
        mag = (comp & np.uint32(511)).astype(np.float32)
        sign = np.where((comp >> np.uint32(9)) & np.uint32(1), -1.0, 1.0).astype(np.float32)
        q[:, i] = np.where(keep, sign * _SQRT1_2 * mag / np.float32(511.0), 0.0)
        comp = np.where(keep, comp >> np.uint32(10), comp)
    q[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (q * q).sum(axis=1)))
    return q[:, [3, 0, 1, 2]]  # back to w x y z


def _quantize_sh(x: np.ndarray, bits: int) -> np.ndarray:
    bucket = 1 << (8 - bits)
    q = _round(x.astype(np.float32) * np.float32(128.0)).astype(np.int32) + 128
    q = (q + bucket // 2) // bucket * bucket
    return np.clip(q, 0, 255).astype(np.uint8)


def _flip_sh(shN: np.ndarray) -> np.ndarray:
    return shN * _FLIP_SH[: shN.shape[1], None]


def _rdf_rub(g: GaussianSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, w-x-y-z quaternions and SH rest in the other frame (the turn is its own inverse)."""
    quats = g.quats.astype(np.float32).copy()
    quats[:, 1:] *= _FLIP_QUAT_XYZ
    return g.means * _FLIP_POSITION, quats, _flip_sh(g.shN)


def encode_spz(g: GaussianSet, *, antialiased: bool = False) -> bytes:
    if g.sh_degree > 3:
        raise ValueError("SPZ version 3 stores SH degrees 0 to 3")
    n = len(g)
    means, quats, shN = _rdf_rub(g)
    bits = _fractional_bits(means)
    # All 8 bits of every SH coefficient: the reference's rounding to 5 (degree 1) and 4 bits only
    # helps gzip (~10 % smaller) and costs view-dependent colour a viewer then shows.
    sh = _quantize_sh(shN, 8)
    alpha = opacity(g.opacity_logits)
    parts = [
        _HEADER.pack(MAGIC, VERSION, n, g.sh_degree, bits, FLAG_ANTIALIASED if antialiased else 0, 0),
        _pack_positions(means, bits).tobytes(),
        _to_u8(alpha * 255.0).tobytes(),
        _to_u8(g.sh0.reshape(n, 3).astype(np.float64) * (COLOR_SCALE * 255.0) + 127.5).tobytes(),
        _to_u8((g.log_scales.astype(np.float64) + 10.0) * 16.0).tobytes(),
        _pack_rotations(quats).tobytes(),
        sh.tobytes(),
    ]
    # zlib's default level, as the reference: level 9 took 10x as long (27 s for 320k Gaussians) for
    # a file 3 % smaller.
    return gzip.compress(b"".join(parts), compresslevel=6, mtime=0)


def decode_spz(data: bytes) -> GaussianSet:
    raw = gzip.decompress(data)
    magic, version, n, degree, bits, flags, _ = _HEADER.unpack_from(raw)
    if magic != MAGIC:
        raise ValueError("not an SPZ file (bad magic)")
    if version != VERSION:
        raise ValueError(f"SPZ version {version}: only version 3 is read")
    if degree > 3:
        raise ValueError(f"SPZ SH degree {degree} is not supported")
    if flags & ~FLAG_ANTIALIASED:
        raise ValueError(f"SPZ flags {flags:#x}: extensions are not supported")
    k = (degree + 1) ** 2 - 1
    sizes = [
        ("positions", 9 * n),
        ("alphas", n),
        ("colors", 3 * n),
        ("scales", 3 * n),
        ("rotations", 4 * n),
        ("sh", 3 * k * n),
    ]
    blocks: dict[str, np.ndarray] = {}
    offset = _HEADER.size
    for name, size in sizes:
        blocks[name] = np.frombuffer(raw, np.uint8, size, offset)
        offset += size
    alpha = np.clip(blocks["alphas"].astype(np.float32) / 255.0, 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    rub = GaussianSet(
        means=_unpack_positions(blocks["positions"], n, bits),
        log_scales=(blocks["scales"].astype(np.float32) / 16.0 - 10.0).reshape(n, 3),
        quats=_unpack_rotations(blocks["rotations"], n),
        opacity_logits=np.log(alpha / (1.0 - alpha)).astype(np.float32),
        sh0=((blocks["colors"].astype(np.float32) / 255.0 - 0.5) / COLOR_SCALE).reshape(n, 1, 3),
        shN=((blocks["sh"].astype(np.float32) - 128.0) / 128.0).reshape(n, k, 3),
    )
    means, quats, shN = _rdf_rub(rub)
    return GaussianSet(
        means.astype(np.float32), rub.log_scales, quats, rub.opacity_logits, rub.sh0, shN.astype(np.float32)
    )


def write_spz(g: GaussianSet, path: Path, *, antialiased: bool = False) -> Path:
    path = Path(path)
    path.write_bytes(encode_spz(g, antialiased=antialiased))
    return path


def read_spz(path: Path) -> GaussianSet:
    return decode_spz(Path(path).read_bytes())
