"""The CPU rasteriser: where a Gaussian lands, how wide it is, and that its gradients are right."""

from __future__ import annotations

import math

import pytest
import torch
from photosplat_trainer.backends.rasterize import SH_C0, rasterize

F = 50.0
W, H = 64, 48


def K(dtype: torch.dtype, width: int, height: int) -> torch.Tensor:
    return torch.tensor([[F, 0, width / 2], [0, F, height / 2], [0, 0, 1.0]], dtype=dtype)


def render(means, quats, scales, opacities, colors, *, dtype=torch.float32, antialiased=False, size=(W, H)):
    sh = (colors - 0.5)[:, None, :] / SH_C0
    return rasterize(
        means, quats, scales, opacities, sh, torch.eye(4, dtype=dtype), K(dtype, *size), size[0], size[1], 0,
        torch.zeros(3, dtype=dtype), antialiased=antialiased,
    )


def test_a_single_gaussian_lands_at_its_projection_with_the_ewa_footprint() -> None:
    # Projects onto the pixel centre (36.5, 21.5).
    x, y, z, s = 0.18, -0.1, 2.0, 0.04
    image, alpha, info = render(
        torch.tensor([[x, y, z]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), s),
        torch.tensor([0.8]), torch.tensor([[1.0, 0.5, 0.25]]),
    )
    a = alpha[..., 0].double()
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    cx, cy = float((a * xs).sum() / a.sum()), float((a * ys).sum() / a.sum())
    # Projection: u = f x / z + cx; pixel centres at +0.5.
    assert cx == pytest.approx(F * x / z + W / 2, abs=0.02)
    assert cy == pytest.approx(F * y / z + H / 2, abs=0.02)
    # Footprint: variance (f s / z)^2 plus the 0.3 px^2 low-pass (truncated at alpha 1/255: ~3% less).
    var = float((a * (xs - cx) ** 2).sum() / a.sum())
    assert var == pytest.approx((F * s / z) ** 2 + 0.3, rel=0.06)
    # Peak opacity 0.8 near the centre, colour as given (SH degree 0 +0.5), nothing far away.
    assert float(a.max()) == pytest.approx(0.8, abs=0.02)
    peak = divmod(int(a.argmax()), W)
    assert torch.allclose(image[peak] / alpha[peak], torch.tensor([1.0, 0.5, 0.25]), atol=1e-4)
    assert float(a[0, 0]) == 0.0 and int(info["gaussian_ids"][0]) == 0


def test_gaussians_behind_the_camera_or_off_screen_are_culled() -> None:
    means = torch.tensor([[0.0, 0.0, -2.0], [50.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    _image, alpha, info = render(
        means, torch.tensor([[1.0, 0, 0, 0]] * 3), torch.full((3, 3), 0.05), torch.full((3,), 0.9), torch.ones(3, 3)
    )
    assert info["gaussian_ids"].tolist() == [2]
    assert float(alpha.max()) > 0.5


def test_nearer_gaussians_occlude_farther_ones() -> None:
    means = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 2.0]])  # the second is in front
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    image, _, _ = render(means, torch.tensor([[1.0, 0, 0, 0]] * 2), torch.full((2, 3), 0.2), torch.full((2,), 0.99), colors)
    centre = image[H // 2, W // 2]
    assert float(centre[2]) > 0.9 and float(centre[0]) < 0.05


def test_gradients_match_finite_differences() -> None:
    torch.manual_seed(0)
    dtype = torch.float64
    n = 4
    params = {
        "means": torch.tensor([[0.05, 0.0, 2.0], [-0.15, 0.1, 2.5], [0.2, -0.12, 3.0], [0.0, 0.05, 1.8]], dtype=dtype),
        "quats": torch.randn(n, 4, dtype=dtype),
        "scales": torch.rand(n, 3, dtype=dtype) * 0.05 + 0.03,
        "opacities": torch.rand(n, dtype=dtype) * 0.5 + 0.3,
        "colors": torch.rand(n, 3, dtype=dtype),
    }
    weights = torch.rand(20, 24, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))

    def loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        image, alpha, _ = render(p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], dtype=dtype, antialiased=True, size=(24, 20))
        return (image * weights).sum() + alpha.sum()

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss(leaves).backward()
    eps = 1e-6
    for name, value in params.items():
        for index in [(0,) + (0,) * (value.dim() - 1), (n - 1,) + (value.dim() - 1) * (1,)]:
            plus, minus = {k: v.clone() for k, v in params.items()}, {k: v.clone() for k, v in params.items()}
            plus[name][index] += eps
            minus[name][index] -= eps
            numeric = float(loss(plus) - loss(minus)) / (2 * eps)
            analytic = float(leaves[name].grad[index])
            assert analytic == pytest.approx(numeric, rel=1e-4, abs=1e-6), (name, index)
    assert math.isfinite(float(leaves["means"].grad.abs().sum()))
