"""The last clean-up before export: drop Gaussians a viewer would show as floaters or junk.

Scene scale: ``extent`` is the largest distance of a camera centre from their mean (times 1.1, as
3DGS); ``reach = max(extent, median distance of the Gaussians from that mean)``, so that a
forward-facing capture (cameras close together, scene far in front) is not judged by its camera
spread alone. A Gaussian is dropped, first matching reason counted, when it

* has a non-finite parameter (``non_finite``),
* is invisible, ``sigmoid(opacity) < min_opacity`` (``low_opacity``; 1/255: rasterisers skip a
  Gaussian's pixels below that alpha, so it can never show. gsplat's training-time 0.005 cost an MCMC
  scene 0.5 dB here: regularised opacities crowd just above 1/255 and still add up),
* is huge, largest axis ``> max_scale_fraction * reach`` (``huge_scale``; 3DGS prunes at 0.1 x extent
  during densification, export is more lenient so that a large background or sky survives),
* lies far outside the capture, farther than ``far_factor * reach`` from the camera mean (``far``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from photosplat_trainer.gaussians import GaussianSet, opacity


@dataclass(frozen=True)
class PruneResult:
    gaussians: GaussianSet
    counts: dict[str, int]  # kept, non_finite, low_opacity, huge_scale, far


def camera_extent(camera_centres: np.ndarray) -> float:
    centres = np.asarray(camera_centres, np.float64).reshape(-1, 3)
    if len(centres) == 0:
        return 0.0
    return 1.1 * float(np.linalg.norm(centres - centres.mean(axis=0), axis=1).max())


def prune_floaters(
    g: GaussianSet,
    camera_centres: np.ndarray,
    *,
    min_opacity: float = 1.0 / 255.0,
    max_scale_fraction: float = 0.5,
    far_factor: float = 10.0,
) -> PruneResult:
    centres = np.asarray(camera_centres, np.float64).reshape(-1, 3)
    if len(centres) == 0:
        raise ValueError("prune_floaters needs at least one camera centre")
    finite = np.ones(len(g), bool)
    for values in (g.means, g.log_scales, g.quats, g.opacity_logits, g.sh0, g.shN):
        finite &= np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
    means = np.where(finite[:, None], g.means, 0.0).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        alpha = opacity(g.opacity_logits)
        largest_axis = np.exp(g.log_scales.astype(np.float64).max(axis=1))
    distance = np.linalg.norm(means - centres.mean(axis=0), axis=1)
    extent = camera_extent(centres)
    reach = max(extent, float(np.median(distance[finite])) if finite.any() else 0.0)
    if reach == 0.0:  # one camera and nothing to measure: no scale to judge size or distance by
        reach = np.inf

    reasons = [
        ("non_finite", ~finite),
        ("low_opacity", alpha < min_opacity),
        ("huge_scale", largest_axis > max_scale_fraction * reach),
        ("far", distance > far_factor * reach),
    ]
    dropped = np.zeros(len(g), bool)
    counts: dict[str, int] = {}
    for name, mask in reasons:
        counts[name] = int((mask & ~dropped).sum())
        dropped |= mask
    counts["kept"] = int((~dropped).sum())
    return PruneResult(g.subset(~dropped), counts)
