"""The k-means behind SOG's codebooks (1-D, per attribute) and its SH palette (vectors of 45).

The palette is the costly part: 300k Gaussians into 16k entries. On the CPU it is a two-level
k-means (coarse cells, then each cell's share of the palette) in numpy, a few seconds; where a GPU
is present it is one Lloyd k-means over every Gaussian at once, seeded cell by cell the same way, in
well under a second.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from photosplat_trainer.gaussians import opacity

CODEBOOK_SIZE = 256
_KMEANS_ITERATIONS = 10


def quantize_1d(values: np.ndarray, k: int = CODEBOOK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A sorted ``k``-entry codebook for all of ``values`` and each value's nearest entry (uint8).

    The values fall into 4096 even bins over their range, and the occupied bins are clustered by
    1-D Lloyd iterations, each bin counting once: entries spread over every range the values
    occupy, empty stretches between them (floaters' sizes) left out. The reference weights bins by
    the square root of their count, which on trained scenes gave 2x the largest and the 99th
    percentile error (log-scales: 0.14 and 0.032 against 0.05 and 0.007) for the same mean."""
    flat = np.asarray(values, np.float64).reshape(-1)
    if flat.size == 0:
        return np.zeros(k, np.float32), np.zeros(np.shape(values), np.uint8)
    low, high = flat.min(), flat.max()
    if high - low < 1e-20:
        return np.full(k, low, np.float32), np.zeros(np.shape(values), np.uint8)
    bins = 4096
    which = np.minimum(bins - 1, ((flat - low) / (high - low) * bins).astype(np.int64))
    counts = np.bincount(which, minlength=bins)
    used = counts > 0
    centres = np.bincount(which, flat, minlength=bins)[used] / counts[used]
    if centres.size <= k:
        codebook = np.concatenate([centres, np.full(k - centres.size, centres[-1])])
    else:
        codebook = _lloyd_1d(centres, k)
    codebook = np.sort(codebook).astype(np.float32)
    edges = (codebook[1:].astype(np.float64) + codebook[:-1]) / 2
    labels = np.searchsorted(edges, flat).astype(np.uint8)
    return codebook, labels.reshape(np.shape(values))


def _lloyd_1d(x: np.ndarray, k: int, iterations: int = 200) -> np.ndarray:
    """``k`` centres of the sorted points ``x``, started at their quantiles."""
    centres = x[((np.arange(k) + 0.5) / k * x.size).astype(np.int64)]
    for _ in range(iterations):
        which = np.searchsorted((centres[1:] + centres[:-1]) / 2, x)
        counts = np.bincount(which, minlength=k)
        moved = np.where(counts > 0, np.bincount(which, x, minlength=k) / np.maximum(counts, 1), centres)
        if np.allclose(moved, centres, rtol=0.0, atol=1e-9 * (x[-1] - x[0])):
            break
        centres = np.sort(moved)
    return centres


def _nearest(points: np.ndarray, centroids: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Index of each point's nearest centroid."""
    half_norms = 0.5 * (centroids * centroids).sum(axis=1)
    out = np.empty(len(points), np.int64)
    scores = np.empty((min(chunk, len(points)), len(centroids)), np.float32)
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        s = scores[: len(block)]
        # argmin |p - c|^2 = argmin (|c|^2 / 2 - p.c), in place: the temporaries cost more than the product
        np.matmul(block, centroids.T, out=s)
        np.subtract(half_norms, s, out=s)
        out[start : start + chunk] = s.argmin(axis=1)
    return out


def _kmeans_plus_plus(points: np.ndarray, k: int, rng: np.random.Generator, weights: np.ndarray | None = None) -> np.ndarray:
    """Each next centre a point drawn with probability proportional to its squared distance from
    the centres so far (times its weight)."""
    chosen = [int(rng.integers(len(points)))]
    distance = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        total = np.cumsum(distance if weights is None else distance * weights, dtype=np.float64)
        if total[-1] > 0:
            chosen.append(min(int(np.searchsorted(total, rng.random() * total[-1], side="right")), len(points) - 1))
        else:  # every point is a centre already: any will do
            chosen.append(int(rng.integers(len(points))))
        np.minimum(distance, ((points - points[chosen[-1]]) ** 2).sum(axis=1), out=distance)
    return points[chosen].copy()


def _kmeans(
    points: np.ndarray, k: int, rng: np.random.Generator, fit_per_centroid: int | None = None, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means from a k-means++ start (the reference's random points merged recurring
    colours: 64 SH patterns in 3000 Gaussians came back at 2x the RMS error); an emptied cluster
    restarts at a random point. With ``fit_per_centroid``, the centroids are fitted on a random
    sample of that many points per centroid and then every point is assigned once. ``weights``: each
    point's pull on its centroid (a weighted mean)."""
    n, dims = points.shape
    if n <= k:
        return points.copy(), np.arange(n)
    fit, w = points, (np.ones(n) if weights is None else weights)
    if fit_per_centroid is not None and n > fit_per_centroid * k:
        chosen = rng.choice(n, fit_per_centroid * k, replace=False)
        fit, w = points[chosen], w[chosen]
    # Seeded from a sample: k-means++ is k passes over its points.
    sample = np.arange(len(fit)) if len(fit) <= 8 * k else rng.choice(len(fit), 8 * k, replace=False)
    centroids = _kmeans_plus_plus(fit[sample], k, rng, None if weights is None else w[sample])
    for _ in range(_KMEANS_ITERATIONS):
        labels = _nearest(fit, centroids)
        counts = np.bincount(labels, w, minlength=k)
        sums = np.stack([np.bincount(labels, w * fit[:, d], minlength=k) for d in range(dims)], axis=1)
        filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(points.dtype)
        if not filled.all():
            centroids[~filled] = fit[rng.choice(len(fit), int((~filled).sum()), replace=False)]
    return centroids, _nearest(points, centroids)


def coarse_cells(size: int) -> int:
    return max(1, int(round(math.sqrt(size))))


def cell_quotas(members: np.ndarray, size: int) -> np.ndarray:
    """Palette entries per coarse cell (``members``: its Gaussians, or the sum of their weights):
    one for every occupied cell, the rest by share, the largest remainders taking what flooring
    left over; never more than ``size`` in all (labels are 16-bit)."""
    share = (size - int((members > 0).sum())) * members / members.sum()
    quota = np.where(members > 0, 1 + np.floor(share), 0).astype(np.int64)
    quota[np.argsort(-(share - np.floor(share)))[: size - int(quota.sum())]] += 1
    return quota


def _gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def sh_palette(shN: np.ndarray, size: int, seed: int = 0, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A palette of at most ``size`` SH-rest vectors (``(P, K, 3)``) and each Gaussian's entry.

    Two levels: sqrt(size) coarse cells (fitted on a sample, every Gaussian then assigned once),
    then each cell gets the share of the palette its Gaussians are of the whole, clustered within
    the cell. Labels of one cell are consecutive, so neighbouring Gaussians (alike in colour) share
    a label's high byte, which WebP compresses. ``weights``: each Gaussian's pull on its entry (see
    ``importance``)."""
    n, k, _ = shN.shape
    points = shN.reshape(n, k * 3).astype(np.float32)
    if n <= size:
        return points.reshape(n, k, 3), np.arange(n)
    if _gpu_available():
        from photosplat_trainer.export.clustering_torch import sh_palette_torch

        centroids, labels = sh_palette_torch(points, size, seed, "cuda", weights)
        return centroids.reshape(-1, k, 3), labels
    _, cells = _kmeans(points, coarse_cells(size), np.random.default_rng(seed), fit_per_centroid=32)
    members = np.bincount(cells, minlength=coarse_cells(size))
    quota = cell_quotas(members if weights is None else np.bincount(cells, weights, minlength=coarse_cells(size)), size)
    order = np.argsort(cells, kind="stable")
    starts = np.concatenate([[0], np.cumsum(members)])
    filled = np.flatnonzero(members)

    def fit_cell(cell: int) -> tuple[np.ndarray, np.ndarray]:
        members_of_cell = order[starts[cell] : starts[cell + 1]]
        cell_weights = None if weights is None else weights[members_of_cell]
        return _kmeans(points[members_of_cell], int(quota[cell]), np.random.default_rng([seed, cell]), weights=cell_weights)

    # Hundreds of small products: OpenBLAS's threads cost more than they save on each (5-10x on
    # a busy machine), so one BLAS thread per cell and the cells spread over the cores instead.
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        fitted = list(pool.map(fit_cell, filled))
    labels = np.empty(n, np.int64)
    offset = 0
    for cell, (centroids, local) in zip(filled, fitted, strict=True):
        labels[order[starts[cell] : starts[cell + 1]]] = offset + local
        offset += len(centroids)
    return np.concatenate([c for c, _ in fitted]).reshape(-1, k, 3), labels


def importance(opacity_logits: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """How much of the image a Gaussian's colour can reach: opacity times the area of its two
    largest axes (as LightGaussian weights its SH vector quantisation), normalised to a mean of 1
    and capped at 100 so that a few huge Gaussians do not take the palette."""
    largest_two = np.sort(log_scales.astype(np.float64), axis=1)[:, 1:].sum(axis=1)
    w = opacity(opacity_logits) * np.exp(largest_two - largest_two.max())
    w = w / max(w.mean(), 1e-300)
    return np.clip(w, 1e-3, 100.0)
