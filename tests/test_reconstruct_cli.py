"""`photosplat reconstruct`: photos to scene files on a local folder, as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_reconstruct_turns_a_photo_folder_into_scene_files(tmp_path: Path) -> None:
    from photosplat_testkit.synthetic import render_scene, write_images

    photos = tmp_path / "photos"
    write_images(render_scene(n_views=24, width=256, height=192, seed=3), photos)
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "photosplat", "reconstruct", str(photos), "--out", str(out), "--device", "cpu", "--steps", "150"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "100.0 %" in run.stderr and "[" + "#" * 30 + "]" in run.stderr  # the bar reached its end
    placed = re.search(r"camera poses: (\d+)/24 photos placed", run.stderr)
    # SfM is not bit-for-bit repeatable: what matters here is that most views were placed and trained on
    assert placed and int(placed.group(1)) >= 22, run.stderr[-3000:]
    for name in ("scene.ply", "scene.splat", "scene.spz", "thumbnail.png", "config.json"):
        assert (out / "scene" / name).stat().st_size > 0, name
    assert (out / "sfm" / "sparse").is_dir() and not (out / "work").exists()
    assert "held-out PSNR" in run.stdout
    # The time of every stage, SfM's and training's, and the whole run's wall time, at the end.
    stages = dict(re.findall(r"^  (sfm \w+|train \w+|photos -> scene)\s+([\d.]+) s", run.stdout, re.M))
    assert {"sfm extraction", "sfm mapping", "train train", "train export", "photos -> scene"} <= set(stages), run.stdout
    assert float(stages["photos -> scene"]) >= float(stages["sfm mapping"]) + float(stages["train train"])


def test_reconstruct_of_unrelated_photos_fails_with_advice(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    photos = tmp_path / "noise"
    photos.mkdir()
    for i in range(5):
        pixels = np.random.default_rng(i).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{i}.jpg")
    run = subprocess.run(
        [sys.executable, "-m", "photosplat", "reconstruct", str(photos), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2
    assert "SfM failed:" in run.stderr and "overlap" in run.stderr


def test_reconstruct_of_a_nerf_synthetic_folder_skips_sfm_and_trains_on_its_split(tmp_path: Path) -> None:
    from photosplat_testkit.synthetic import render_scene, write_blender_dataset

    scene_dir = tmp_path / "lego-like"
    write_blender_dataset(render_scene(n_views=12, width=64, height=48, seed=4), scene_dir)
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "photosplat", "reconstruct", str(scene_dir), "--out", str(out), "--device", "cpu", "--steps", "60"],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SfM skipped" in run.stderr and "random Gaussians" in run.stderr
    metrics = json.loads((out / "scene" / "metrics.json").read_text())
    assert sorted(metrics["views"]["test"]) == [f"./test/r_{i}.png" for i in (0, 4, 8)]
    assert json.loads((out / "scene" / "config.json").read_text())["background"] == [1.0, 1.0, 1.0]
    assert (out / "scene" / "scene.spz").stat().st_size > 0 and not (out / "sfm").exists()
