"""The SH palette's k-means as one batched Lloyd iteration over every Gaussian (torch, on a GPU).

The CPU version fits each coarse cell's share of the palette separately: hundreds of small
problems, which on a GPU would be hundreds of tiny launches. Here the cells only seed the palette
(each cell's quota of its own members, drawn at random), and then every entry moves at once:
the distances of 300k Gaussians to 16k entries are one 230-GFLOP product per iteration, ~10 ms on
an H200. An entry left without members restarts at the Gaussian worst served so far, which is
what keeps rare colours their own entry (random restarts merged them).
"""

from __future__ import annotations

import numpy as np
import torch

from photosplat_trainer.export.clustering import cell_quotas, coarse_cells

ITERATIONS = 16
_COARSE_ITERATIONS = 10
# Distance blocks of at most this many floats (1 GiB).
_BLOCK = 1 << 28


def sh_palette_torch(points: np.ndarray, size: int, seed: int, device: str | torch.device) -> tuple[np.ndarray, np.ndarray]:
    """At most ``size`` centroids of ``points`` (``(n, d)`` float32) and each point's index."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(points, np.float32)).to(device)
    n = len(x)
    coarse = _coarse(x, coarse_cells(size), generator)
    cells = _assign(x, coarse)[0]
    members = torch.bincount(cells, minlength=len(coarse)).cpu().numpy()
    quota = torch.from_numpy(cell_quotas(members, size)).to(device)
    centroids = x[_seeds(cells, quota, generator)]
    for _ in range(ITERATIONS):
        labels, distances = _assign(x, centroids)
        counts = torch.bincount(labels, minlength=len(centroids))
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
        empty = int((~filled).sum())
        if empty:
            centroids[~filled] = x[distances.topk(min(empty, n)).indices]
    labels, _ = _assign(x, centroids)
    return centroids.cpu().numpy(), labels.cpu().numpy().astype(np.int64)


def _coarse(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` cells fitted on a sample of 32 points a cell."""
    sample = x[torch.randperm(len(x), generator=generator)[: 32 * k].to(x.device)]
    centroids = sample[:k].clone()
    for _ in range(_COARSE_ITERATIONS):
        labels, _ = _assign(sample, centroids)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, sample)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
    return centroids


def _seeds(cells: torch.Tensor, quota: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``quota[c]`` random members of each cell ``c``, cell after cell (so that a cell's
    entries are consecutive labels, which the label texture's WebP rewards)."""
    shuffled = torch.randperm(len(cells), generator=generator).to(cells.device)
    order = shuffled[torch.sort(cells[shuffled], stable=True).indices]
    sorted_cells = cells[order]
    members = torch.bincount(cells, minlength=len(quota))
    starts = torch.cumsum(members, 0) - members
    rank = torch.arange(len(cells), device=cells.device) - starts[sorted_cells]
    return order[rank < quota[sorted_cells]]


def _assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's nearest centroid and its squared distance, in blocks of rows."""
    half_norms = 0.5 * (centroids * centroids).sum(dim=1)
    point_norms = (x * x).sum(dim=1)
    rows = max(1, _BLOCK // max(1, len(centroids)))
    labels, distances = [], []
    for start in range(0, len(x), rows):
        # argmin |p - c|^2 = argmin (|c|^2 / 2 - p.c)
        best = (half_norms - x[start : start + rows] @ centroids.T).min(dim=1)
        labels.append(best.indices)
        distances.append((point_norms[start : start + rows] + 2 * best.values).clamp_min(0))
    return torch.cat(labels), torch.cat(distances)
