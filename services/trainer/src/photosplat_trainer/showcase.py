"""The capture camera a scene is shown from first (thumbnail and the viewer's opening view).

The middle photo of a capture is often a close-up (a walk-around of a mounted head ends up on the
edge of its plaque): the camera chosen here is the one whose frame holds the largest share of the
scene's points, a view much closer than the others' typical distance counting less, and it is then
turned (about its own centre) towards the robust centre of what it sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from photosplat_trainer.dataset import View

# Projecting every point into every view is O(points x views): a fixed sample ranks views the same.
MAX_POINTS = 20_000
# A view whose median depth is under this fraction of the views' typical one is a close-up; its
# score shrinks in proportion below it.
CLOSE_UP_FRACTION = 0.5
# Views scoring this close to the best are equal; the one nearest the middle of the capture wins,
# as it did before a score existed.
TIE = 0.98


@dataclass(frozen=True)
class Sight:
    """What one view sees of the points: the weighted share in its frame, their weighted median
    depth and robust centre (None when it sees nothing)."""

    share: float
    depth: float | None
    centre: np.ndarray | None


def choose_view(views: Sequence[View], points: np.ndarray, weights: np.ndarray | None = None) -> View:
    """The view of ``views`` that best frames ``points`` (weights: e.g. opacities), aimed at the
    robust centre of the points in its frame."""
    if not views:
        raise ValueError("no views to choose from")
    points, weights = _sample(np.asarray(points, np.float64).reshape(-1, 3), weights)
    if not len(points) or weights.sum() <= 0:
        return views[len(views) // 2]
    sights = [sight(view, points, weights) for view in views]
    scores = _scores(sights)
    best = float(scores.max())
    middle = len(views) // 2
    index = min(np.flatnonzero(scores >= TIE * best), key=lambda i: (abs(i - middle), i))
    centre = sights[index].centre
    return views[index] if centre is None else aimed_at(views[index], centre)


def sight(view: View, points: np.ndarray, weights: np.ndarray) -> Sight:
    depth, inside = project(view, points)
    w = weights[inside]
    if not inside.any() or w.sum() <= 0:
        return Sight(0.0, None, None)
    seen = points[inside]
    centre = np.array([weighted_median(seen[:, k], w) for k in range(3)])
    return Sight(float(w.sum() / weights.sum()), weighted_median(depth[inside], w), centre)


def project(view: View, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's depth along the view's axis and whether it falls in the view's frame."""
    viewmat = view.viewmat.detach().double().cpu().numpy()
    K = view.K.detach().double().cpu().numpy()
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[:, 2]
    front = z > 1e-9
    safe = np.where(front, z, 1.0)
    u = K[0, 0] * cam[:, 0] / safe + K[0, 2]
    v = K[1, 1] * cam[:, 1] / safe + K[1, 2]
    inside = front & (u >= 0) & (u < view.width) & (v >= 0) & (v < view.height)
    return z, inside


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def aimed_at(view: View, target: np.ndarray) -> View:
    """``view`` turned about its centre to look at ``target``, keeping its image's up as near as
    possible (intrinsics, size and pixels unchanged)."""
    viewmat = view.viewmat.detach().double().cpu().numpy()
    centre = view.center
    forward = target - centre
    up = -viewmat[1, :3]  # the image's up (camera -y) in the world
    right = np.cross(forward, up)
    if np.linalg.norm(forward) < 1e-12 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(forward):
        return view
    forward /= np.linalg.norm(forward)
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(forward, right), forward])  # rows: camera x, y (down), z
    aimed = np.eye(4)
    aimed[:3, :3], aimed[:3, 3] = rotation, -rotation @ centre
    matrix = torch.as_tensor(aimed, dtype=view.viewmat.dtype, device=view.viewmat.device)
    return View(view.name, view.pixels, view.K, matrix, view.index)


def _scores(sights: list[Sight]) -> np.ndarray:
    depths = [s.depth for s in sights if s.depth is not None and s.depth > 0]
    typical = float(np.median(depths)) if depths else 0.0
    scores = []
    for s in sights:
        closeness = 1.0 if s.depth is None or typical <= 0 else min(1.0, s.depth / (CLOSE_UP_FRACTION * typical))
        scores.append(s.share * max(closeness, 0.0))
    return np.asarray(scores)


def _sample(points: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    w = np.ones(len(points)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    keep = np.isfinite(points).all(axis=1) & np.isfinite(w) & (w > 0)
    points, w = points[keep], w[keep]
    if len(points) > MAX_POINTS:
        rows = np.random.default_rng(0).choice(len(points), MAX_POINTS, replace=False)
        points, w = points[rows], w[rows]
    return points, w
