"""Capture check (blur, near-duplicates, focal length), the matcher choice and known poses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from photosplat_colmap import known_poses
from photosplat_colmap.capture import Photo, Prepared, photos_from_folder, prepare
from photosplat_testkit.poses import pose_errors, pose_from_projection, poses_of, umeyama
from photosplat_colmap.extraction import EXTRACTION_MIN_IMAGES_PER_THREAD
from photosplat_colmap.matching import MATCHING_MIN_PAIRS_PER_CALL, choose_matcher, looks_like_video_frames
from photosplat_colmap.progress import chunk_size
from photosplat_colmap.types import SfmOptions
from photosplat_testkit.synthetic import SyntheticScene, render_scene, write_colmap_dataset, write_images
from PIL import Image, ImageFilter
from photosplat_testkit.reporting import RecordingReporter


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=8, width=320, height=240, seed=2, n_points=2000)


def test_blurry_photos_are_left_out_and_duplicates_and_missing_focal_reported(
    scene: SyntheticScene, tmp_path: Path
) -> None:
    write_images(scene, tmp_path / "in")
    sharp = Image.open(tmp_path / "in" / scene.names[0])
    sharp.filter(ImageFilter.GaussianBlur(6)).save(tmp_path / "in" / "zz_blurred.jpg")
    sharp.save(tmp_path / "in" / "zz_again.jpg", quality=80)  # same view, re-encoded
    photos = photos_from_folder(tmp_path / "in")
    photos = [p if p.name != "zz_again.jpg" else Photo(p.path, p.name) for p in photos]  # no EXIF focal

    report = prepare(photos, tmp_path / "work", max_side=200)

    assert report.blurry_removed == ["zz_blurred.jpg"]
    assert not (tmp_path / "work" / "zz_blurred.jpg").exists()
    assert (scene.names[0], "zz_again.jpg") in report.duplicates
    assert report.missing_focal == ["zz_again.jpg"]
    warnings = "\n".join(report.warnings())
    assert "1 very blurry photo(s) left out: zz_blurred.jpg" in warnings and "near-duplicate" in warnings
    # Working copies are capped at the longer side and carry the scale for the focal prior.
    kept = report.kept[0]
    assert (kept.width, kept.height) == (200, 150) and kept.scale == pytest.approx(200 / 320)
    assert Image.open(tmp_path / "work" / kept.photo.name).size == (200, 150)


def test_large_rotated_jpeg_is_scaled_from_its_upright_size(tmp_path: Path) -> None:
    # A phone photo stored landscape with "rotate 90" in EXIF: decoded at reduced size (JPEG draft)
    # yet scaled and rotated exactly as a full decode would be.
    stored = Image.new("RGB", (2000, 1500))
    stored.paste((255, 0, 0), (0, 0, 1000, 1500))  # left half red: the top once upright
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=90)

    report = prepare([Photo(tmp_path / "phone.jpg", "phone.jpg")], tmp_path / "work", max_side=400)

    kept = report.kept[0]
    assert (kept.width, kept.height) == (300, 400) and kept.scale == pytest.approx(0.2)
    copy = Image.open(tmp_path / "work" / "phone.jpg")
    assert copy.size == (300, 400) and not copy.getexif()
    assert copy.getpixel((150, 100))[0] > 200 and copy.getpixel((150, 300))[0] < 50


def test_focal_from_exif_like_ingest(scene: SyntheticScene, tmp_path: Path) -> None:
    write_images(scene, tmp_path)
    photo = photos_from_folder(tmp_path)[0]
    assert photo.focal_length_px == pytest.approx(scene.focal_35mm / 36 * 320)
    assert photo.camera == "PhotoSplat Synthetic camera"


def _prepared(names: list[str]) -> list[Prepared]:
    return [Prepared(Photo(Path(n), n), 100, 100, 1.0, 1.0, 0) for n in names]


def test_matcher_choice() -> None:
    options = SfmOptions()
    assert choose_matcher(_prepared([f"IMG_{i:04d}.jpg" for i in range(70)]), options)[0] == "exhaustive"
    assert choose_matcher(_prepared([f"frame_{i:05d}.png" for i in range(300)]), options)[0] == "sequential"
    unordered = [f"{chr(97 + i % 26)}{i}.jpg" for i in range(300)]
    assert choose_matcher(_prepared(unordered), options)[0] == "exhaustive"
    assert choose_matcher(_prepared(unordered * 2), options)[0] == "sequential"
    assert choose_matcher(_prepared(unordered), SfmOptions(matcher="sequential")) == ("sequential", "requested")
    assert not looks_like_video_frames(["a.jpg", "b.jpg"] * 10)


def test_extraction_and_matching_are_split_for_progress_only_on_large_sets() -> None:
    # Each call has a fixed cost (GPU contexts with CUDA): 67 photos on 16 threads were
    # 5 extraction and 10 matching calls; now 1 and 2.
    assert chunk_size(67, EXTRACTION_MIN_IMAGES_PER_THREAD * 16) == 67
    assert chunk_size(67 * 66 // 2, MATCHING_MIN_PAIRS_PER_CALL) == 1106
    assert chunk_size(67, EXTRACTION_MIN_IMAGES_PER_THREAD * 2) == 17  # 2 threads: 4 calls
    assert chunk_size(100_000, MATCHING_MIN_PAIRS_PER_CALL) == 10_000  # never more than 10 calls


def test_umeyama_and_projection_decomposition() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R = q * np.sign(np.linalg.det(q))
    s, R_est, t = umeyama(src, 2.5 * src @ R.T + [1, 2, 3])
    assert s == pytest.approx(2.5) and np.allclose(R_est, R) and np.allclose(t, [1, 2, 3])
    pose = np.concatenate([R, [[0.5], [-1], [4]]], axis=1)
    K = np.array([[800, 0, 320], [0, 810, 240], [0, 0, 1.0]])
    assert np.allclose(pose_from_projection(-3 * K @ pose), pose)


def test_known_poses_from_a_colmap_model_skip_sfm(scene: SyntheticScene, tmp_path: Path) -> None:
    write_colmap_dataset(scene, tmp_path / "data")
    found = known_poses.find(tmp_path / "data" / "images") or known_poses.find(tmp_path / "data")
    assert found == tmp_path / "data" / "sparse"
    photos = photos_from_folder(tmp_path / "data" / "images")
    result = known_poses.run(
        found, photos, tmp_path / "work", tmp_path / "out", SfmOptions(max_image_side=160), RecordingReporter()
    )
    assert result.registered_images == 8 and result.points > 500 and result.mapper == "known poses"
    model = pycolmap.Reconstruction(str(result.undistorted_dir / "sparse"))
    assert model.cameras[1].width == 160
    errors = pose_errors(poses_of(model), dict(zip(scene.names, scene.cams_from_world, strict=True)))
    assert errors.rotation_deg.max() < 1e-3


def test_known_poses_from_transforms_json(scene: SyntheticScene, tmp_path: Path) -> None:
    write_images(scene, tmp_path)
    frames = []
    for name, pose in zip(scene.names, scene.cams_from_world, strict=True):
        world_from_cam = np.linalg.inv(np.vstack([pose, [0, 0, 0, 1]])) @ np.diag([1.0, -1, -1, 1])
        frames.append({"file_path": f"./images/{Path(name).stem}", "transform_matrix": world_from_cam.tolist()})
    (tmp_path / "transforms.json").write_text(
        json.dumps({"fl_x": scene.K[0, 0], "fl_y": scene.K[1, 1], "frames": frames})
    )
    assert known_poses.find(tmp_path) == tmp_path / "transforms.json"
    model = known_poses.load(tmp_path / "transforms.json", {n: (320, 240) for n in scene.names})
    errors = pose_errors(poses_of(model), dict(zip(scene.names, scene.cams_from_world, strict=True)))
    assert errors.rotation_deg.max() < 1e-3 and errors.position.max() < 1e-9
    assert np.allclose(model.cameras[1].calibration_matrix(), scene.K)
