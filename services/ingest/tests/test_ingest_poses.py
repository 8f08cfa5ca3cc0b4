"""The ``poses`` transforms.json: every value the camera reader (photosplat_libs.transforms) uses is
checked at ingest, so a bad file is a 400 naming it, never a 500 or a failed SfM later."""

from __future__ import annotations

import json

import numpy as np
import pytest

from photosplat_ingest.validation import POSES_FILE, Rule, check_poses
from photosplat_libs.transforms import frame_camera

NAMES = ["a.jpg", "b.jpg", "c.jpg"]
EYE = "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]"


def _doc(shared: str = '"camera_angle_x": 0.9', matrix: str = EYE, frame_extra: str = "") -> bytes:
    """A transforms.json as text, so values JSON cannot produce from Python (1e999, NaN) can be written."""
    extra = f", {frame_extra}" if frame_extra else ""
    frames = ", ".join(
        f'{{"file_path": "images/{n[:-4]}", "transform_matrix": {matrix}{extra}}}' for n in NAMES
    )
    return f'{{{shared}{", " if shared else ""}"frames": [{frames}]}}'.encode()


def _message(data: bytes) -> str:
    error = check_poses(data, NAMES)
    assert error is not None, data[:200]
    assert (error.file, error.rule) == (POSES_FILE, Rule.POSES)
    return error.message


@pytest.mark.parametrize(
    "data",
    [
        _doc(),
        _doc('"fl_x": 500, "fl_y": 480.5, "cx": 80, "cy": 60, "w": 160, "h": 120'),
        _doc("", frame_extra='"camera_angle_x": 1.2'),
        _doc(matrix="[[0, -1, 0, 5e5], [1, 0, 0, -4e6], [0, 0, 1, 7], [0, 0, 0, 1]]"),
    ],
)
def test_good_poses_give_finite_cameras(data: bytes) -> None:
    assert check_poses(data, NAMES) is None
    doc = json.loads(data)
    for frame in doc["frames"]:
        K, cam_from_world = frame_camera(doc, frame, 160, 120)
        assert np.isfinite(K).all() and np.isfinite(cam_from_world).all() and K[0, 0] > 0


def test_deeply_nested_json_is_a_named_400_not_a_crash() -> None:
    for data in (b"[" * 200_000 + b"]" * 200_000, b'{"frames": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"):
        assert "nested" in _message(data)


@pytest.mark.parametrize(
    ("shared", "field"),
    [
        ('"camera_angle_x": 1e999', "camera_angle_x"),
        ('"camera_angle_x": -1e999', "camera_angle_x"),
        ('"camera_angle_x": NaN', "camera_angle_x"),
        ('"camera_angle_x": true', "camera_angle_x"),
        ('"camera_angle_x": "0.9"', "camera_angle_x"),
        ('"camera_angle_x": null', "camera_angle_x"),
        ('"camera_angle_x": 0', "camera_angle_x"),
        ('"camera_angle_x": 3.5', "camera_angle_x"),
        ('"camera_angle_x": 1e-320', "camera_angle_x"),
        ('"fl_x": Infinity', "fl_x"),
        ('"fl_x": -500', "fl_x"),
        ('"fl_x": false, "camera_angle_x": 0.9', "fl_x"),
        ('"fl_x": 500, "fl_y": 0', "fl_y"),
        ('"fl_x": 500, "fl_y": [500]', "fl_y"),
        ('"fl_x": 500, "cx": "80"', "cx"),
        ('"fl_x": 500, "cy": NaN', "cy"),
        ('"fl_x": 500, "w": 0', "w"),
        ('"fl_x": 500, "h": -120', "h"),
        ('"fl_x": 1' + "0" * 400, "fl_x"),
    ],
)
def test_intrinsics_must_be_finite_positive_numbers(shared: str, field: str) -> None:
    message = _message(_doc(shared))
    assert f'"{field}"' in message


def test_per_frame_intrinsics_are_checked_too() -> None:
    assert '"fl_x"' in _message(_doc(frame_extra='"fl_x": 1e999'))
    assert '"camera_angle_x"' in _message(_doc("", frame_extra='"camera_angle_x": true'))


@pytest.mark.parametrize(
    "matrix",
    [
        "[[true, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
        '[[1, 0, 0, "0"], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]',
        "[[1, 0, 0, NaN], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
        "[[1, 0, 0, 1e999], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
        "[[1, 0, 0, 1" + "0" * 400 + "], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
        "[[1, 0, 0, null], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
        "[[1, 0, 0], [0, 1, 0], [0, 0, 1]]",
        "[[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]",
        "[[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]",
        "[[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
        "[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]",
        "[[1, 0, 0, 1e308], [0, 1, 0, 1e308], [0, 0, 1, 1e308], [0, 0, 0, 1]]",
        "[[1, 0, 0, 2e9], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]",
    ],
)
def test_transform_matrix_must_be_a_finite_rigid_pose(matrix: str) -> None:
    assert '"transform_matrix"' in _message(_doc(matrix=matrix))


def test_two_frames_for_one_photo_are_refused() -> None:
    doc = json.loads(_doc())
    doc["frames"].append({**doc["frames"][0], "file_path": "other/a.png"})
    assert "same photo" in _message(json.dumps(doc).encode())


def test_a_focal_length_is_required() -> None:
    assert "no focal length" in _message(_doc('"cx": 80'))
