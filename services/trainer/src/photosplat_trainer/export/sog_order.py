"""Where each Gaussian goes in a SOG file: a Morton (Z-order) curve of the log-warped positions,
so that neighbours in a texture are neighbours in space (and WebP compresses them well)."""

from __future__ import annotations

import numpy as np

_MORTON_BITS = 21
# Shifts and masks that spread 21 bits two apart (a 63-bit Morton code interleaves three axes).
_SPREAD = (
    (32, 0x1F00000000FFFF),
    (16, 0x1F0000FF0000FF),
    (8, 0x100F00F00F00F00F),
    (4, 0x10C30C30C30C30C3),
    (2, 0x1249249249249249),
)


def log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def inverse_log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.expm1(np.abs(x))


def _part1by2(x: np.ndarray) -> np.ndarray:
    """Spread 21 bits so that two zero bits follow each (a 63-bit Morton code interleaves three)."""
    x = x.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in _SPREAD:
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def spatial_order(means: np.ndarray) -> np.ndarray:
    """The Morton order of the centres, as indices: the order of the Gaussians in a SOG file.

    21 bits an axis (the reference's 10 bits and recursion into crowded cells, in one sort), on the
    log-warped positions the file quantises, so a floater far away does not crowd the scene into a
    few cells."""
    if len(means) == 0:
        return np.zeros(0, np.int64)
    warped = log_transform(means.astype(np.float64))
    low = warped.min(axis=0)
    span = warped.max(axis=0) - low
    cells = (warped - low) / np.where(span > 0, span, 1.0) * ((1 << _MORTON_BITS) - 1)
    cells = np.rint(cells).astype(np.uint64)
    code = _part1by2(cells[:, 0]) | (_part1by2(cells[:, 1]) << np.uint64(1)) | (_part1by2(cells[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")
