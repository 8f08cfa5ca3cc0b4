"""The yardstick: a plain gsplat training loop, as a user would write it from gsplat's own example
(``simple_trainer``'s default recipe), sharing nothing with our trainer but the image loader.

One view per step, gsplat's ``DefaultStrategy`` with its defaults, simple_trainer's learning rates
(means x scene scale, decaying to 1 % over 30k steps), SH degree raised every 1000 steps, loss
0.8 L1 + 0.2 (1 - SSIM) with a plain convolution SSIM, Adam. Evaluated (held-out PSNR/SSIM) at
each step of ``stop_at``, so one run gives the 7k and the 30k yardsticks.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

SCHEDULE_STEPS = 30_000


def _ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM of (B, H, W, 3) images, 11x11 Gaussian window (sigma 1.5), as in 3DGS."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    g = torch.exp(-((torch.arange(11, device=a.device) - 5.0) ** 2) / (2 * 1.5**2))
    g = (g / g.sum())
    w = (g[:, None] * g[None, :]).expand(3, 1, 11, 11).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, padding=5, groups=3)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean()


def train_plain(data, stop_at: tuple[int, ...] = (7_000, 30_000), seed: int = 42, background=(0.0, 0.0, 0.0)) -> list[dict]:
    from gsplat import rasterization
    from gsplat.strategy import DefaultStrategy

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = torch.device("cuda")
    train = [v.to(dev) for v in data.train]
    test = [v.to(dev) for v in data.test]
    centres = data.camera_centers
    scene_scale = 1.1 * float(np.linalg.norm(centres - centres.mean(0), axis=1).max())
    pts = torch.as_tensor(data.points, dtype=torch.float32, device=dev)
    cols = torch.as_tensor(data.colors, dtype=torch.float32, device=dev)
    if len(pts) < 4:  # no SfM points: gsplat's random init around the origin-centred scene
        pts = scene_scale * (torch.rand((100_000, 3), device=dev) * 2 - 1) * 0.5 + torch.as_tensor(_focus(data), dtype=torch.float32, device=dev)
        cols = torch.rand((100_000, 3), device=dev)
    d2 = torch.cdist(pts, pts).topk(4, largest=False).values[:, 1:] if len(pts) <= 20_000 else _knn_chunked(pts)
    dist = d2.square().mean(-1).sqrt().clamp_min(1e-7)
    n = len(pts)
    params = torch.nn.ParameterDict({
        "means": pts,
        "scales": torch.log(dist)[:, None].repeat(1, 3),
        "quats": torch.rand((n, 4), device=dev),
        "opacities": torch.logit(torch.full((n,), 0.1, device=dev)),
        "sh0": ((cols - 0.5) / 0.28209479177387814)[:, None, :],
        "shN": torch.zeros((n, 15, 3), device=dev),
    })
    lrs = {"means": 1.6e-4 * scene_scale, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
    opts = {k: torch.optim.Adam([{"params": params[k], "lr": lr, "name": k}], eps=1e-15) for k, lr in lrs.items()}
    sched = torch.optim.lr_scheduler.ExponentialLR(opts["means"], gamma=0.01 ** (1.0 / SCHEDULE_STEPS))
    strategy = DefaultStrategy()
    state = strategy.initialize_state(scene_scale=scene_scale)
    bg = torch.tensor(background, dtype=torch.float32, device=dev)

    def render(view, degree):
        colors = torch.cat([params["sh0"], params["shN"]], 1)
        img, _alpha, info = rasterization(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]), colors,
            view.viewmat[None], view.K[None], view.width, view.height, sh_degree=degree, backgrounds=bg[None], packed=False,
        )
        return img, info

    rows, started, order = [], time.monotonic(), []
    torch.cuda.synchronize()
    for step in range(max(stop_at)):
        if not order:
            order = list(rng.permutation(len(train)))
        view = train[order.pop()]
        img, info = render(view, min(step // 1000, 3))
        target = view.image[None]
        loss = 0.8 * (img - target).abs().mean() + 0.2 * (1 - _ssim(img, target))
        strategy.step_pre_backward(params, opts, state, step, info)
        loss.backward()
        for o in opts.values():
            o.step()
            o.zero_grad(set_to_none=True)
        sched.step()
        strategy.step_post_backward(params, opts, state, step, info, packed=False)
        if step + 1 in stop_at:
            torch.cuda.synchronize()
            evaluation_started = time.monotonic()
            seconds = evaluation_started - started
            with torch.no_grad():
                scores = []
                for v in test:
                    out = render(v, 3)[0].clamp(0, 1)
                    mse = float(((out - v.image[None]) ** 2).mean())
                    scores.append((-10 * math.log10(mse), float(_ssim(out, v.image[None]))))
            rows.append({"steps": step + 1, "train_seconds": seconds, "psnr": float(np.mean([s[0] for s in scores])),
                         "ssim": float(np.mean([s[1] for s in scores])), "gaussians": len(params["means"]),
                         "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30})
            started += time.monotonic() - evaluation_started  # evaluation time is not training time
    return rows


def _knn_chunked(pts: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    out = []
    for s in range(0, len(pts), chunk):
        out.append(torch.cdist(pts[s : s + chunk], pts).topk(4, largest=False).values[:, 1:])
    return torch.cat(out)


def _focus(data) -> np.ndarray:
    from photosplat_trainer.dataset import focus_point

    return focus_point(data)
