"""The first impression: the thumbnail's camera and the viewer's opening view frame the object,
not a close-up of one of its edges (a walk-around capture whose middle photo is a close-up)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from photosplat_testkit.synthetic import SyntheticScene, render_scene
from photosplat_trainer.dataset import Dataset, View
from photosplat_trainer.pipeline import _thumbnail_view, home_view

WIDTH, HEIGHT = 64, 48


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=17, width=WIDTH, height=HEIGHT, n_points=2000, seed=3, object_only=True)


def _view(name: str, K: np.ndarray, cam_from_world: np.ndarray, index: int) -> View:
    viewmat = torch.eye(4)
    viewmat[:3] = torch.tensor(cam_from_world, dtype=torch.float32)
    pixels = torch.zeros(HEIGHT, WIDTH, 3, dtype=torch.uint8)  # only the size matters here
    return View(name, pixels, torch.tensor(K, dtype=torch.float32), viewmat, index)


def _dataset(scene: SyntheticScene, cams: list[np.ndarray]) -> Dataset:
    views = [_view(f"view_{i:03d}.jpg", scene.K, P, i) for i, P in enumerate(cams)]
    return Dataset(views, [], scene.points.astype(np.float32), scene.colors.astype(np.float32) / 255)


def _framed(K: np.ndarray, cam_from_world: np.ndarray, points: np.ndarray) -> float:
    """The share of ``points`` that a pinhole camera shows in its image."""
    cam = points @ cam_from_world[:, :3].T + cam_from_world[:, 3]
    z = np.where(cam[:, 2] > 0, cam[:, 2], np.nan)
    u, v = K[0, 0] * cam[:, 0] / z + K[0, 2], K[1, 1] * cam[:, 1] / z + K[1, 2]
    return float(np.mean((cam[:, 2] > 0) & (u >= 0) & (u < WIDTH) & (v >= 0) & (v < HEIGHT)))


def _look_at(centre: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    R = np.stack([right, np.cross(forward, right), forward])
    return np.concatenate([R, (-R @ centre)[:, None]], axis=1)


def _close_up(scene: SyntheticScene) -> np.ndarray:
    """A camera 0.3 units above the object's highest point, looking straight down at it."""
    top = scene.points[np.argmax(scene.points[:, 2])]
    return _look_at(top + np.array([0.0, 0.0, 0.3]), top, np.array([1.0, 0.0, 0.0]))


def _opening_share(scene: SyntheticScene, data: Dataset) -> tuple[float, float]:
    """What the thumbnail's camera and the viewer's opening camera frame of the object."""
    chosen = _thumbnail_view(data)
    thumbnail = _framed(chosen.K.double().numpy(), chosen.viewmat[:3].double().numpy(), scene.points)
    home = home_view(chosen, scene.points)
    opening = _look_at(np.array(home.position), np.array(home.target), np.array(home.up))
    return thumbnail, _framed(chosen.K.double().numpy(), opening, scene.points)


def test_the_opening_view_frames_most_of_the_object(scene: SyntheticScene) -> None:
    thumbnail, opening = _opening_share(scene, _dataset(scene, scene.cams_from_world))
    assert thumbnail >= 0.8 and opening >= 0.8, (thumbnail, opening)


def test_a_close_up_in_the_middle_of_the_capture_is_not_the_opening_view(scene: SyntheticScene) -> None:
    cams = list(scene.cams_from_world)
    cams.insert(len(cams) // 2 + 1, _close_up(scene))
    data = _dataset(scene, cams)
    middle = data.train[len(data.train) // 2]
    # The scene is built so that the middle photo, the old choice, is the close-up.
    assert _framed(scene.K, middle.viewmat[:3].double().numpy(), scene.points) < 0.3

    thumbnail, opening = _opening_share(scene, data)
    assert thumbnail >= 0.8 and opening >= 0.8, (thumbnail, opening)
    assert _thumbnail_view(data).name != middle.name


def test_the_opening_view_is_turned_to_the_centre_of_what_it_frames(scene: SyntheticScene) -> None:
    """A capture camera that looks past the object is turned about its centre to face it."""
    target = np.median(scene.points, axis=0)
    up = np.array([0.0, 0.0, 1.0])
    aside = [_look_at(-P[:, :3].T @ P[:, 3], target + np.array([0.6, 0.0, 0.0]), up) for P in scene.cams_from_world]
    chosen = _thumbnail_view(_dataset(scene, aside))
    centre_cam = chosen.viewmat[:3, :3].double().numpy() @ target + chosen.viewmat[:3, 3].double().numpy()
    pixel = chosen.K.double().numpy() @ (centre_cam / centre_cam[2])
    assert abs(pixel[0] - WIDTH / 2) < 0.1 * WIDTH and abs(pixel[1] - HEIGHT / 2) < 0.1 * HEIGHT, pixel
    original = next(v for v in _dataset(scene, aside).train if v.name == chosen.name)
    assert np.allclose(chosen.center, original.center, atol=1e-4)  # turned, not moved


def test_without_points_the_cameras_focus_stands_for_the_scene(scene: SyntheticScene) -> None:
    data = _dataset(scene, scene.cams_from_world)
    data.points = np.zeros((0, 3), np.float32)
    chosen = _thumbnail_view(data)
    assert _framed(chosen.K.double().numpy(), chosen.viewmat[:3].double().numpy(), scene.points) >= 0.8
