"""SOG's rotations: the "smallest three" components of a quaternion at 8 bits each, and the choice of
which of a Gaussian's 24 equivalent orientations to store.

A Gaussian's shape is its covariance ``R S^2 R^T``: turning its frame by any of the cube's 24
rotations ``P`` while permuting its three scales to match (``R P``, ``P^T S^2 P``) gives the same
shape. The 8-bit grid falls differently on each of those 24 quaternions, so the encoder stores the
one whose decoded shape is closest to the trained one. At 8 bits, rotations were half of SOG's
round-trip loss on a 300k-Gaussian object at 1600 px (0.22-0.25 dB, bench_sog.py); this is free in
bytes and readers need nothing new.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from photosplat_trainer.backends.rasterize import quat_to_rotmat

_SQRT2 = math.sqrt(2.0)
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])  # the stored three, by the largest's index


def _cube_rotations() -> np.ndarray:
    """The 24 rotations that map the axes onto the axes, as w-x-y-z quaternions (one sign each):
    none and the half turns about an axis, quarter turns about an axis, half turns about a face
    diagonal, third turns about a body diagonal."""
    h = 1.0 / _SQRT2
    found = [np.eye(4)[i] for i in range(4)]
    for axis, sign in itertools.product((1, 2, 3), (1.0, -1.0)):
        q = np.zeros(4)
        q[0], q[axis] = h, sign * h
        found.append(q)
    for (i, j), sign in itertools.product(itertools.combinations((1, 2, 3), 2), (1.0, -1.0)):
        q = np.zeros(4)
        q[i], q[j] = h, sign * h
        found.append(q)
    found += [np.array([0.5, *signs]) for signs in itertools.product((0.5, -0.5), repeat=3)]
    return np.array(found)


_CUBE = _cube_rotations()
# For each cube rotation P, the original axis each new axis j takes its scale from (P e_j = +-e_pi(j)).
_AXES = np.abs(quat_to_rotmat(torch.from_numpy(_CUBE)).numpy()).argmax(axis=-2)
_PAIRS = np.array([[1, 2], [0, 2], [0, 1]])  # the two axes that turn about axis k


def pack_quats(quats_wxyz: np.ndarray) -> np.ndarray:
    """RGBA bytes: the three smallest components of the normalised quaternion, sign-flipped so the
    largest is positive, times sqrt(2), as ``255 * (v / 2 + 0.5)``; alpha ``252 +`` the largest's index."""
    largest, levels = _quantise(_normalised(quats_wxyz))
    packed = np.empty((len(levels), 4), np.uint8)
    packed[:, :3] = levels
    packed[:, 3] = 252 + largest
    return packed


def unpack_quats(packed: np.ndarray) -> np.ndarray:
    tags = packed[:, 3].astype(np.int64)
    if ((tags < 252) | (tags > 255)).any():
        raise ValueError("SOG quats.webp: alpha must be 252 + the index of the largest component (252 to 255)")
    return _dequantise(tags - 252, packed[:, :3].astype(np.float64)).astype(np.float32)


def _quantise(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit quaternions along the last axis -> the largest component's index and the other three's
    8-bit levels (as floats, in ``q``'s precision)."""
    largest = np.abs(q).argmax(axis=-1)
    sign = np.where(np.take_along_axis(q, largest[..., None], axis=-1) < 0, -_SQRT2, _SQRT2).astype(q.dtype)
    small = np.take_along_axis(q * sign, _OTHERS[largest], axis=-1)
    return largest, np.clip(np.rint(255.0 * (small * 0.5 + 0.5)), 0, 255)


def _dequantise(largest: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The inverse of ``_quantise``: the three stored components, the largest derived from them."""
    small = (levels / 255.0 * 2.0 - 1.0) / _SQRT2
    q = np.zeros((*largest.shape, 4), levels.dtype)
    np.put_along_axis(q, _OTHERS[largest], small, axis=-1)
    derived = np.sqrt(np.maximum(0.0, 1.0 - (small * small).sum(axis=-1, keepdims=True)))
    np.put_along_axis(q, largest[..., None], derived, axis=-1)
    return q


def best_orientation(quats_wxyz: np.ndarray, log_scales: np.ndarray, chunk: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Of each Gaussian's 24 equivalent (rotation, scales) pairs, the one whose 8-bit rotation
    decodes to the covariance nearest the trained one."""
    q_out = np.empty((len(quats_wxyz), 4), np.float32)
    s_out = np.empty((len(quats_wxyz), 3), np.float32)

    def one(start: int) -> None:
        block = slice(start, start + chunk)
        q_out[block], s_out[block] = _best_of_block(quats_wxyz[block], log_scales[block])

    # numpy lets go of the GIL inside each array operation: the blocks spread over the cores.
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(0, len(quats_wxyz), chunk)))
    return q_out, s_out


def _best_of_block(quats_wxyz: np.ndarray, log_scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoded frame is the stored one turned by a small rotation ``w`` (in that frame's axes);
    to first order that changes the covariance by ``(v_i - v_j) w_k`` in entry ``(i, j)``, ``k`` the
    third axis, so the squared error is ``2 sum_k ((v_i - v_j) w_k)^2``: no matrices needed."""
    q = _normalised(quats_wxyz).astype(np.float32)
    log_s = log_scales.astype(np.float32)
    variances = np.exp(2 * (log_s - log_s.max(axis=1, keepdims=True)))  # relative: only the shape counts
    candidates = _multiply(q[:, None, :], _CUBE[None, :, :].astype(np.float32))  # (n, 24, 4)
    decoded = _dequantise(*_quantise(candidates))  # the 8-bit round trip, without the bytes
    turn = _multiply(candidates * np.array([1, -1, -1, -1], np.float32), decoded)  # candidate^-1 * decoded
    w = 2.0 * turn[..., 1:] * np.where(turn[..., :1] < 0, -1.0, 1.0)  # the small turn's rotation vector
    v = variances[:, _AXES]  # (n, 24, 3): each candidate's scales follow its axes
    error = (((v[..., _PAIRS[:, 0]] - v[..., _PAIRS[:, 1]]) * w) ** 2).sum(axis=2)
    best = error.argmin(axis=1)
    rows = np.arange(len(q))
    return candidates[rows, best], log_scales[rows[:, None], _AXES[best]]


def _normalised(quats: np.ndarray) -> np.ndarray:
    q = quats.astype(np.float64)
    norms = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(norms > 0, q / np.where(norms > 0, norms, 1.0), np.array([1.0, 0.0, 0.0, 0.0]))


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of w-x-y-z quaternions (broadcasting)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)
