"""Scoring a set of Gaussians: held-out PSNR/SSIM (views of one size rendered in batches) and single
renders (thumbnails)."""

from __future__ import annotations

import math

import numpy as np
import torch

from photosplat_trainer.backends import Backend
from photosplat_trainer.config import TrainConfig
from photosplat_trainer.dataset import View
from photosplat_trainer.gaussians import GaussianSet
from photosplat_trainer.losses import psnr, ssim
from photosplat_trainer.model import Params, from_gaussian_set


def sh_degree_of(params: Params) -> int:
    return round(math.sqrt(params["shN"].shape[1] + 1)) - 1


@torch.no_grad()
def evaluate_params(params: Params, views: list[View], backend: Backend, cfg: TrainConfig, chunk: int = 8) -> tuple[float, float]:
    """Mean PSNR and SSIM over ``views`` (renders clamped to [0, 1]), rendered ``chunk`` views of one
    size at a time where the backend batches."""
    background = torch.tensor(cfg.background, dtype=torch.float32, device=backend.device)
    degree = sh_degree_of(params)
    psnrs, ssims = [], []
    step = max(1, min(chunk, backend.max_batch))
    by_size: dict[tuple[int, ...], list[View]] = {}
    for view in views:
        by_size.setdefault(tuple(view.pixels.shape), []).append(view.to(backend.device))
    for same in by_size.values():
        for start in range(0, len(same), step):
            batch = same[start : start + step]
            images = backend.render_batch(params, batch, degree, background, antialiased=cfg.antialiased).image.clamp(0, 1)
            for image, view in zip(images, batch, strict=True):
                target = view.image
                psnrs.append(psnr(image, target))
                ssims.append(float(ssim(image, target)))
    return float(np.mean(psnrs)), float(np.mean(ssims))


@torch.no_grad()
def evaluate_gaussians(g: GaussianSet, views: list[View], backend: Backend, cfg: TrainConfig) -> tuple[float, float]:
    return evaluate_params(from_gaussian_set(g, backend.device), views, backend, cfg)


@torch.no_grad()
def render_image(g: GaussianSet, view: View, backend: Backend, cfg: TrainConfig) -> np.ndarray:
    """An (H, W, 3) float image of ``g`` seen from ``view``, e.g. for a thumbnail."""
    params = from_gaussian_set(g, backend.device)
    background = torch.tensor(cfg.background, dtype=torch.float32, device=backend.device)
    out = backend.render(params, view.to(backend.device), sh_degree_of(params), background, antialiased=cfg.antialiased)
    return out.image.clamp(0, 1).cpu().numpy()
