"""Adaptive density control in plain PyTorch, for the CPU backend: 3DGS's recipe as gsplat's
``DefaultStrategy`` runs it (same thresholds, same screen-space gradient normalisation).

Every ``refine_every`` steps between ``refine_start`` and ``refine_stop``: Gaussians whose average
2D-mean gradient exceeds ``grow_grad2d`` are duplicated when small (largest axis <= ``grow_scale3d``
x scene scale) and split in two (sampled inside, scales / 1.6) when large; Gaussians with opacity
under ``prune_opacity`` are removed, and after the first opacity reset also those larger than
``prune_scale3d`` x scene scale. Every ``reset_every`` steps opacities are clamped to 2 x
``prune_opacity``. Growth stops once ``max_gaussians`` is reached.
"""

from __future__ import annotations

from typing import Any

import torch

from photosplat_trainer.backends.rasterize import quat_to_rotmat
from photosplat_trainer.config import TrainConfig
from photosplat_trainer.model import NAMES, Optimizers, Params, append, reset_opacities, select


class SimpleDensifier:
    def __init__(self, cfg: TrainConfig, scene_scale: float, max_gaussians: int) -> None:
        self.cfg, self.scene_scale, self.max_gaussians = cfg, scene_scale, max_gaussians
        self.grad2d: torch.Tensor | None = None
        self.count: torch.Tensor | None = None

    def pre_backward(self, params: Params, optimizers: Optimizers, step: int, info: dict[str, Any]) -> None:
        info["means2d"].retain_grad()

    def post_backward(self, params: Params, optimizers: Optimizers, step: int, info: dict[str, Any], means_lr: float) -> None:
        cfg = self.cfg
        if step >= cfg.refine_stop:
            return
        self._accumulate(params, info)
        if step > cfg.refine_start and step % cfg.refine_every == 0:
            self._grow(params, optimizers)
            self._prune(params, optimizers, step)
            # Statistics restart with the new set of Gaussians.
            self.grad2d = self.count = None
        if step % cfg.reset_every == 0 and step > 0:
            reset_opacities(params, optimizers, 2.0 * cfg.prune_opacity)

    def state_dict(self) -> dict[str, Any]:
        return {"grad2d": self.grad2d, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.grad2d, self.count = state.get("grad2d"), state.get("count")

    @torch.no_grad()
    def _accumulate(self, params: Params, info: dict[str, Any]) -> None:
        n = len(params["means"])
        if self.grad2d is None or len(self.grad2d) != n:
            self.grad2d = torch.zeros(n, device=params["means"].device)
            self.count = torch.zeros(n, device=params["means"].device)
        assert self.count is not None
        grad = info["means2d"].grad
        if grad is None:
            return
        # gsplat's normalisation: pixel gradients to half-image units, so thresholds carry over.
        grad = grad.clone()
        grad[:, 0] *= info["width"] / 2.0
        grad[:, 1] *= info["height"] / 2.0
        ids = info["gaussian_ids"]
        self.grad2d.index_add_(0, ids, grad.norm(dim=-1).to(self.grad2d.dtype))
        self.count.index_add_(0, ids, torch.ones_like(ids, dtype=self.count.dtype))

    @torch.no_grad()
    def _grow(self, params: Params, optimizers: Optimizers) -> None:
        assert self.grad2d is not None and self.count is not None
        n = len(params["means"])
        room = self.max_gaussians - n
        if room <= 0:
            return
        high = self.grad2d / self.count.clamp_min(1) > self.cfg.grow_grad2d
        small = torch.exp(params["scales"]).max(dim=-1).values <= self.cfg.grow_scale3d * self.scene_scale
        dup = torch.nonzero(high & small).squeeze(1)
        split = torch.nonzero(high & ~small).squeeze(1)
        # Over budget: keep the strongest candidates.
        if len(dup) + len(split) > room:
            cand = torch.cat([dup, split])
            best = cand[torch.argsort(self.grad2d[cand] / self.count[cand].clamp_min(1), descending=True)[:room]]
            chosen = torch.zeros(n, dtype=torch.bool, device=best.device)
            chosen[best] = True
            dup, split = dup[chosen[dup]], split[chosen[split]]
        rows = {k: params[k].data[dup] for k in NAMES}
        if len(split):
            scales = torch.exp(params["scales"].data[split])
            rot = quat_to_rotmat(params["quats"].data[split])
            offsets = torch.einsum("nij,nj->ni", rot, torch.randn_like(scales) * scales)
            new_scales = torch.log(scales / 1.6)
            # The originals become the first half of each split pair (moved and shrunk in place).
            params["means"].data[split] += offsets
            params["scales"].data[split] = new_scales
            for k in NAMES:
                extra = params[k].data[split]
                if k == "means":
                    extra = extra - 2 * offsets
                rows[k] = torch.cat([rows[k], extra])
        if len(rows["means"]):
            append(params, optimizers, rows)

    @torch.no_grad()
    def _prune(self, params: Params, optimizers: Optimizers, step: int) -> None:
        drop = torch.sigmoid(params["opacities"]) < self.cfg.prune_opacity
        if step > self.cfg.reset_every:
            drop |= torch.exp(params["scales"]).max(dim=-1).values > self.cfg.prune_scale3d * self.scene_scale
        if drop.any():
            select(params, optimizers, ~drop)
