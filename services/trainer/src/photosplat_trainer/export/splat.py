"""antimatter15's ``.splat``: the ``scene.splat`` the original web viewer (and most others) stream.

32 bytes per splat, no header: position float32 x3, scale float32 x3 (linear, ``exp`` of the
log-scale), colour RGBA uint8 (``0.5 + SH_C0 * sh0``; alpha ``sigmoid(opacity)``), rotation uint8 x4
(normalised quaternion w, x, y, z mapped by ``q * 128 + 128``). Splats are sorted most important
first, as the reference ``convert.py`` does, so a streaming viewer shows the big opaque ones early.
Only the view-independent colour survives: ``read_splat`` returns SH degree 0, and colours, alpha and
rotations are quantised to 8 bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photosplat_trainer.gaussians import SH_C0, GaussianSet, opacity

SPLAT_DTYPE = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def importance_order(g: GaussianSet) -> np.ndarray:
    """Indices by decreasing volume x opacity (the reference sort key)."""
    volume = np.exp(g.log_scales.astype(np.float64).sum(axis=1))
    return np.argsort(-volume * opacity(g.opacity_logits), kind="stable")


def write_splat(g: GaussianSet, path: Path) -> Path:
    g = g.subset(importance_order(g))
    n = len(g)
    records = np.empty(n, SPLAT_DTYPE)
    records["position"] = g.means
    records["scale"] = np.exp(g.log_scales.astype(np.float64))
    colour = 0.5 + SH_C0 * g.sh0.reshape(n, 3).astype(np.float64)
    records["rgba"] = _to_u8(np.concatenate([colour, opacity(g.opacity_logits)[:, None]], axis=1) * 255.0)
    quats = g.quats.astype(np.float64)
    norms = np.linalg.norm(quats, axis=1, keepdims=True)
    records["rot"] = _to_u8(quats / np.where(norms > 0, norms, 1.0) * 128.0 + 128.0)
    path = Path(path)
    path.write_bytes(records.tobytes())
    return path


def read_splat(path: Path) -> GaussianSet:
    raw = Path(path).read_bytes()
    if len(raw) % SPLAT_DTYPE.itemsize:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of 32-byte splats")
    records = np.frombuffer(raw, SPLAT_DTYPE)
    n = len(records)
    rgba = records["rgba"].astype(np.float32) / 255.0
    # An 8-bit alpha of 0 or 255 has no finite logit: clamp to half a step inside (0, 1).
    alpha = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    with np.errstate(divide="ignore"):
        log_scales = np.log(records["scale"].astype(np.float32))
    return GaussianSet(
        means=records["position"].astype(np.float32),
        log_scales=log_scales,
        quats=(records["rot"].astype(np.float32) - 128.0) / 128.0,
        opacity_logits=np.log(alpha / (1.0 - alpha)).astype(np.float32),
        sh0=((rgba[:, :3] - 0.5) / SH_C0).reshape(n, 1, 3).astype(np.float32),
        shN=np.zeros((n, 0, 3), np.float32),
    )
