"""The CPU backend: the pure-PyTorch rasteriser and the plain-PyTorch densifier."""

from __future__ import annotations

import torch

from photosplat_trainer.backends.types import RenderOutput
from photosplat_trainer.backends.rasterize import rasterize
from photosplat_trainer.config import TrainConfig
from photosplat_trainer.dataset import View
from photosplat_trainer.densify import SimpleDensifier
from photosplat_trainer.model import Params

# A CPU trains small scenes only: beyond this many Gaussians a step takes seconds.
CPU_MAX_GAUSSIANS = 20_000


class CpuBackend:
    name = "cpu"
    max_batch = 1

    def __init__(self, tile_size: int = 8) -> None:
        self.device = torch.device("cpu")
        self.tile_size = tile_size

    def render(
        self,
        params: Params,
        view: View,
        sh_degree: int,
        background: torch.Tensor,
        *,
        antialiased: bool = False,
        viewmat: torch.Tensor | None = None,
    ) -> RenderOutput:
        image, alpha, info = rasterize(
            params["means"],
            params["quats"],
            torch.exp(params["scales"]),
            torch.sigmoid(params["opacities"]),
            torch.cat([params["sh0"], params["shN"]], dim=1),
            view.viewmat if viewmat is None else viewmat,
            view.K,
            view.width,
            view.height,
            sh_degree,
            background,
            antialiased=antialiased,
            tile_size=self.tile_size,
        )
        return RenderOutput(image, alpha, info)

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
    ) -> RenderOutput:
        if len(views) != 1:
            raise ValueError(f"the CPU backend renders one view per step, not {len(views)}")
        out = self.render(
            params, views[0], sh_degree, background, antialiased=antialiased, viewmat=None if viewmats is None else viewmats[0]
        )
        return RenderOutput(out.image[None], out.alpha[None], out.info)

    def densifier(self, cfg: TrainConfig, scene_scale: float, n_gaussians: int) -> SimpleDensifier:
        # MCMC relocation needs gsplat's CUDA kernels: on CPU every preset densifies the default way.
        return SimpleDensifier(cfg, scene_scale, cfg.max_gaussians or self.default_max_gaussians())

    def default_max_gaussians(self) -> int:
        return CPU_MAX_GAUSSIANS
