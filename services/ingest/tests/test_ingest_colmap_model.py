"""A COLMAP text model as known poses: every value the colmap stage reads is checked at ingest, so a
bad model is a 400 naming the file, its line and the rule, never a failed (or crashed) SfM later; a
good one is stored rewritten from the checked values."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from photosplat_testkit.colmap_text import colmap_text_model
from photosplat_testkit.synthetic import SyntheticScene, render_scene

from photosplat_ingest.validation import FileError, KnownPoses, PhotoSize, Rule, check_known_poses
from photosplat_ingest.validation.colmap_model import MAX_MODEL_FILE_BYTES

NAMES = ["a.jpg", "b.jpg", "c.jpg"]
PHOTOS = [PhotoSize(name, 160, 120) for name in NAMES]
CAMERAS = b"# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n1 PINHOLE 160 120 150 150 80 60\n"
POINTS = b"1 0.5 0.25 2.0 10 20 30 0.7 1 0 2 0\n2 -1.0 0.0 3.0 200 100 0 0.4 1 1\n"


def _images(names: list[str] = NAMES, pose: str = "1 0 0 0 0.1 0 4", camera: str = "1") -> bytes:
    # Each image line is followed by its POINTS2D line (keypoints x, y, POINT3D_ID).
    return "".join(f"{i} {pose} {camera} {n}\n10.0 20.0 1 30.5 40.5 -1\n" for i, n in enumerate(names, 1)).encode()


def _check(cameras: bytes = CAMERAS, images: bytes | None = None, points: bytes | None = POINTS) -> KnownPoses | FileError:
    files = [("cameras.txt", cameras), ("images.txt", _images() if images is None else images)]
    return check_known_poses(files + ([("points3D.txt", points)] if points is not None else []), PHOTOS)


def _read(poses: KnownPoses, folder: Path) -> pycolmap.Reconstruction:
    for name, data in poses.files.items():
        (folder / name).write_bytes(data)
    return pycolmap.Reconstruction(str(folder))


def test_a_model_is_stored_as_checked_values_without_keypoints_or_tracks(tmp_path: Path) -> None:
    images = _images(["sub/a.JPG", "b.png", "c:\\photos\\c.jpg", "unrelated.jpg"])
    poses = _check(images=images)
    assert isinstance(poses, KnownPoses) and poses.is_colmap_model
    assert set(poses.files) == {"cameras.txt", "images.txt", "points3D.txt"}
    model = _read(poses, tmp_path)
    # The image naming no uploaded photo is left out; the others keep their poses, by file name.
    assert sorted(i.name for i in model.images.values()) == ["a.JPG", "b.png", "c.jpg"]
    assert all(np.allclose(i.cam_from_world().translation, [0.1, 0, 4]) for i in model.images.values())
    assert all(i.num_points2D() == 0 for i in model.images.values())
    assert model.num_points3D() == 2
    xyz = sorted(tuple(p.xyz) for p in model.points3D.values())
    assert np.allclose(xyz, [(-1.0, 0.0, 3.0), (0.5, 0.25, 2.0)])
    assert all(p.track.length() == 0 for p in model.points3D.values())


def test_points3d_is_optional(tmp_path: Path) -> None:
    poses = _check(points=None)
    assert isinstance(poses, KnownPoses)
    assert _read(poses, tmp_path).num_points3D() == 0


def test_a_model_as_colmap_writes_it_is_taken_whole(tmp_path: Path) -> None:
    scene = render_scene(n_views=4, width=160, height=120, n_points=600, seed=2)
    written = colmap_text_model(scene)  # rigs.txt and frames.txt too, as COLMAP 3.12 writes them
    poses = check_known_poses(list(written.items()), [PhotoSize(n, 160, 120) for n in scene.names])
    assert isinstance(poses, KnownPoses), poses
    model = _read(poses, tmp_path)
    assert model.num_reg_images() == 4 and model.num_points3D() == written["points3D.txt"].count(b"\n") - 3
    for image in model.images.values():
        truth = scene.cams_from_world[scene.names.index(image.name)]
        assert np.allclose(image.cam_from_world().matrix(), truth, atol=1e-9)


def test_a_model_of_larger_photos_of_the_same_shape_is_taken() -> None:
    assert isinstance(_check(cameras=b"1 SIMPLE_RADIAL 640 480 600 320 240 0.01\n"), KnownPoses)


@pytest.mark.parametrize(
    ("file", "cameras", "images", "points", "message"),
    [
        ("cameras.txt", b"", None, POINTS, "the file is empty"),
        ("cameras.txt", b"# nothing\n", None, POINTS, "no cameras"),
        ("cameras.txt", b"\xff\xfe1 PINHOLE\n", None, POINTS, "not UTF-8"),
        ("cameras.txt", b"1 PINHOLE 160 120\n", None, POINTS, "has 4 parameters, not 0"),
        ("cameras.txt", b"1 PINHOLE\n", None, POINTS, "line 1: expected CAMERA_ID MODEL"),
        ("cameras.txt", b"1 PINHOLEZ 160 120 1 1 1 1\n", None, POINTS, "is not one of SIMPLE_PINHOLE"),
        ("cameras.txt", b"1 PINHOLE 160 120 150 nan 80 60\n", None, POINTS, "must be a finite number"),
        ("cameras.txt", b"1 PINHOLE 160 120 150 1e999 80 60\n", None, POINTS, "must be a finite number"),
        ("cameras.txt", b"1 PINHOLE 160 120 0 150 80 60\n", None, POINTS, "focal length must be positive"),
        ("cameras.txt", b"1 PINHOLE 0 120 150 150 80 60\n", None, POINTS, "WIDTH must be a whole number"),
        ("cameras.txt", b"-1 PINHOLE 160 120 150 150 80 60\n", None, POINTS, "CAMERA_ID must be a whole number"),
        ("cameras.txt", "\u00b2 PINHOLE 160 120 150 150 80 60\n".encode(), None, POINTS, "CAMERA_ID must be"),
        ("cameras.txt", b"9" * 5000 + b" PINHOLE 160 120 150 150 80 60\n", None, POINTS, "CAMERA_ID must be"),
        ("cameras.txt", CAMERAS + b"1 PINHOLE 160 120 150 150 80 60\n", None, POINTS, "line 3: camera 1 is defined twice"),
        ("cameras.txt", b"1 PINHOLE 120 160 150 150 60 80\n", None, POINTS, "not the same shape"),
        ("images.txt", CAMERAS, b"1 1 0 0 0 0 0 4 1\n\n", POINTS, "line 1: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"),
        ("images.txt", CAMERAS, _images(pose="2 0 0 0 0 0 4"), POINTS, "is not a rotation"),
        ("images.txt", CAMERAS, _images(pose="1 0 0 0 0 inf 4"), POINTS, "must be a finite number"),
        ("images.txt", CAMERAS, _images(pose="1 0 0 0 0 2e9 4"), POINTS, "must be a finite number"),
        ("images.txt", CAMERAS, _images(camera="7"), POINTS, "line 1: camera '7' is not in cameras.txt"),
        ("images.txt", CAMERAS, _images(camera="\u00b9"), POINTS, "line 1: camera '\u00b9' is not in cameras.txt"),
        ("images.txt", CAMERAS, _images(["a.jpg", "b.jpg", "c.jpg", "c.png"]), POINTS, "line 7 names the same photo (c.jpg) as line 5"),
        ("images.txt", CAMERAS, _images(["a.jpg", "b.jpg", "x.jpg"]), POINTS, "name 2 of the uploaded photos"),
        ("images.txt", CAMERAS, _images() + b"1 1 0 0 0 0 0 4 1 d.jpg\n\n", POINTS, "image 1 is defined twice"),
        ("points3D.txt", CAMERAS, None, b"1 0.5 0.25 2.0 10 20 300 0.7\n", "R G B must be a whole number from 0 to 255"),
        ("points3D.txt", CAMERAS, None, b"1 0.5 NaN 2.0 10 20 30 0.7\n", "X Y Z must be a finite number"),
        ("points3D.txt", CAMERAS, None, b"1 0.5 0.25 2.0 10 20 30\n", "line 1: expected POINT3D_ID X Y Z"),
    ],
)
def test_a_bad_model_is_named_by_file_line_and_rule(
    file: str, cameras: bytes, images: bytes | None, points: bytes, message: str
) -> None:
    error = _check(cameras, images, points)
    assert isinstance(error, FileError) and (error.file, error.rule) == (file, Rule.POSES)
    assert message in error.message, error.message


def test_a_camera_of_photos_of_different_sizes_is_refused() -> None:
    photos = [*PHOTOS[:2], PhotoSize("c.jpg", 320, 240)]
    error = check_known_poses([("cameras.txt", CAMERAS), ("images.txt", _images())], photos)
    assert isinstance(error, FileError) and "camera 1 is used by photos of different sizes" in error.message


@pytest.mark.parametrize(
    ("names", "file", "message"),
    [
        (["cameras.txt", "notes.txt"], "notes.txt", "not a file of a COLMAP model"),
        (["cameras.txt", "points3D.txt"], "images.txt", "missing"),
        (["images.txt"], "cameras.txt", "missing"),
        (["cameras.txt", "images.txt", "sparse/CAMERAS.TXT"], "cameras.txt", "given 2 times"),
        (["transforms.json", "images.txt"], "transforms.json", "not a file of a COLMAP model"),
    ],
)
def test_the_poses_files_must_be_one_transforms_json_or_a_model(names: list[str], file: str, message: str) -> None:
    error = check_known_poses([(name, CAMERAS) for name in names], PHOTOS)
    assert isinstance(error, FileError) and (error.file, error.rule) == (file, Rule.POSES)
    assert message in error.message and "cameras.txt, images.txt and optionally points3D.txt" in error.message


def test_a_model_file_over_the_limit_is_refused_unread() -> None:
    error = _check(points=b"#" * (MAX_MODEL_FILE_BYTES + 1))
    assert isinstance(error, FileError) and error.file == "points3D.txt" and "exceeds the limit" in error.message


# Over HTTP (the ingest service on SQLite and on Postgres): the 400 names the file and nothing is kept.


def _jpeg(scene: SyntheticScene, index: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(scene.images[index]).save(out, "JPEG", quality=95)
    return out.getvalue()


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=3, width=160, height=120, n_points=300, seed=4)


async def test_a_bad_model_in_a_multipart_upload_is_a_400(start_ingest, scene: SyntheticScene) -> None:
    replica = await start_ingest()
    files = [("files", (name, _jpeg(scene, i), "image/jpeg")) for i, name in enumerate(scene.names)]
    model = colmap_text_model(scene)
    broken = model["images.txt"].replace(b" 1 view_001.jpg", b" 9 view_001.jpg")
    poses = [("poses", ("cameras.txt", model["cameras.txt"], "text/plain")), ("poses", ("images.txt", broken, "text/plain"))]
    async with replica.client() as client:
        response = await client.post("/recon/jobs", files=files + poses)
    assert response.status_code == 400, response.text
    [error] = response.json()["detail"]["errors"]
    assert (error["file"], error["rule"]) == ("images.txt", "poses") and "camera '9' is not in cameras.txt" in error["message"]
    assert await replica.jobs() == 0 and await replica.job_folders() == set()


async def test_a_declaration_of_poses_files_is_checked(start_ingest) -> None:
    replica = await start_ingest()
    photos = [{"name": f"{i}.jpg", "size": 1000} for i in range(3)]
    cases = {
        ("notes.txt", "poses"): [{"name": "cameras.txt", "size": 10}, {"name": "notes.txt", "size": 10}],
        ("images.txt", "poses"): [{"name": "cameras.txt", "size": 10}],
        ("transforms.json", "poses"): [{"name": "transforms.json", "size": 11 * 1024 * 1024}],
        ("points3D.txt", "poses"): [
            {"name": "cameras.txt", "size": 10}, {"name": "images.txt", "size": 10}, {"name": "points3D.txt", "size": 0},
        ],
    }
    async with replica.client() as client:
        for named, poses in cases.items():
            response = await client.post("/recon/uploads", json={"files": photos, "poses": poses})
            assert response.status_code == 400, response.text
            assert [(e["file"], e["rule"]) for e in response.json()["detail"]["errors"]] == [named]
    assert await replica.jobs() == 0
