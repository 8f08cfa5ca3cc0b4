"""The trained scene as plain arrays: what training produces and every export consumes.

Conventions are those of the reference 3DGS PLY (and gsplat): positions in the COLMAP world frame
(y down, z forward), log-scales, quaternions w-x-y-z (not necessarily normalised), opacity as a logit,
colours as spherical-harmonic coefficients (degree 0 in ``sh0``, higher degrees in ``shN``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

SH_C0 = 0.28209479177387814


def opacity(logits: np.ndarray) -> np.ndarray:
    """Opacity in 0..1 from its logit, in float64 (the exports round it to 8 bits)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits).astype(np.float64)))


@dataclass
class GaussianSet:
    means: np.ndarray  # (N, 3) float32
    log_scales: np.ndarray  # (N, 3) float32
    quats: np.ndarray  # (N, 4) float32, w x y z
    opacity_logits: np.ndarray  # (N,) float32
    sh0: np.ndarray  # (N, 1, 3) float32
    shN: np.ndarray  # (N, K, 3) float32, K = (degree+1)^2 - 1 (0 for degree 0)

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        for name in ("log_scales", "quats", "opacity_logits", "sh0", "shN"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"{name} has {getattr(self, name).shape[0]} rows, means has {n}")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.shN.shape[1] + 1))) - 1

    def equals(self, other: "GaussianSet") -> bool:
        """The same values bit for bit (a lossless file read back)."""
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))

    def subset(self, mask: np.ndarray) -> "GaussianSet":
        return GaussianSet(
            self.means[mask], self.log_scales[mask], self.quats[mask],
            self.opacity_logits[mask], self.sh0[mask], self.shN[mask],
        )
