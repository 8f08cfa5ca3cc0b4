"""The GPU warm-up: its tiny scene trains through the real training loop (so a warm-up exercises every
code path of a step), it costs nothing on the CPU, and on a GPU it leaves the training SSIM compiled
for image sizes it never saw."""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch
from photosplat_trainer.backends import select_backend
from photosplat_trainer.config import preset
from photosplat_trainer.train import train
from photosplat_trainer.warmup import _tiny_scene, warm_up


def test_the_warm_up_scene_trains_through_the_training_loop() -> None:
    data = _tiny_scene()
    cfg = preset("standard", steps=2, checkpoint_every=0).with_batch(1)  # the CPU renders one view a step
    result = train(data, cfg, select_backend("cpu"))
    assert result.steps == cfg.steps and result.psnr is not None and len(result.gaussians) > 0


def test_the_warm_up_does_nothing_on_the_cpu() -> None:
    started = time.monotonic()
    assert warm_up(device="cpu") == 0.0
    assert time.monotonic() - started < 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("gsplat") is None, reason="needs CUDA and gsplat")
def test_after_the_warm_up_a_new_image_size_needs_no_compilation() -> None:
    from photosplat_trainer.losses import training_ssim

    assert warm_up(device="cuda") > 0
    ssim, _name = training_ssim(torch.device("cuda"))
    for height, width in ((541, 963), (544, 960)):  # neither the warm-up's size nor each other's divisibility
        a = torch.rand(2, height, width, 3, device="cuda", requires_grad=True)
        torch.cuda.synchronize()
        started = time.monotonic()
        ssim(a, torch.rand_like(a)).backward()
        torch.cuda.synchronize()
        assert time.monotonic() - started < 0.2, "the SSIM kernels were compiled again for a new size"
