"""A few training steps on a tiny made-up scene, so that a job's first step does not pay for the
GPU's one-time costs: CUDA context creation, loading gsplat's built extension, Triton compiling the
training SSIM's kernels, cuBLAS/cuDNN handles. On a fresh H200 process those took ~9 s of the first
job's training stage. The trainer worker warms up before it consumes; ``photosplat reconstruct``
warms up in a thread while SfM runs on the CPU.

Triton kernels are compiled once per specialisation of their integer arguments; the blur kernels
opt out of it (``do_not_specialize``), so one image size here warms every size a job brings.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from photosplat_trainer.backends import select_backend
from photosplat_trainer.dataset import Dataset, View

_SIDE = 64


def warm_up(preset_name: str = "standard", device: str = "auto", steps: int = 30) -> float:
    """Trains ``preset_name``'s recipe for ``steps`` steps on a tiny scene; returns the seconds it
    took (0 where there is no GPU: the CPU has nothing to compile)."""
    from photosplat_trainer.config_resolution import resolve_config
    from photosplat_trainer.train import train

    backend = select_backend(device)
    if backend.device.type != "cuda":
        return 0.0
    started = time.monotonic()
    cfg = resolve_config(preset_name, {"checkpoint_every": 0, "eval_every": 0, "max_gaussians": 20_000, "refine_every": 5}, backend, steps=steps)
    train(_tiny_scene(), cfg, backend)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    return time.monotonic() - started


def _tiny_scene(n_views: int = 6, n_points: int = 2000) -> Dataset:
    """Cameras on a circle around noise-coloured points: enough for every code path of a step
    (batches, densification, evaluation), nothing worth learning."""
    rng = np.random.default_rng(0)
    points = rng.uniform(-1.0, 1.0, size=(n_points, 3)).astype(np.float32)
    colors = rng.uniform(0.0, 1.0, size=(n_points, 3)).astype(np.float32)
    f = _SIDE / (2 * math.tan(math.radians(25)))
    K = torch.tensor([[f, 0, _SIDE / 2], [0, f, _SIDE / 2], [0, 0, 1]], dtype=torch.float32)
    views = []
    for i in range(n_views):
        angle = 2 * math.pi * i / n_views
        centre = np.array([4 * math.cos(angle), 4 * math.sin(angle), 1.0])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        R = np.stack([right, down, forward])
        viewmat = np.eye(4)
        viewmat[:3, :3], viewmat[:3, 3] = R, -R @ centre
        pixels = torch.as_tensor(rng.integers(0, 256, size=(_SIDE, _SIDE, 3), dtype=np.uint8))
        held_out = i == n_views - 1
        views.append(View(f"warmup{i}.png", pixels, K, torch.as_tensor(viewmat, dtype=torch.float32), -1 if held_out else i))
    return Dataset(views[:-1], views[-1:], points, colors)
