"""The CUDA backend: gsplat's rasteriser and its DefaultStrategy / MCMCStrategy.

gsplat is imported here only (its CUDA kernels compile on first use), never at module import time
of the rest of the trainer.
"""

from __future__ import annotations

from typing import Any

import torch

from photosplat_trainer.backends.types import RenderOutput
from photosplat_trainer.config import TrainConfig
from photosplat_trainer.dataset import View
from photosplat_trainer.model import Optimizers, Params

# Bytes of GPU memory one Gaussian needs while training: 59 floats x (value, grad, 2 Adam moments)
# plus projection and sorting buffers, with headroom for the image-size dependent part.
BYTES_PER_GAUSSIAN = 2048
# More Gaussians than this buy no quality on photo captures and only cost time.
MAX_GAUSSIANS_CAP = 6_000_000

# Set by limit_gpu_memory; PyTorch's allocator enforces it, the Gaussian budget is sized from it.
_memory_limit_bytes: int | None = None


def limit_gpu_memory(gib: float) -> None:
    """This process uses at most ``gib`` GiB of the GPU: for an operator who shares one card between
    trainers, or who wants to know a job fits a smaller card. Process-wide, as the allocator's limit is."""
    global _memory_limit_bytes
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    limit = min(int(gib * 2**30), total)
    torch.cuda.set_per_process_memory_fraction(limit / total)
    _memory_limit_bytes = limit


class CudaBackend:
    name = "cuda"
    max_batch = 64

    def __init__(self) -> None:
        import gsplat  # noqa: F401  (fail here, with a clear error, when gsplat is missing)

        self.device = torch.device("cuda")

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
        out = self.render_batch(
            params, [view], sh_degree, background, antialiased=antialiased,
            viewmats=None if viewmat is None else viewmat[None],
        )
        return RenderOutput(out.image[0], out.alpha[0], out.info)

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
        from gsplat import rasterization

        if viewmats is None:
            viewmats = torch.stack([v.viewmat for v in views])
        colors, alphas, info = rasterization(
            means=params["means"],
            quats=params["quats"],
            scales=torch.exp(params["scales"]),
            opacities=torch.sigmoid(params["opacities"]),
            colors=torch.cat([params["sh0"], params["shN"]], dim=1),
            viewmats=viewmats,
            Ks=torch.stack([v.K for v in views]),
            width=views[0].width,
            height=views[0].height,
            sh_degree=sh_degree,
            packed=packed,
            absgrad=absgrad,
            backgrounds=background.expand(len(views), -1),
            rasterize_mode="antialiased" if antialiased else "classic",
        )
        return RenderOutput(colors, alphas, info)

    def densifier(self, cfg: TrainConfig, scene_scale: float, n_gaussians: int) -> GsplatDensifier:
        # The preset's cap, or less when the GPU's free memory holds fewer (never below the start).
        fits = self.default_max_gaussians()
        budget = min(cfg.max_gaussians, fits) if cfg.max_gaussians else fits
        return GsplatDensifier(cfg, scene_scale, max(budget, n_gaussians))

    def default_max_gaussians(self) -> int:
        free, _total = torch.cuda.mem_get_info()
        if _memory_limit_bytes is not None:
            free = min(free, max(0, _memory_limit_bytes - torch.cuda.memory_reserved()))
        return int(min(MAX_GAUSSIANS_CAP, 0.6 * free / BYTES_PER_GAUSSIAN))


class GsplatDensifier:
    """gsplat's strategies behind the trainer's interface, with a Gaussian budget for both."""

    def __init__(self, cfg: TrainConfig, scene_scale: float, max_gaussians: int) -> None:
        from gsplat.strategy import DefaultStrategy, MCMCStrategy

        self.cfg, self.max_gaussians = cfg, max_gaussians
        self.strategy: Any
        if cfg.strategy == "mcmc":
            self.strategy = MCMCStrategy(
                cap_max=max_gaussians,
                noise_lr=cfg.mcmc_noise_lr,
                refine_start_iter=cfg.refine_start,
                refine_stop_iter=cfg.refine_stop,
                refine_every=cfg.refine_every,
                min_opacity=cfg.prune_opacity,
            )
            self.state = self.strategy.initialize_state()
        else:
            self.strategy = DefaultStrategy(
                prune_opa=cfg.prune_opacity,
                # AbsGS gradients are larger than the signed ones: gsplat's threshold is 4x.
                grow_grad2d=cfg.grow_grad2d * (4.0 if cfg.absgrad else 1.0),
                grow_scale3d=cfg.grow_scale3d,
                prune_scale3d=cfg.prune_scale3d,
                refine_start_iter=cfg.refine_start,
                refine_stop_iter=cfg.refine_stop,
                reset_every=cfg.reset_every,
                refine_every=cfg.refine_every,
                absgrad=cfg.absgrad,
            )
            self.state = self.strategy.initialize_state(scene_scale=scene_scale)

    def pre_backward(self, params: Params, optimizers: Optimizers, step: int, info: dict[str, Any]) -> None:
        self.strategy.step_pre_backward(params, optimizers, self.state, step, info)

    def post_backward(self, params: Params, optimizers: Optimizers, step: int, info: dict[str, Any], means_lr: float) -> None:
        if self.cfg.strategy == "mcmc":
            self.strategy.step_post_backward(params, optimizers, self.state, step, info, lr=means_lr)
            return
        # The default strategy has no budget: once it is reached, growth is switched off.
        if len(params["means"]) >= self.max_gaussians:
            self.strategy.grow_grad2d = float("inf")
        self.strategy.step_post_backward(params, optimizers, self.state, step, info, packed=self.cfg.packed)

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state, "grow_grad2d": getattr(self.strategy, "grow_grad2d", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["state"]
        if state.get("grow_grad2d") is not None:
            self.strategy.grow_grad2d = state["grow_grad2d"]
