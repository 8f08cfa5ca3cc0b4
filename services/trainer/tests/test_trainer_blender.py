"""NeRF-synthetic ("Blender") scenes: transforms_train/test.json with OpenGL camera-to-world matrices,
RGBA images on the training background, no 3D points (training starts from random Gaussians)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from photosplat_testkit.synthetic import render_scene
from photosplat_testkit.synthetic import write_blender_dataset as write_blender
from photosplat_libs.errors import UserError
from photosplat_trainer.backends.cpu import CpuBackend
from photosplat_trainer.config import preset, with_overrides
from photosplat_trainer.config_resolution import adapt_to_backend
from photosplat_trainer.dataset import is_blender, load_blender, load_scene
from photosplat_trainer.train import Callbacks, train
from PIL import Image

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scene():
    return render_scene(n_views=16, width=64, height=48, n_points=1500, seed=5)


def test_blender_cameras_are_read_back_as_the_poses_that_rendered_the_images(scene, tmp_path: Path) -> None:
    train_names, test_names = write_blender(scene, tmp_path)
    assert is_blender(tmp_path)
    data = load_blender(tmp_path, max_image_side=None, background=(1.0, 1.0, 1.0))
    assert sorted(v.name for v in data.test) == sorted(test_names)  # the official split, not every 8th
    assert len(data.train) == len(train_names) and len(data.points) == 0
    by_name = {f"./{'test' if i % 4 == 0 else 'train'}/r_{i}.png": i for i in range(len(scene.images))}
    for view in data.train + data.test:
        i = by_name[view.name]
        assert np.allclose(view.viewmat[:3].numpy(), scene.cams_from_world[i], atol=1e-5)
        assert np.allclose(view.K.numpy(), scene.K, atol=1e-4)
        assert np.array_equal((view.image.numpy() * 255).round().astype(np.uint8), scene.images[i])


def test_transparent_pixels_take_the_training_background(scene, tmp_path: Path) -> None:
    write_blender(scene, tmp_path, transparent_border=3)
    white = load_scene(tmp_path, max_image_side=None, background=(1.0, 1.0, 1.0))
    black = load_scene(tmp_path, max_image_side=None, background=(0.0, 0.0, 0.0))
    assert torch.all(white.train[0].image[:3] == 1.0) and torch.all(black.train[0].image[:3] == 0.0)
    assert torch.equal(white.train[0].image[3:-3, 3:-3], black.train[0].image[3:-3, 3:-3])


def test_a_broken_transforms_file_is_a_clear_user_error(scene, tmp_path: Path) -> None:
    write_blender(scene, tmp_path)
    (tmp_path / "transforms_train.json").write_text(json.dumps({"frames": [{"file_path": "./train/r_1"}]}))
    with pytest.raises(UserError, match="transforms_train.json is not a NeRF-synthetic transforms file"):
        load_blender(tmp_path, max_image_side=None, background=(1.0, 1.0, 1.0))


def test_training_from_random_gaussians_learns_the_held_out_views(scene, tmp_path: Path) -> None:
    write_blender(scene, tmp_path)
    data = load_blender(tmp_path, max_image_side=None, background=(1.0, 1.0, 1.0))
    cfg = adapt_to_backend(preset("preview"), CpuBackend())
    cfg = with_overrides(cfg.scaled(250 / cfg.steps), random_init_points=2000, max_gaussians=4000, checkpoint_every=0)
    lines: list[str] = []
    result = train(data, cfg, CpuBackend(), Callbacks(log=lines.append))
    assert any("starting from 2000 random Gaussians" in line for line in lines)
    # The best constant image (each held-out view's mean colour) as the floor to beat.
    constant = np.mean([-10 * math.log10(float(((v.image - v.image.mean((0, 1))) ** 2).mean())) for v in data.test])
    print(f"held-out PSNR {result.psnr:.2f} dB vs constant {constant:.2f} dB")
    assert result.psnr is not None and result.psnr > constant + 3.0


@pytest.fixture(scope="module")
def object_scene(tmp_path_factory):
    """A NeRF-synthetic-like object: boxes on a transparent background, cameras over the upper
    hemisphere (their mean hangs far above the object)."""
    scene = render_scene(n_views=24, width=64, height=64, n_points=1000, seed=5, object_only=True)
    folder = tmp_path_factory.mktemp("object")
    write_blender(scene, folder)
    return load_blender(folder, max_image_side=None, background=(1.0, 1.0, 1.0))


def test_random_gaussians_start_where_the_cameras_look_not_among_them(object_scene) -> None:
    from photosplat_trainer.dataset import focus_point, random_points

    assert np.allclose(focus_point(object_scene), [0.0, 0.0, 0.4], atol=1e-3)  # what the cameras aim at
    points, _ = random_points(object_scene, 5000, extent=0.5, seed=0)
    object_box = (np.abs(points[:, :2]).max(axis=1) < 1.7) & (points[:, 2] > 0.0) & (points[:, 2] < 1.3)
    assert object_box.mean() > 0.15  # the cameras' mean (z = 2.7) left under 1 % there


def test_reference_preset_learns_an_object_from_random_gaussians(object_scene) -> None:
    """`reference` once never learned such a scene on the GPU: fail if training collapses."""
    cfg = adapt_to_backend(preset("reference"), CpuBackend())
    cfg = with_overrides(cfg.scaled(400 / cfg.steps), random_init_points=3000, background=(1.0, 1.0, 1.0), checkpoint_every=0)
    result = train(object_scene, cfg, CpuBackend())
    constant = np.mean([-10 * math.log10(float(((v.image - v.image.mean((0, 1))) ** 2).mean())) for v in object_scene.test])
    print(f"held-out PSNR {result.psnr:.2f} dB vs constant {constant:.2f} dB")
    assert result.psnr is not None and result.psnr > constant + 6.0


def test_loaded_views_keep_their_pixels_as_bytes(scene, tmp_path: Path) -> None:
    # A quarter of float32's memory on the GPU; the float image is made when it is used.
    write_blender(scene, tmp_path)
    view = load_blender(tmp_path, max_image_side=None, background=(1.0, 1.0, 1.0)).train[0]
    assert view.pixels.dtype == torch.uint8
    assert view.image.dtype == torch.float32 and float(view.image.max()) <= 1.0
    assert torch.equal((view.image * 255).round().to(torch.uint8), view.pixels)


def test_frustum_layout_puts_every_random_gaussian_in_sight(object_scene) -> None:
    from photosplat_trainer.dataset import random_points

    points, _ = random_points(object_scene, 2000, extent=0.5, seed=0, layout="frustum")
    seen = np.zeros(len(points), bool)
    for view in object_scene.train:
        cam = points @ view.viewmat[:3, :3].numpy().T + view.viewmat[:3, 3].numpy()
        pix = cam @ view.K.numpy().T
        z = cam[:, 2]
        u, v = pix[:, 0] / np.maximum(z, 1e-9), pix[:, 1] / np.maximum(z, 1e-9)
        seen |= (z > 0) & (u >= 0) & (u <= view.width) & (v >= 0) & (v <= view.height)
    assert seen.all()
