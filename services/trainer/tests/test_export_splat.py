from pathlib import Path

import numpy as np
from photosplat_trainer.export.splat import importance_order, read_splat, write_splat
from photosplat_trainer.gaussians import SH_C0, GaussianSet


def random_set(n: int, degree: int = 3, seed: int = 0) -> GaussianSet:
    rng = np.random.default_rng(seed)
    f = np.float32
    return GaussianSet(
        means=rng.normal(0, 2, (n, 3)).astype(f),
        log_scales=rng.uniform(-6, 0, (n, 3)).astype(f),
        quats=rng.normal(size=(n, 4)).astype(f),
        opacity_logits=rng.normal(0, 3, n).astype(f),
        sh0=rng.uniform(-1.7, 1.7, (n, 1, 3)).astype(f),
        shN=rng.normal(0, 0.2, (n, (degree + 1) ** 2 - 1, 3)).astype(f),
    )


def test_byte_layout(tmp_path: Path) -> None:
    g = GaussianSet(
        means=np.array([[1.0, -2.0, 3.5]], np.float32),
        log_scales=np.log(np.array([[0.5, 0.25, 2.0]], np.float32)),
        quats=np.array([[2.0, 0.0, 0.0, 0.0]], np.float32),  # unnormalised identity
        opacity_logits=np.array([0.0], np.float32),  # alpha 0.5
        sh0=np.array([[[0.0, 1.0, -3.0]]], np.float32),
        shN=np.zeros((1, 0, 3), np.float32),
    )
    raw = write_splat(g, tmp_path / "s.splat").read_bytes()
    assert len(raw) == 32
    np.testing.assert_allclose(np.frombuffer(raw[:12], "<f4"), [1.0, -2.0, 3.5])
    np.testing.assert_allclose(np.frombuffer(raw[12:24], "<f4"), [0.5, 0.25, 2.0], rtol=1e-6)
    r, gg, b, a = raw[24:28]
    assert (r, gg, b, a) == (128, round((0.5 + SH_C0) * 255), 0, 128)
    assert tuple(raw[28:32]) == (255, 128, 128, 128)  # w=1 -> 256 clipped to 255


def test_round_trip_within_quantisation(tmp_path: Path) -> None:
    g = random_set(500)
    back = read_splat(write_splat(g, tmp_path / "scene.splat"))
    assert (tmp_path / "scene.splat").stat().st_size == 32 * 500
    assert back.sh_degree == 0 and len(back) == len(g)
    order = importance_order(g)
    ref = g.subset(order)
    np.testing.assert_array_equal(back.means, ref.means)
    np.testing.assert_allclose(back.log_scales, ref.log_scales, atol=1e-5)
    colour = np.clip(0.5 + SH_C0 * ref.sh0, 0, 1)
    np.testing.assert_allclose(0.5 + SH_C0 * back.sh0, colour, atol=0.5 / 255 + 1e-6)
    alpha = 1 / (1 + np.exp(-ref.opacity_logits))
    alpha_back = 1 / (1 + np.exp(-back.opacity_logits))
    np.testing.assert_allclose(alpha_back, alpha, atol=0.5 / 255 + 1e-6)
    q = ref.quats / np.linalg.norm(ref.quats, axis=1, keepdims=True)
    qb = back.quats / np.linalg.norm(back.quats, axis=1, keepdims=True)
    assert np.abs(np.abs((q * qb).sum(axis=1)) - 1).max() < 1e-3


def test_sorted_by_importance_as_the_reference(tmp_path: Path) -> None:
    g = random_set(300)
    back = read_splat(write_splat(g, tmp_path / "s.splat"))
    # The reference key: -exp(sum of log-scales) * sigmoid(opacity), ascending.
    key = -np.exp(g.log_scales.astype(np.float64).sum(axis=1)) / (1 + np.exp(-g.opacity_logits.astype(np.float64)))
    np.testing.assert_array_equal(back.means, g.means[np.argsort(key, kind="stable")])


def test_empty(tmp_path: Path) -> None:
    path = write_splat(random_set(0), tmp_path / "e.splat")
    assert path.stat().st_size == 0
    assert len(read_splat(path)) == 0
