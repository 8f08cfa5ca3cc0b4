"""The synthetic scene generator: deterministic, cameras aimed at the scene, images worth matching."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from photosplat_testkit.synthetic import SyntheticScene, render_scene, write_colmap_dataset, write_images
from PIL import Image


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=8, width=160, height=120, seed=3, n_points=3000)


def test_same_seed_same_scene_other_seed_other_scene(scene: SyntheticScene) -> None:
    again = render_scene(n_views=8, width=160, height=120, seed=3, n_points=3000)
    other = render_scene(n_views=8, width=160, height=120, seed=4, n_points=3000)
    assert all(np.array_equal(a, b) for a, b in zip(scene.images, again.images, strict=True))
    assert np.array_equal(scene.points, again.points)
    assert not np.array_equal(scene.images[0], other.images[0])


def test_cameras_look_at_the_centre(scene: SyntheticScene) -> None:
    for pose, center in zip(scene.cams_from_world, scene.centers, strict=True):
        R = pose[:, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(R) == pytest.approx(1.0)
        # The scene centre projects close to the principal point, in front of the camera.
        x = scene.K @ (R @ np.array([0.0, 0.0, 0.4]) + pose[:, 3])
        assert x[2] > 0
        np.testing.assert_allclose(x[:2] / x[2], [scene.width / 2, scene.height / 2], atol=1.0)
        assert np.linalg.norm(center[:2]) == pytest.approx(4.0)


def test_images_are_textured_and_points_project_where_their_colour_is(scene: SyntheticScene) -> None:
    for image in scene.images:
        assert image.shape == (scene.height, scene.width, 3) and image.dtype == np.uint8
        gray = image.astype(float).mean(axis=2)[scene.height // 2 :]
        # Contrast at every scale below the horizon (what SIFT needs): global and pixel to pixel.
        assert gray.std() > 20
        assert np.abs(np.diff(gray, axis=1)).mean() > 2
    obs = scene.observations[0]
    assert len(obs) > 300
    # A visible point's colour matches the pixel it projects to (same surface, same shading).
    idx = obs[:, 0].astype(int)
    pix = scene.images[0][obs[:, 2].astype(int), obs[:, 1].astype(int)].astype(float)
    assert np.median(np.abs(pix - scene.colors[idx].astype(float))) < 40


def test_render_speed() -> None:
    start = time.perf_counter()
    render_scene(n_views=24, width=320, height=240, seed=0)
    assert time.perf_counter() - start < 6.0  # ~2.5 s on the 2-core CI machine


def test_written_images_carry_the_focal_length(scene: SyntheticScene, tmp_path: Path) -> None:
    paths = write_images(scene, tmp_path)
    assert [p.name for p in paths] == scene.names
    exif = Image.open(paths[0]).getexif()
    assert exif.get_ifd(0x8769)[0xA405] == scene.focal_35mm
    assert exif[0x0110] == "Synthetic camera"


def test_colmap_dataset_has_true_cameras_and_tracks(scene: SyntheticScene, tmp_path: Path) -> None:
    pycolmap = pytest.importorskip("pycolmap")
    write_colmap_dataset(scene, tmp_path)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == scene.names
    rec = pycolmap.Reconstruction(str(tmp_path / "sparse"))
    assert rec.num_reg_images() == len(scene.names)
    camera = rec.cameras[1]
    assert camera.model.name == "PINHOLE"
    np.testing.assert_allclose(camera.calibration_matrix(), scene.K)
    for image in rec.images.values():
        i = scene.names.index(image.name)
        np.testing.assert_allclose(image.cam_from_world().matrix(), scene.cams_from_world[i], atol=1e-9)
    assert rec.num_points3D() > 1000
    assert rec.compute_mean_reprojection_error() < 0.01
