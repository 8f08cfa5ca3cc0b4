"""Photometric losses and metrics: L1, SSIM (11x11 Gaussian window, sigma 1.5) and PSNR.

SSIM is computed with 'valid' windows (no padding), as gsplat's ``fused_ssim(padding="valid")`` and
torchmetrics do; no learned metric (no downloaded weights).

:func:`ssim` blurs with depthwise convolutions (evaluation, CPU). On an H100 cuDNN's depthwise
convolutions and their backward took ~7 of a training step's ~8.5 ms, so on CUDA
:func:`training_ssim` blurs with Triton kernels instead (the fused-ssim kernel that gsplat's
simple_trainer uses is not on PyPI).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
import torch.nn.functional as F

_C1, _C2 = 0.01**2, 0.03**2


def gaussian_window(size: int = 11, sigma: float = 1.5, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two images (H, W, C) or batches (B, H, W, C) with values in [0, 1]."""
    channels = a.shape[-1]
    g = gaussian_window(window, sigma, dtype=a.dtype, device=a.device)
    # Separable blur: a (1 x k) then a (k x 1) depthwise convolution.
    kx = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # (5, B, C, H, W)
        planes = F.conv2d(F.conv2d(t.flatten(0, 1), kx, groups=channels), ky, groups=channels)
        return planes.unflatten(0, t.shape[:2])

    return ssim_with_blur(a, b, blur)


def ssim_with_blur(a: torch.Tensor, b: torch.Tensor, blur: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """SSIM with ``blur`` (a 'valid' blur of the last two axes) doing the windowing; the five blurred
    maps go through it as one (5, B, C, H, W) batch."""
    if a.dim() == 3:
        a, b = a[None], b[None]
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    mu_x, mu_y, exx, eyy, exy = blur(torch.stack([x, y, x * x, y * y, x * y]))
    sxx = exx - mu_x**2
    syy = eyy - mu_y**2
    sxy = exy - mu_x * mu_y
    num = (2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)
    den = (mu_x**2 + mu_y**2 + _C1) * (sxx + syy + _C2)
    return (num / den).mean()


SsimFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def training_ssim(device: torch.device) -> tuple[SsimFn, str]:
    """The SSIM for the training loss on ``device`` and its name (for the log)."""
    if device.type == "cuda" and importlib.util.find_spec("triton") is not None:
        from photosplat_trainer.backends.blur_triton import blur2d

        weights = gaussian_window(device=device)
        return (lambda a, b: ssim_with_blur(a, b, lambda t: blur2d(t, weights))), "Triton"
    return ssim, "convolution"


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


def photometric_loss(render: torch.Tensor, target: torch.Tensor, ssim_lambda: float, ssim_fn: SsimFn = ssim) -> torch.Tensor:
    return (1.0 - ssim_lambda) * l1(render, target) + ssim_lambda * (1.0 - ssim_fn(render, target))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()
