"""The SH palette's k-means as one batched Lloyd iteration over every Gaussian (torch, on a GPU).

The CPU version fits each coarse cell's share of the palette separately: hundreds of small
problems, which on a GPU would be hundreds of tiny launches. Here the cells only seed the palette
(each cell's quota of its own members, drawn as k-means++ draws, all cells at once), and then
every entry moves at once: the distances of 300k Gaussians to 16k entries are one 230-GFLOP
product per iteration, ~10 ms on an H200. An entry left without members restarts at the Gaussian
worst served so far, which is what keeps rare colours their own entry (random restarts merged them).
"""

from __future__ import annotations

import numpy as np
import torch

from photosplat_trainer.export.clustering import cell_quotas, coarse_cells

ITERATIONS = 16
SEQUENTIAL_DRAWS = 64
_COARSE_ITERATIONS = 10
# Distance blocks of at most this many floats (1 GiB).
_BLOCK = 1 << 28


def sh_palette_torch(
    points: np.ndarray, size: int, seed: int, device: str | torch.device, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``size`` centroids of ``points`` (``(n, d)`` float32) and each point's index; centroids
    are the ``weights``-weighted means of their points."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(points, np.float32)).to(device)
    n = len(x)
    w = torch.ones(n, device=x.device) if weights is None else torch.from_numpy(np.asarray(weights, np.float32)).to(device)
    coarse = _coarse(x, coarse_cells(size), generator)
    cells = _assign(x, coarse)[0]
    members = torch.bincount(cells, weights=w, minlength=len(coarse)).cpu().numpy()
    quota = torch.from_numpy(cell_quotas(members, size)).to(device)
    centroids = x[_seeds(x, w, cells, quota, generator)]
    for _ in range(ITERATIONS):
        labels, distances = _assign(x, centroids)
        counts = torch.zeros(len(centroids), device=x.device).index_add_(0, labels, w)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x * w[:, None])
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
        empty = int((~filled).sum())
        if empty:
            centroids[~filled] = x[(distances * w).topk(min(empty, n)).indices]
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


def _seeds(x: torch.Tensor, w: torch.Tensor, cells: torch.Tensor, quota: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``quota[c]`` members of each cell ``c``, cell after cell (so that a cell's entries
    are consecutive labels, which the label texture's WebP rewards), drawn as k-means++ draws: each
    next one with probability proportional to its squared distance from the cell's seeds so far
    times its weight ``w``, every cell at once. Past ``SEQUENTIAL_DRAWS`` a cell's remaining seeds
    are drawn together from those distances (a crowded cell of near-zero SH can need thousands).
    Uniformly random members instead left two recurring SH patterns on one entry where another had
    three: twice the RMS error of the CPU's palette (test_export_sog, run on a GPU)."""
    device_generator = torch.Generator(device=x.device)
    device_generator.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    n_cells, index = len(quota), torch.arange(len(x), device=x.device)
    distance = torch.full((len(x),), float("inf"), device=x.device)
    picks: list[torch.Tensor] = []
    for draw in range(min(int(quota.max()), SEQUENTIAL_DRAWS)):
        key = _race_keys(distance * w if draw else w, device_generator)
        best = torch.full((n_cells,), float("inf"), device=x.device).scatter_reduce(0, cells, key, "amin")
        winner = torch.full((n_cells,), -1, dtype=torch.long, device=x.device)
        winner.scatter_reduce_(0, cells, torch.where(key == best[cells], index, -1), "amax")
        active = (quota > draw) & (winner >= 0)
        picks.append(winner[active])
        centre = x[winner.clamp_min(0)][cells]
        distance = torch.where(active[cells], torch.minimum(distance, ((x - centre) ** 2).sum(dim=1)), distance)
    remaining = (quota - SEQUENTIAL_DRAWS).clamp_min(0)
    if int(remaining.max()) > 0:
        by_key = torch.argsort(_race_keys(distance * w, device_generator))
        order = by_key[torch.sort(cells[by_key], stable=True).indices]
        members = torch.bincount(cells, minlength=n_cells)
        rank = torch.arange(len(x), device=x.device) - (torch.cumsum(members, 0) - members)[cells[order]]
        picks.append(order[rank < remaining[cells[order]]])
    chosen = torch.cat(picks)
    return chosen[torch.sort(cells[chosen], stable=True).indices]


def _race_keys(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Exponential race: the smallest ``-log(u) / w`` of a group is a draw proportional to ``w``
    (and its k smallest, k draws without replacement); a weight of 0 never wins."""
    uniform = torch.rand(len(weights), generator=generator, device=weights.device).clamp_min(1e-12)
    return torch.where(weights > 0, -torch.log(uniform) / weights.clamp_min(1e-30), float("inf"))


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
