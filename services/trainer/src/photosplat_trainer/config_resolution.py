"""A job's training configuration: its preset and overrides, fitted to the backend it runs on
(the CPU's schedule and image caps, MCMC and view batches only where gsplat is)."""

from __future__ import annotations

from typing import Any

from photosplat_trainer.backends import Backend
from photosplat_trainer.config import TrainConfig, preset, with_overrides


def resolve_config(
    preset_name: str, overrides: dict[str, Any], backend: Backend, steps: int | None = None, max_steps: int | None = None
) -> TrainConfig:
    cfg = preset(preset_name, **overrides)
    cfg = adapt_to_backend(cfg, backend)
    if backend.name == "cpu":
        max_steps = min(max_steps or cfg.cpu_max_steps, cfg.cpu_max_steps)
    if max_steps is not None:
        steps = min(steps or cfg.steps, max_steps)
    if steps is not None and steps != cfg.steps:
        # A different length keeps the preset's schedule proportions.
        cfg = cfg.scaled(steps / cfg.steps)
    if backend.name == "cpu":
        side = cfg.max_image_side
        cfg = with_overrides(cfg, max_image_side=cfg.cpu_max_image_side if side is None else min(side, cfg.cpu_max_image_side))
    return cfg


def adapt_to_backend(cfg: TrainConfig, backend: Backend) -> TrainConfig:
    """``cfg`` as ``backend`` can run it: MCMC and batches of views only where gsplat is."""
    if backend.name == "cpu" and cfg.strategy == "mcmc":
        # MCMC relocation needs gsplat's kernels: the CPU densifies the default way, from the
        # default initialisation and without MCMC's regularisers.
        ref = preset("reference")
        cfg = with_overrides(
            cfg, strategy="default", init_opacity=ref.init_opacity, init_scale=ref.init_scale,
            opacity_reg=ref.opacity_reg, scale_reg=ref.scale_reg,
        )
    if backend.name == "cpu":
        # 100k random Gaussians would make every CPU step take seconds.
        cfg = with_overrides(cfg, random_init_points=min(cfg.random_init_points, 10_000))
    if cfg.batch_size > backend.max_batch:
        # Same number of views seen, one per step (the CPU rasteriser renders one at a time).
        cfg = cfg.with_batch(backend.max_batch)
    return cfg
