"""Rendering backends: one interface, a pure-PyTorch CPU rasteriser and gsplat on CUDA.

``render(params, view, sh_degree, background, antialiased=...)`` returns the image, its alpha and the
``info`` the backend's densification strategy needs; ``render_batch`` does the same for views of one
size at once (images (C, H, W, 3), the training step's form); ``densifier(cfg, scene_scale, n)`` returns that
strategy. gsplat is imported only inside the CUDA backend, so CPU machines never need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from photosplat_trainer.config import TrainConfig
from photosplat_trainer.dataset import View
from photosplat_trainer.model import Optimizers, Params


@dataclass
class RenderOutput:
    image: torch.Tensor  # (H, W, 3)
    alpha: torch.Tensor  # (H, W, 1)
    info: dict[str, Any] = field(default_factory=dict)


class Densifier(Protocol):
    """Adaptive density control around one training step (gsplat's Strategy, wrapped)."""

    max_gaussians: int  # the budget growth stops at

    def pre_backward(self, params: Params, optimizers: Optimizers, step: int, info: dict[str, Any]) -> None: ...

    def post_backward(self, params: Params, optimizers: Optimizers, step: int, info: dict[str, Any], means_lr: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Backend(Protocol):
    name: str
    device: torch.device

    def render(
        self,
        params: Params,
        view: View,
        sh_degree: int,
        background: torch.Tensor,
        *,
        antialiased: bool = False,
        viewmat: torch.Tensor | None = None,
    ) -> RenderOutput: ...

    def render_batch(
        self,
        params: Params,
        views: list[View],
        sh_degree: int,
        background: torch.Tensor,
        *,
        antialiased: bool = False,
        packed: bool = False,
        absgrad: bool = False,
        viewmats: torch.Tensor | None = None,
    ) -> RenderOutput: ...

    # Most views one render_batch call takes (the CPU rasteriser renders one at a time).
    max_batch: int

    def densifier(self, cfg: TrainConfig, scene_scale: float, n_gaussians: int) -> Densifier: ...

    def default_max_gaussians(self) -> int: ...


def check_backend(device: str = "auto") -> str:
    """At start-up, the backend jobs will get, or a clear error: a worker that sees a GPU but cannot
    load the CUDA backend (gsplat missing, no compiler for its kernels) would otherwise fail every
    job three times. Training on the CPU beside a GPU is an operator's explicit choice (device=cpu)."""
    try:
        return select_backend(device).name
    except Exception as exc:
        if device == "cpu" or not torch.cuda.is_available():
            raise
        raise RuntimeError(
            f"a CUDA GPU is visible but the CUDA training backend cannot load ({type(exc).__name__}: {exc}). "
            "Install the trainer with its [cuda] extra (gsplat, and nvcc for its kernels), "
            "or set PHOTOSPLAT_TRAINER_DEVICE=cpu to train on the CPU instead."
        ) from exc


def select_backend(device: str = "auto") -> Backend:
    """``auto``: CUDA when a GPU is visible, else CPU. ``cuda`` without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but PyTorch sees no CUDA GPU")
        from photosplat_trainer.backends.cuda import CudaBackend

        return CudaBackend()
    from photosplat_trainer.backends.cpu import CpuBackend

    return CpuBackend()
