"""Training configurations: the presets, and a preset resolved for the backend it runs on."""

from __future__ import annotations

from pathlib import Path

import pytest
from photosplat_trainer.backends.cpu import CpuBackend
from photosplat_trainer.config import PRESETS, TrainConfig, preset
from photosplat_trainer.config_resolution import resolve_config


def test_presets_resolve_and_reference_is_simple_trainers_default(tmp_path: Path) -> None:
    ref = preset("reference")
    assert (ref.steps, ref.sh_degree, ref.sh_degree_interval, ref.ssim_lambda) == (30_000, 3, 1000, 0.2)
    assert (ref.means_lr, ref.scales_lr, ref.quats_lr, ref.opacities_lr, ref.sh0_lr) == (1.6e-4, 5e-3, 1e-3, 5e-2, 2.5e-3)
    assert (ref.refine_start, ref.refine_stop, ref.refine_every, ref.reset_every, ref.grow_grad2d) == (500, 15_000, 100, 3000, 2e-4)
    assert ref.strategy == "default" and not ref.antialiased and ref.sky_points_fraction == 0
    assert preset("preview").steps < preset("standard").steps < ref.steps
    assert set(PRESETS) == {"preview", "standard", "reference"}
    assert preset("standard", strategy="mcmc").strategy == "mcmc"
    with pytest.raises(ValueError, match="unknown preset"):
        preset("best")
    with pytest.raises(ValueError, match="unknown training option"):
        preset("standard", learning_rate=1)
    half = preset("standard").scaled(0.5)
    assert (half.steps, half.refine_stop) == (1750, 875)
    saved = preset("standard", background=[1, 1, 1]).save(tmp_path / "config.json")
    assert TrainConfig.from_json(saved.read_text()) == preset("standard", background=(1.0, 1.0, 1.0))


def test_a_cpu_run_is_capped_so_the_embedded_demo_ends_in_minutes() -> None:
    cpu = resolve_config("standard", {}, CpuBackend())
    standard = preset("standard")
    assert cpu.steps == standard.cpu_max_steps < standard.steps
    assert cpu.refine_stop == round(standard.refine_stop * cpu.steps / standard.steps)
    assert cpu.max_image_side == standard.cpu_max_image_side
    assert resolve_config("standard", {}, CpuBackend(), max_steps=300).steps == 300


def test_a_batched_preset_runs_on_cpu_one_view_per_step_with_the_same_schedule_in_views() -> None:
    standard = preset("standard")
    assert standard.batch_size == 4 and standard.strategy == "mcmc"
    single = standard.with_batch(1)
    assert single.batch_size == 1
    assert single.steps == 4 * standard.steps
    assert (single.refine_start, single.refine_stop, single.refine_every) == tuple(
        4 * v for v in (standard.refine_start, standard.refine_stop, standard.refine_every)
    )
    assert single.sh_degree_interval == 4 * standard.sh_degree_interval
    assert single.with_batch(4) == standard
    cpu = resolve_config("standard", {}, CpuBackend(), max_steps=10_000_000)
    assert (cpu.batch_size, cpu.steps, cpu.strategy) == (1, cpu.cpu_max_steps, "default")
    reference = preset("reference")
    assert (cpu.init_opacity, cpu.opacity_reg, cpu.scale_reg) == (reference.init_opacity, 0.0, 0.0)
