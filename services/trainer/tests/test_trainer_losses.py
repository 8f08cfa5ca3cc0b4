"""L1, SSIM and PSNR on images whose answers are known."""

from __future__ import annotations

import math

import pytest
import torch
from photosplat_trainer.losses import gaussian_window, l1, photometric_loss, psnr, ssim


def image(seed: int = 0, h: int = 32, w: int = 40) -> torch.Tensor:
    return torch.rand(h, w, 3, generator=torch.Generator().manual_seed(seed))


def test_ssim_is_one_for_identical_images_and_falls_with_noise() -> None:
    x = image()
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    light, heavy = (x + 0.05 * noise).clamp(0, 1), (x + 0.3 * noise).clamp(0, 1)
    assert 1.0 > float(ssim(x, light)) > float(ssim(x, heavy)) > 0.0


def test_ssim_of_constant_images_follows_the_luminance_term() -> None:
    # Flat images: variances are 0, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    a, b = torch.full((20, 20, 3), 0.2), torch.full((20, 20, 3), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert float(ssim(a, b)) == pytest.approx(expected, rel=1e-5)


def test_gaussian_window_is_normalised_and_symmetric() -> None:
    g = gaussian_window(11, 1.5)
    assert float(g.sum()) == pytest.approx(1.0)
    assert torch.allclose(g, g.flip(0))
    assert int(g.argmax()) == 5


def test_l1_psnr_and_the_combined_loss() -> None:
    a = torch.zeros(8, 8, 3)
    b = torch.full((8, 8, 3), 0.1)
    assert float(l1(a, b)) == pytest.approx(0.1)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert psnr(a, a) == math.inf
    x = image()
    assert float(photometric_loss(x, x, 0.2)) == pytest.approx(0.0, abs=1e-6)
    y = (x + 0.1).clamp(0, 1)
    expected = 0.8 * float(l1(x, y)) + 0.2 * (1 - float(ssim(x, y)))
    assert float(photometric_loss(x, y, 0.2)) == pytest.approx(expected, rel=1e-5)
