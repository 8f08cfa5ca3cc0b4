"""Training on a tiny synthetic scene with the CPU backend: presets, the CLI, checkpoints, cancel, OOM.

The scene (16 views of 64x48, true poses, ~1500 surface points) trains in seconds. PyTorch runs on
one thread here: the tensors are small, and on a shared 2-core machine extra threads only wait.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from photosplat_testkit.synthetic import render_scene, write_colmap_dataset
from photosplat_libs.worker import JobCancelled
from photosplat_trainer import cli
from photosplat_trainer.backends.cpu import CpuBackend
from photosplat_trainer.config import TrainConfig, preset, with_overrides
from photosplat_trainer.config_resolution import adapt_to_backend
from photosplat_trainer.dataset import View, load_colmap
from photosplat_trainer.model import init_params
from photosplat_trainer.pipeline import home_view
from photosplat_trainer.evaluation import evaluate_params
from photosplat_trainer.train import Callbacks, OutOfMemory, Progress, train, train_with_oom_retry

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scene = render_scene(n_views=16, width=64, height=48, n_points=1500, seed=5)
    return write_colmap_dataset(scene, tmp_path_factory.mktemp("scene"))


def tiny(steps: int, **overrides: object) -> TrainConfig:
    cfg = adapt_to_backend(preset("preview"), CpuBackend())
    return with_overrides(cfg.scaled(steps / cfg.steps), max_gaussians=3000, **overrides)


def test_the_home_view_is_a_capture_camera_aimed_at_what_it_sees(scene_dir: Path) -> None:
    data = load_colmap(scene_dir, max_image_side=None, test_every=8)
    view = data.train[3]
    means = np.random.default_rng(0).normal(size=(500, 3)) * 0.3  # the synthetic scene sits at the origin
    home = home_view(view, means)
    assert np.allclose(home.position, view.center, atol=1e-5)
    rotation, t = view.viewmat[:3, :3].double().numpy(), view.viewmat[:3, 3].double().numpy()
    target_cam = rotation @ np.array(home.target) + t
    assert target_cam[2] > 0 and np.allclose(target_cam[:2], 0, atol=1e-6)  # straight ahead, in front
    assert abs(target_cam[2] - np.linalg.norm(view.center)) < 0.3 * np.linalg.norm(view.center)
    assert np.allclose(rotation @ np.array(home.up), [0, -1, 0], atol=1e-6)  # image up
    assert abs(home.fov_y_deg - np.degrees(2 * np.arctan(view.height / (2 * float(view.K[1, 1]))))) < 1e-6


def test_cli_training_beats_the_untrained_scene_and_writes_everything(scene_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli.main([str(scene_dir), "--out", str(out), "--preset", "preview", "--device", "cpu", "--steps", "250"]) == 0
    for name in ("scene.ply", "scene.splat", "scene.spz", "scene.sog", "thumbnail.png", "config.json", "metrics.json"):
        assert (out / name).stat().st_size > 0, name
    config = TrainConfig.from_json((out / "config.json").read_text())
    assert config.steps == 250 and config.sh_degree == 1
    metrics = json.loads((out / "metrics.json").read_text())

    data = load_colmap(scene_dir, max_image_side=None)
    untrained = evaluate_params(init_params(data.points, data.colors, config, torch.device("cpu")), data.test, CpuBackend(), config)[0]
    # Untrained, the SfM points give ~8-9 dB (the sky has no points and renders black); 250 steps
    # reach ~19 dB here. 16 dB leaves room for platform noise yet fails a broken loss or rasteriser.
    assert metrics["psnr"] > 16.0 and metrics["psnr"] > untrained + 5.0, (untrained, metrics["psnr"])
    assert metrics["ssim"] > 0.4
    by_format = {e["format"]: e for e in metrics["exports"]}
    assert set(by_format) == {"ply", "splat", "spz", "sog"}
    # The PLY is lossless; the compressed formats lose a little.
    assert by_format["ply"]["psnr"] == pytest.approx(metrics["psnr"], abs=0.05)
    assert by_format["spz"]["psnr"] > metrics["psnr"] - 2.0


def test_training_resumes_from_its_checkpoint(scene_dir: Path, tmp_path: Path) -> None:
    data = load_colmap(scene_dir, max_image_side=None)
    cfg = tiny(40, checkpoint_every=20, progress_seconds=0.0)
    saved: list[int] = []
    keep = tmp_path / "kept.pt"

    def on_checkpoint(path: Path, step: int) -> None:
        saved.append(step)
        shutil.copy(path, keep)

    first = train(data, cfg, CpuBackend(), Callbacks(checkpoint=on_checkpoint), work_dir=tmp_path / "a")
    assert saved == [20] and first.steps == 40

    steps: list[int] = []
    lines: list[str] = []
    resumed = train(
        data, cfg, CpuBackend(), Callbacks(progress=lambda p: steps.append(p.step), log=lines.append),
        work_dir=tmp_path / "b", resume=keep,
    )
    assert steps[0] == 21 and steps[-1] == 40
    assert any("resumed from the checkpoint of step 20" in line for line in lines)
    assert resumed.psnr is not None


def test_cancel_stops_training_within_a_step(scene_dir: Path) -> None:
    data = load_colmap(scene_dir, max_image_side=None)
    done: list[Progress] = []
    checks = 0

    def check() -> None:
        nonlocal checks
        checks += 1
        if checks > 5:
            raise JobCancelled("cancelled")

    with pytest.raises(JobCancelled):
        train(data, tiny(1000, progress_seconds=0.0), CpuBackend(), Callbacks(progress=done.append, check_cancelled=check))
    assert done[-1].step == 5


def test_out_of_memory_is_retried_once_with_a_smaller_budget_then_reported(scene_dir: Path) -> None:
    class ExhaustedBackend(CpuBackend):
        def render(self, *args: object, **kwargs: object):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    data = load_colmap(scene_dir, max_image_side=None)
    lines: list[str] = []
    with pytest.raises(OutOfMemory, match="ran out of GPU memory twice") as failure:
        train_with_oom_retry(data, tiny(10), ExhaustedBackend(), Callbacks(log=lines.append))
    assert not failure.value.retryable
    assert any("retrying with a budget of" in line for line in lines)


def test_appearance_and_pose_refinement_train_checkpoint_and_resume(scene_dir: Path, tmp_path: Path) -> None:
    data = load_colmap(scene_dir, max_image_side=None)
    cfg = tiny(30, checkpoint_every=15, appearance=True, appearance_lr=1e-2, pose_refine=True, pose_lr=1e-3)
    keep = tmp_path / "kept.pt"
    first = train(data, cfg, CpuBackend(), Callbacks(checkpoint=lambda path, _step: shutil.copy(path, keep)), work_dir=tmp_path / "a")
    assert first.psnr is not None and math.isfinite(first.psnr)
    state = torch.load(keep, weights_only=False)
    identity = torch.cat([torch.eye(3).flatten(), torch.zeros(3)])
    # Both corrections were learned, not left at their start.
    assert (state["appearance"] - identity).abs().max() > 1e-3
    assert state["poses"]["embeds"].abs().max() > 1e-5
    resumed = train(data, cfg, CpuBackend(), work_dir=tmp_path / "b", resume=keep)
    assert resumed.steps == 30 and resumed.psnr is not None


def test_view_batches_share_one_size_cover_every_view_and_keep_their_shape() -> None:
    from photosplat_trainer.batches import ViewBatches

    K, vm = torch.eye(3), torch.eye(4)
    # 7 landscape and 3 portrait photos (a phone capture turned now and then).
    views = [View(f"v{i}", torch.zeros((4, 6, 3) if i % 4 else (6, 4, 3)), K, vm, i) for i in range(10)]
    batches = ViewBatches(views, 4, np.random.default_rng(0))
    seen: list[int] = []
    for _ in range(30):
        batch = batches.next()
        assert len({v.image.shape for v in batch}) == 1
        assert len({v.index for v in batch}) == len(batch)
        assert len(batch) == (4 if batch[0].image.shape == (4, 6, 3) else 3)
        seen += [v.index for v in batch]
    assert set(seen) == set(range(10))


def test_the_contract_names_exactly_the_trainers_presets() -> None:
    from photosplat_libs.events import PRESET_NAMES, JobOptions
    from photosplat_trainer.config import PRESETS

    assert set(PRESET_NAMES) == set(PRESETS)
    # Options written before max_image_side was retired still read.
    assert JobOptions.model_validate({"preset": "preview", "original_resolution": False, "max_image_side": None}).preset == "preview"


def test_unusable_training_options_fail_without_retries(tmp_path) -> None:
    from photosplat_libs.errors import WorkError
    from photosplat_trainer.pipeline import run_pipeline

    with pytest.raises(WorkError) as caught:
        run_pipeline(tmp_path, tmp_path / "out", preset_name="standrad", device="cpu")
    assert caught.value.retryable is False and "standrad" in str(caught.value)


def test_the_log_says_when_the_memory_budget_binds(scene_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_colmap(scene_dir, max_image_side=None)
    budget = len(data.points) + 200
    monkeypatch.setattr(CpuBackend, "default_max_gaussians", lambda self: budget)
    lines: list[str] = []
    cfg = with_overrides(tiny(150, refine_start=10, refine_every=10), max_gaussians=None)
    result = train(data, cfg, CpuBackend(), Callbacks(log=lines.append))
    assert any(line.startswith(f"Gaussian budget {budget:,}") for line in lines), lines
    reached = [line for line in lines if "the budget the cpu device's free memory allows" in line]
    assert len(reached) == 1, lines
    assert len(result.gaussians) <= budget
