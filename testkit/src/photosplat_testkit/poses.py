"""Comparing recovered cameras with ground truth, up to the similarity SfM cannot know (scale,
position and orientation of the world). Used by the tests and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycolmap


@dataclass(frozen=True)
class PoseErrors:
    rotation_deg: np.ndarray  # per common image
    position: np.ndarray  # per common image, relative to the spread of the true camera centres

    def summary(self) -> str:
        return (
            f"rotation error median {np.median(self.rotation_deg):.3f} deg, max {self.rotation_deg.max():.3f} deg; "
            f"position error median {np.median(self.position) * 100:.2f} %, max {self.position.max() * 100:.2f} %"
        )


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (s, R, t) with dst ≈ s R src + t (Umeyama 1991); rows are points."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (a**2).sum(axis=1).mean())
    return s, R, mu_d - s * R @ mu_s


def center(cam_from_world: np.ndarray) -> np.ndarray:
    return -cam_from_world[:, :3].T @ cam_from_world[:, 3]


def pose_from_projection(P: np.ndarray) -> np.ndarray:
    """[R|t] of a projection matrix P = K[R|t] (any scale or sign), via RQ decomposition."""
    M = P[:, :3]
    flip = np.flipud(np.eye(3))
    Q, Rm = np.linalg.qr((flip @ M).T)
    K, R = flip @ Rm.T @ flip, flip @ Q.T
    signs = np.diag(np.sign(np.diag(K)))
    K, R = K @ signs, signs @ R
    scale = 1.0
    if np.linalg.det(R) < 0:  # P was given with a negative scale
        R, scale = -R, -1.0
    t = scale * np.linalg.solve(K, P[:, 3])
    return np.concatenate([R, t[:, None]], axis=1)


def poses_of(model: pycolmap.Reconstruction) -> dict[str, np.ndarray]:
    return {image.name: image.cam_from_world().matrix() for image in model.images.values() if image.has_pose}


def pose_errors(estimated: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> PoseErrors:
    """Errors of the estimated cameras after aligning their centres to the true ones."""
    names = sorted(set(estimated) & set(truth))
    if len(names) < 3:
        raise ValueError(f"only {len(names)} cameras in common")
    est_c = np.stack([center(estimated[n]) for n in names])
    true_c = np.stack([center(truth[n]) for n in names])
    s, R, t = umeyama(est_c, true_c)
    aligned = (s * (R @ est_c.T)).T + t
    spread = np.linalg.norm(true_c - true_c.mean(axis=0), axis=1).mean()
    rotation = []
    for n in names:
        # The estimated camera's rotation expressed in the true world: R_est @ R^T.
        delta = estimated[n][:, :3] @ R.T @ truth[n][:, :3].T
        rotation.append(np.degrees(np.arccos(np.clip((np.trace(delta) - 1) / 2, -1, 1))))
    return PoseErrors(np.array(rotation), np.linalg.norm(aligned - true_c, axis=1) / spread)


def buddha_truth(root: Path) -> dict[str, np.ndarray]:
    """The true cameras of the buddha set (``cameras_P/NNNN_P.txt`` for ``images/NNNN.jpg``). P is
    for the full-size images; rotations and centres do not depend on the image scale."""
    return {
        f"{p.name.split('_')[0]}.jpg": pose_from_projection(np.loadtxt(p))
        for p in sorted((root / "cameras_P").glob("*_P.txt"))
    }
