"""The SH palette's two k-means: the CPU's two-level one and the batched one a GPU runs. The batched
one runs here on the CPU's torch (same code, another device): it must serve the Gaussians at least
as well as the CPU's, on recurring patterns (as SH of repeated materials) and on a continuous spread."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from photosplat_trainer.export import clustering
from photosplat_trainer.export.clustering_torch import sh_palette_torch


def _patterns(n: int, rng: np.random.Generator) -> np.ndarray:
    patterns = rng.normal(0, 0.15, (64, 45))
    return (patterns[rng.integers(0, 64, n)] + rng.normal(0, 0.01, (n, 45))).astype(np.float32)


def _spread(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(0, 0.2, (500, 45))
    scale = rng.uniform(0.2, 1.5, (n, 1))
    return (centres[rng.integers(0, 500, n)] * scale + rng.normal(0, 0.03, (n, 45))).astype(np.float32)


def _rms(points: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> float:
    return float(np.sqrt(((points - centroids.reshape(len(centroids), -1)[labels]) ** 2).mean()))


@pytest.mark.parametrize("make", [_patterns, _spread])
def test_the_batched_palette_serves_the_gaussians_as_well_as_the_two_level_one(make) -> None:  # type: ignore[no-untyped-def]
    points = make(6000, np.random.default_rng(5))
    size = 256
    ours, labels = sh_palette_torch(points, size, seed=0, device="cpu")
    assert len(ours) <= size and labels.min() >= 0 and labels.max() < len(ours)
    cpu_centroids, cpu_labels = clustering.sh_palette(points.reshape(-1, 15, 3), size)
    assert _rms(points, ours, labels) <= 1.02 * _rms(points, cpu_centroids, cpu_labels)


def test_a_rare_pattern_keeps_its_own_entry() -> None:
    """Ten Gaussians of a colour far from the rest: an emptied entry restarts at the worst-served
    Gaussian, so they are not merged into a common pattern."""
    rng = np.random.default_rng(2)
    points = _patterns(4000, rng)
    points[:10] = 3.0
    centroids, labels = sh_palette_torch(points, 64, seed=1, device="cpu")
    assert np.abs(centroids[labels[:10]] - 3.0).max() < 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_palette_of_300k_gaussians_takes_under_a_second() -> None:
    points = _spread(320_000, np.random.default_rng(0))
    sh_palette_torch(points[:20_000], 1024, seed=0, device="cuda")  # CUDA start-up and cuBLAS handles
    started = time.monotonic()
    centroids, labels = clustering.sh_palette(points.reshape(-1, 15, 3), 16384)
    seconds = time.monotonic() - started
    print(f"palette of {len(points)} into {len(centroids)}: {seconds:.2f} s, RMS {_rms(points, centroids, labels):.4f}")
    assert seconds < 1.0
