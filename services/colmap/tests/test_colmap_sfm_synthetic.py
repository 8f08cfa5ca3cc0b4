"""The SfM pipeline on rendered scenes with known cameras: poses recovered, failures explained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pycolmap
import pytest
from photosplat_colmap import pipeline
from photosplat_colmap.capture import photos_from_folder
from photosplat_colmap.cli import main
from photosplat_testkit.poses import pose_errors, poses_of
from photosplat_testkit.synthetic import SyntheticScene, render_scene, write_images
from photosplat_libs.errors import UserError
from photosplat_testkit.reporting import RecordingReporter

# Stated tolerance on the synthetic orbit (320x240, 24 views): measured ~0.3 deg / ~0.5 %.
MAX_ROTATION_DEG = 1.0
MAX_POSITION_ERROR = 0.02  # of the mean distance of the cameras from their centroid


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=24, seed=0)


@pytest.fixture(scope="module")
def solved(
    scene: SyntheticScene, tmp_path_factory: pytest.TempPathFactory
) -> tuple[pipeline.SfmResult, RecordingReporter, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    write_images(scene, root / "photos")
    recorder = RecordingReporter()
    result = pipeline.run(
        photos_from_folder(root / "photos"), root / "work", root / "out", pipeline.SfmOptions(), recorder
    )
    return result, recorder, root


def test_all_cameras_recovered_within_tolerance(scene: SyntheticScene, solved: tuple) -> None:
    result, _, _ = solved
    assert result.registered_images == result.total_images == 24
    assert result.points > 300 and result.reprojection_error < 1.0 and result.mean_track_length > 2
    truth = dict(zip(scene.names, scene.cams_from_world, strict=True))
    errors = pose_errors(poses_of(pycolmap.Reconstruction(str(result.sparse_dir))), truth)
    assert errors.rotation_deg.max() <= MAX_ROTATION_DEG, errors.summary()
    assert errors.position.max() <= MAX_POSITION_ERROR, errors.summary()


def test_training_gets_pinhole_cameras_and_every_image(solved: tuple) -> None:
    result, _, _ = solved
    undistorted = result.undistorted_dir
    assert sorted(p.name for p in undistorted.iterdir()) == ["images", "sparse"]
    model = pycolmap.Reconstruction(str(undistorted / "sparse"))
    assert {c.model.name for c in model.cameras.values()} == {"PINHOLE"}
    assert {i.name for i in model.images.values()} == {p.name for p in (undistorted / "images").iterdir()}
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        assert (undistorted / "sparse" / name).is_file() and (result.sparse_dir / name).is_file()


def test_the_exif_focal_length_is_the_prior(scene: SyntheticScene, solved: tuple) -> None:
    _, _, root = solved
    db = pycolmap.Database.open(str(root / "work" / "database.db"))
    cameras = db.read_all_cameras()
    db.close()
    # One camera (same make/model/size), initialised from EXIF's 35 mm equivalent.
    assert len(cameras) == 1 and cameras[0].has_prior_focal_length
    assert cameras[0].focal_length == pytest.approx(scene.focal_35mm / 36 * scene.width)


def test_progress_moves_through_the_steps_and_steps_are_logged(solved: tuple) -> None:
    result, recorder, _ = solved
    assert recorder.fractions == sorted(recorder.fractions) and recorder.fractions[-1] == 1.0
    assert any("extracted" in m for m in recorder.metrics) and any("registered" in m for m in recorder.metrics)
    assert max(m.get("registered", 0) for m in recorder.metrics) == 24
    text = "\n".join(recorder.lines)
    for step in ("capture check", "feature extraction", "matching: exhaustive", "mapping (incremental"):
        assert step in text
    assert set(result.timings) == {"capture", "extraction", "matching", "mapping", "undistortion"}
    assert result.stats().matcher == "exhaustive"
    assert result.stats().timings.total() == pytest.approx(sum(result.timings.values()), abs=0.05)


def test_unrelated_photos_fail_with_advice(tmp_path: Path) -> None:
    # One view from each of 8 different scenes: nothing overlaps.
    for seed in range(8):
        unrelated = render_scene(n_views=1, seed=100 + seed, n_points=10)
        unrelated.names = [f"scene_{seed}.jpg"]
        write_images(unrelated, tmp_path / "photos")
    with pytest.raises(UserError) as failure:
        pipeline.run(
            photos_from_folder(tmp_path / "photos"),
            tmp_path / "work",
            tmp_path / "out",
            pipeline.SfmOptions(),
            RecordingReporter(),
        )
    message = str(failure.value)
    assert "of 8 photos could be placed" in message or "could be matched" in message
    assert "overlap" in message
    assert not (tmp_path / "out" / "sparse").exists()


def test_noise_fails_with_advice(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image

    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(folder / f"noise_{i}.jpg")
    with pytest.raises(UserError, match="overlap"):
        pipeline.run(photos_from_folder(folder), tmp_path / "work", tmp_path / "out", pipeline.SfmOptions(), RecordingReporter())


def test_two_photos_are_not_enough(scene: SyntheticScene, tmp_path: Path) -> None:
    write_images(scene, tmp_path / "photos")
    photos = photos_from_folder(tmp_path / "photos")[:2]
    with pytest.raises(UserError, match="not enough"):
        pipeline.run(photos, tmp_path / "work", tmp_path / "out", pipeline.SfmOptions(), RecordingReporter())


def test_cli_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = render_scene(n_views=12, seed=5)
    write_images(small, tmp_path / "photos")
    assert main([str(tmp_path / "photos"), "--out", str(tmp_path / "out"), "--matcher", "sequential"]) == 0
    out = capsys.readouterr().out
    # Incremental mapping places only a few of these wide-baseline views; the fallback chain
    # (re-matching, relaxed init, global mapper) must still place all of them.
    assert "registered          12/12" in out and "matcher / mapper    sequential /" in out
    assert (tmp_path / "out" / "undistorted" / "sparse" / "cameras.bin").is_file()


def test_photosplat_sfm_reports_a_hopeless_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from photosplat.cli import main as photosplat_main

    (tmp_path / "photos").mkdir()
    with pytest.raises(SystemExit) as exit_:
        photosplat_main(["sfm", str(tmp_path / "photos"), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "SfM failed: 0 photo(s) is not enough" in capsys.readouterr().err
