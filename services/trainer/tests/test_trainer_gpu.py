"""GPU checks (run on the GPU machine; skipped without CUDA and gsplat): both backends render the
same image and the same gradients from the same Gaussians, and training runs end to end on CUDA.

Tolerance: gsplat bounds a Gaussian's footprint by its 3-sigma box, the CPU rasteriser by the exact
region where alpha >= 1/255 (up to 3.33 sigma for opaque Gaussians), and the two sum in different
orders in float32. So: mean absolute difference <= 2e-3, 99.9th percentile <= 2e-2, and the
gradients of the means point the same way (cosine >= 0.99).
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from photosplat_trainer.backends.cpu import CpuBackend
from photosplat_trainer.dataset import View

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None, reason="needs CUDA and gsplat"
    ),
]


def random_scene(n: int = 3000, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([4.0, 3.0, 2.0]) + torch.tensor([0.0, 0.0, 5.0])
    return {
        "means": means,
        "scales": torch.log(torch.rand(n, 3, generator=g) * 0.08 + 0.005),
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g) * 2,
        "sh0": torch.randn(n, 1, 3, generator=g) * 0.8,
        "shN": torch.randn(n, 15, 3, generator=g) * 0.2,
    }


def camera(width: int = 256, height: int = 192) -> View:
    f = width / (2 * math.tan(math.radians(30)))
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    angle = 0.2
    R = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1.0, 0], [-math.sin(angle), 0, math.cos(angle)]])
    viewmat = torch.eye(4)
    viewmat[:3, :3] = R
    viewmat[:3, 3] = torch.tensor([0.3, -0.1, 0.5])
    return View("cam", torch.zeros(height, width, 3), K, viewmat, 0)


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("sh_degree", [0, 3])
def test_cpu_and_gsplat_render_the_same_image(antialiased: bool, sh_degree: int) -> None:
    from photosplat_trainer.backends.cuda import CudaBackend

    scene, view = random_scene(), camera()
    bg = torch.tensor([0.1, 0.2, 0.3])
    cpu_params = {k: torch.nn.Parameter(v.clone()) for k, v in scene.items()}
    gpu_params = {k: torch.nn.Parameter(v.cuda()) for k, v in scene.items()}
    cpu = CpuBackend().render(cpu_params, view, sh_degree, bg, antialiased=antialiased)
    gpu = CudaBackend().render(gpu_params, view.to("cuda"), sh_degree, bg.cuda(), antialiased=antialiased)
    diff = (cpu.image.detach() - gpu.image.detach().cpu()).abs()
    print(f"aa={antialiased} sh={sh_degree}: mean {diff.mean():.2e}, p99.9 {diff.flatten().quantile(0.999):.2e}, max {diff.max():.2e}")
    assert diff.mean() <= 2e-3
    assert diff.flatten().quantile(0.999) <= 2e-2

    target = torch.rand(view.height, view.width, 3, generator=torch.Generator().manual_seed(1))
    ((cpu.image - target) ** 2).sum().backward()
    ((gpu.image - target.cuda()) ** 2).sum().backward()
    for name in ("means", "sh0", "opacities"):
        a, b = cpu_params[name].grad.flatten(), gpu_params[name].grad.cpu().flatten()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0)
        print(f"  grad {name}: cosine {cos:.4f}")
        assert cos >= 0.99


def test_training_on_cuda_improves_held_out_psnr(tmp_path) -> None:
    from photosplat_testkit.synthetic import render_scene, write_images
    from photosplat_trainer.backends.cuda import CudaBackend
    from photosplat_trainer.config import preset, with_overrides
    from photosplat_trainer.dataset import Camera, build_dataset
    from photosplat_trainer.train import train

    scene = render_scene(n_views=16, width=160, height=120, n_points=4000, seed=2)
    write_images(scene, tmp_path / "images", exif_focal=False)
    cams = [Camera(n, scene.K, P, scene.width, scene.height) for n, P in zip(scene.names, scene.cams_from_world)]
    data = build_dataset(cams, tmp_path / "images", scene.points, scene.colors / 255.0, max_image_side=None)
    cfg = with_overrides(preset("preview").scaled(0.25), checkpoint_every=0)
    result = train(data, cfg, CudaBackend())
    print(f"CUDA preview/4 on 160x120: PSNR {result.psnr:.2f}, {len(result.gaussians)} Gaussians, {result.train_seconds:.1f} s")
    assert result.psnr is not None and result.psnr > 18.0


def test_batched_render_matches_one_view_at_a_time() -> None:
    from photosplat_trainer.backends.cuda import CudaBackend

    backend = CudaBackend()
    params = {k: torch.nn.Parameter(v.cuda()) for k, v in random_scene().items()}
    first = camera().to("cuda")
    second = View("cam2", first.image, first.K, first.viewmat.clone(), 1)
    second.viewmat[:3, 3] += torch.tensor([0.2, 0.0, 0.1], device="cuda")
    bg = torch.tensor([0.1, 0.2, 0.3], device="cuda")
    batch = backend.render_batch(params, [first, second], 3, bg).image
    assert batch.shape == (2, first.height, first.width, 3)
    for i, view in enumerate((first, second)):
        single = backend.render(params, view, 3, bg).image
        assert torch.allclose(batch[i], single, atol=1e-5)
    assert not torch.allclose(batch[0], batch[1], atol=1e-3)


def test_triton_training_ssim_matches_the_convolution_ssim() -> None:
    from photosplat_trainer.losses import ssim, training_ssim

    fn, kind = training_ssim(torch.device("cuda"))
    g = torch.Generator(device="cuda").manual_seed(0)
    target = torch.rand(2, 200, 300, 3, device="cuda", generator=g)
    image = (target + 0.1 * torch.randn(2, 200, 300, 3, device="cuda", generator=g)).clamp(0, 1).requires_grad_()
    fast = fn(image, target)
    (fast_grad,) = torch.autograd.grad(fast, image)
    slow = ssim(image, target)
    (slow_grad,) = torch.autograd.grad(slow, image)
    print(f"{kind} SSIM {float(fast):.6f} vs {float(slow):.6f}; max grad diff {float((fast_grad - slow_grad).abs().max()):.2e}")
    assert abs(float(fast) - float(slow)) < 1e-5
    assert torch.allclose(fast_grad, slow_grad, atol=1e-7, rtol=1e-3)


def test_a_gpu_memory_limit_sizes_the_gaussian_budget() -> None:
    """`--gpu-memory-gib` / PHOTOSPLAT_TRAINER_GPU_MEMORY_GIB: a big card behaves as a small one, for the
    allocator and for the budget the densifier gets."""
    from photosplat_trainer.backends import cuda

    backend = cuda.CudaBackend()
    unlimited = backend.default_max_gaussians()
    try:
        cuda.limit_gpu_memory(1.0)
        limited = backend.default_max_gaussians()
        assert limited <= 0.6 * 2**30 / cuda.BYTES_PER_GAUSSIAN < unlimited
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(int(1.5 * 2**30), dtype=torch.uint8, device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        cuda._memory_limit_bytes = None
