"""The types every backend shares: what a render returns, the backend's interface and its
densification strategy's. The implementations import them from here, the package re-exports them."""

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
