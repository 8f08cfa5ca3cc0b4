"""The trainable Gaussians: parameters (gsplat's names and activations), their optimisers, and the
edits densification makes (select rows, append rows, reset opacities) that keep Adam's state aligned.

Parameter conventions match :class:`~photosplat_trainer.gaussians.GaussianSet`: ``scales`` are logs,
``opacities`` logits, ``quats`` w-x-y-z, ``sh0`` (N, 1, 3), ``shN`` (N, K, 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from photosplat_trainer.config import TrainConfig
from photosplat_trainer.gaussians import SH_C0, GaussianSet

Params = dict[str, torch.nn.Parameter]
Optimizers = dict[str, torch.optim.Optimizer]
NAMES = ("means", "scales", "quats", "opacities", "sh0", "shN")


def knn_mean_distance(points: torch.Tensor, k: int = 3, chunk: int = 4096) -> torch.Tensor:
    """RMS distance of each point to its ``k`` nearest neighbours (chunked brute force)."""
    out = torch.empty(len(points), dtype=points.dtype, device=points.device)
    k = min(k, max(1, len(points) - 1))
    for start in range(0, len(points), chunk):
        d2 = torch.cdist(points[start : start + chunk], points).square()
        nearest = d2.topk(k + 1, dim=1, largest=False).values[:, 1:]
        out[start : start + chunk] = nearest.mean(dim=1).sqrt()
    return out


def init_params(points: np.ndarray, colors: np.ndarray, cfg: TrainConfig, device: torch.device) -> Params:
    """One Gaussian per SfM point: isotropic, as wide as its neighbourhood, coloured like the point."""
    generator = torch.Generator().manual_seed(cfg.seed)
    means = torch.as_tensor(points, dtype=torch.float32)
    n = len(means)
    dist = knn_mean_distance(means.to(device)).cpu().clamp_min(1e-7)
    scales = torch.log(dist * cfg.init_scale)[:, None].repeat(1, 3)
    quats = torch.rand((n, 4), generator=generator)
    opacities = torch.full((n,), math.log(cfg.init_opacity / (1 - cfg.init_opacity)))
    sh0 = ((torch.as_tensor(colors, dtype=torch.float32) - 0.5) / SH_C0)[:, None, :]
    shN = torch.zeros((n, (cfg.sh_degree + 1) ** 2 - 1, 3))
    tensors = dict(means=means, scales=scales, quats=quats, opacities=opacities, sh0=sh0, shN=shN)
    return {k: torch.nn.Parameter(v.to(device)) for k, v in tensors.items()}


def make_optimizers(params: Params, cfg: TrainConfig, scene_scale: float) -> Optimizers:
    lrs = {
        "means": cfg.means_lr * scene_scale,
        "scales": cfg.scales_lr,
        "quats": cfg.quats_lr,
        "opacities": cfg.opacities_lr,
        "sh0": cfg.sh0_lr,
        "shN": cfg.shN_lr,
    }
    # eps 1e-15 as gsplat: gradients of small Gaussians are tiny and must still move them. A batch of
    # B views per step scales as simple_trainer (arXiv 2402.18824). Fused Adam on CUDA: one kernel
    # per parameter instead of a dozen, which matters when a step lasts a few milliseconds.
    b = cfg.batch_size
    fused = params["means"].is_cuda
    return {
        k: torch.optim.Adam(
            [{"params": [params[k]], "lr": lrs[k] * math.sqrt(b), "name": k}],
            eps=1e-15 / math.sqrt(b),
            betas=(1 - b * (1 - 0.9), 1 - b * (1 - 0.999)),
            fused=fused,
        )
        for k in NAMES
    }


def to_gaussian_set(params: Params) -> GaussianSet:
    def a(k: str) -> np.ndarray:
        return params[k].detach().float().cpu().numpy().copy()

    return GaussianSet(a("means"), a("scales"), a("quats"), a("opacities"), a("sh0"), a("shN"))


def from_gaussian_set(g: GaussianSet, device: torch.device | str = "cpu") -> Params:
    arrays = dict(means=g.means, scales=g.log_scales, quats=g.quats, opacities=g.opacity_logits, sh0=g.sh0, shN=g.shN)
    return {k: torch.nn.Parameter(torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device)) for k, v in arrays.items()}


# --- edits that keep each optimiser's state in step with its parameter -------------------------


Edit = Callable[[str, torch.Tensor], torch.Tensor]


@torch.no_grad()
def _edit(params: Params, optimizers: Optimizers, on_param: Edit, on_moment: Edit) -> None:
    """Replace every parameter ``p`` by ``on_param(name, p)`` and its Adam moments ``m`` by
    ``on_moment(name, m)``; the optimiser then holds the new parameter."""
    for name in NAMES:
        old = params[name]
        new = torch.nn.Parameter(on_param(name, old.data))
        opt = optimizers[name]
        state = opt.state.pop(old, None)
        if state is not None:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = on_moment(name, state[key])
            opt.state[new] = state
        opt.param_groups[0]["params"] = [new]
        params[name] = new


@torch.no_grad()
def select(params: Params, optimizers: Optimizers, keep: torch.Tensor) -> None:
    _edit(params, optimizers, lambda _n, t: t[keep], lambda _n, t: t[keep])


@torch.no_grad()
def append(params: Params, optimizers: Optimizers, rows: dict[str, torch.Tensor]) -> None:
    """Add Gaussians; their optimiser moments start at zero."""
    _edit(
        params,
        optimizers,
        lambda n, t: torch.cat([t, rows[n].to(t.dtype)]),
        lambda n, t: torch.cat([t, torch.zeros_like(rows[n], dtype=t.dtype)]),
    )


@torch.no_grad()
def reset_opacities(params: Params, optimizers: Optimizers, value: float) -> None:
    """Clamp opacities to at most ``value`` and forget their Adam moments (3DGS's opacity reset)."""
    logit = math.log(value / (1 - value))
    params["opacities"].data.clamp_(max=logit)
    state = optimizers["opacities"].state.get(params["opacities"])
    if state:
        state["exp_avg"].zero_()
        state["exp_avg_sq"].zero_()
