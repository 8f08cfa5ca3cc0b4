"""Where SIFT runs: on a GPU only with pycolmap's CUDA build and a GPU the driver shows, said in
the job log."""

from __future__ import annotations

from pathlib import Path

import pycolmap
import pytest
from photosplat_colmap import devices, pipeline
from photosplat_colmap.capture import photos_from_folder
from photosplat_testkit.poses import pose_errors, poses_of
from photosplat_testkit.reporting import RecordingReporter
from photosplat_testkit.synthetic import SyntheticScene, render_scene, write_images

MAX_ROTATION_DEG = 1.0  # as test_colmap_sfm_synthetic's orbit


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=24, seed=0)


def _run(scene: SyntheticScene, root: Path, options: pipeline.SfmOptions) -> tuple[pipeline.SfmResult, RecordingReporter]:
    write_images(scene, root / "photos")
    recorder = RecordingReporter()
    result = pipeline.run(photos_from_folder(root / "photos"), root / "work", root / "out", options, recorder)
    return result, recorder


def test_the_log_says_where_sift_ran(scene: SyntheticScene, tmp_path: Path) -> None:
    result, recorder = _run(scene, tmp_path, pipeline.SfmOptions())
    where = "SIFT on the GPU" if pycolmap.has_cuda and pycolmap.get_num_cuda_devices() > 0 else "SIFT on the CPU"
    assert any(line.startswith(f"pycolmap {pycolmap.__version__}") and where in line for line in recorder.lines)
    assert result.registered_images == 24


def test_sift_stays_on_the_cpu_when_told_to() -> None:
    options = pipeline.SfmOptions(use_gpu=False)
    assert not devices.sift_on_gpu(options)
    assert devices.describe(options).endswith(("SIFT on the CPU", "SIFT on the CPU (use_gpu off)"))


@pytest.mark.skipif(devices.cuda_devices() == 0, reason="needs pycolmap's CUDA build (pycolmap-cuda12) and a GPU")
def test_with_the_cuda_build_on_a_gpu_sift_runs_there_and_poses_hold(scene: SyntheticScene, tmp_path: Path) -> None:
    result, recorder = _run(scene, tmp_path, pipeline.SfmOptions())
    assert devices.sift_on_gpu(pipeline.SfmOptions())
    assert any("SIFT on the GPU" in line for line in recorder.lines)
    assert result.registered_images == 24
    truth = dict(zip(scene.names, scene.cams_from_world, strict=True))
    errors = pose_errors(poses_of(pycolmap.Reconstruction(str(result.sparse_dir))), truth)
    assert errors.rotation_deg.max() <= MAX_ROTATION_DEG, errors.summary()


def test_every_extraction_and_matching_call_names_its_device(
    scene: SyntheticScene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pycolmap's default device (auto) means CUDA in its CUDA build, which then fails where no GPU is
    visible (seen with pycolmap-cuda12 4.2.1 on a machine without one): each call must say."""
    devices_seen: dict[str, list[object]] = {}
    for name in ("extract_features", "match_exhaustive", "match_sequential", "match_image_pairs"):
        real = getattr(pycolmap, name)

        def recording(*args: object, _name: str = name, _real: object = real, **kwargs: object) -> object:
            devices_seen.setdefault(_name, []).append(kwargs.get("device"))
            return _real(*args, **kwargs)  # type: ignore[operator]

        monkeypatch.setattr(pycolmap, name, recording)
    _run(scene, tmp_path, pipeline.SfmOptions(use_gpu=False))
    assert devices_seen["extract_features"] and devices_seen["match_exhaustive"]
    assert {d for calls in devices_seen.values() for d in calls} == {pycolmap.Device.cpu}
