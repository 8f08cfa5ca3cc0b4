"""The SfM output as training data: undistorted PINHOLE images with poses and the sparse points.

Layout (what the SfM stage uploads): ``images/*`` and ``sparse/{cameras,images,points3D}.bin``.
Views are sorted by image name and every ``test_every``-th one (index 0, n, 2n, ...) is held out for
evaluation, as gsplat's ``simple_trainer`` and the 3DGS papers split them.

The NeRF-synthetic ("Blender") layout is read too: ``transforms_train.json`` / ``transforms_test.json``
(the official split is kept), OpenGL camera-to-world matrices, RGBA images composited on the
training background, no 3D points (training starts from random Gaussians).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from photosplat_libs.transforms import frame_camera
from photosplat_libs.errors import UserError
from PIL import Image


@dataclass
class View:
    name: str
    # (H, W, 3): uint8 as loaded (a quarter of float32's memory: 300 photos of 1600x900 are 1.3 GB on
    # the GPU instead of 5.2), or float32 in [0, 1] (a render used as a target).
    pixels: torch.Tensor
    K: torch.Tensor  # (3, 3) for this (possibly downscaled) image
    viewmat: torch.Tensor  # (4, 4) world -> camera (COLMAP: x right, y down, z forward)
    index: int  # position among the training views (appearance embedding); -1 for held-out views

    @property
    def image(self) -> torch.Tensor:
        """(H, W, 3) float32 in [0, 1]."""
        return self.pixels.float() / 255.0 if self.pixels.dtype == torch.uint8 else self.pixels

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def center(self) -> np.ndarray:
        R, t = self.viewmat[:3, :3].double(), self.viewmat[:3, 3].double()
        return (-R.T @ t).cpu().numpy()

    def to(self, device: torch.device | str) -> View:
        return View(self.name, self.pixels.to(device), self.K.to(device), self.viewmat.to(device), self.index)


@dataclass
class Dataset:
    train: list[View]
    test: list[View]
    points: np.ndarray  # (M, 3) float32
    colors: np.ndarray  # (M, 3) float32 in [0, 1]

    @property
    def camera_centers(self) -> np.ndarray:
        return np.stack([v.center for v in self.train + self.test])

    @property
    def scene_scale(self) -> float:
        """1.1 x the largest distance of a camera from the cameras' mean (3DGS's "extent")."""
        c = self.camera_centers
        return 1.1 * float(np.linalg.norm(c - c.mean(axis=0), axis=1).max()) or 1.0

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset([v.to(device) for v in self.train], [v.to(device) for v in self.test], self.points, self.colors)


def sky_points(data: Dataset, n: int, radius_factor: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread over a sphere around the cameras (radius ``radius_factor`` x the scene
    scale), each coloured by the first training view that sees it (grey when none does)."""
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    points = (data.camera_centers.mean(axis=0) + radius_factor * data.scene_scale * dirs).astype(np.float32)
    colors = np.full((n, 3), 0.5, np.float32)
    todo = np.ones(n, bool)
    for view in data.train:
        vm, K = view.viewmat.cpu().numpy(), view.K.cpu().numpy()
        cam = points @ vm[:3, :3].T + vm[:3, 3]
        z = np.maximum(cam[:, 2], 1e-9)
        u, v = K[0, 0] * cam[:, 0] / z + K[0, 2], K[1, 1] * cam[:, 1] / z + K[1, 2]
        seen = todo & (cam[:, 2] > 0) & (u >= 0) & (u < view.width) & (v >= 0) & (v < view.height)
        pixels = view.image.cpu().numpy()
        colors[seen] = pixels[v[seen].astype(int), u[seen].astype(int)]
        todo &= ~seen
    return points, colors


def downscale_factor(width: int, height: int, max_side: int | None) -> float:
    """>= 1: how much an image is shrunk so that its longer side fits ``max_side``."""
    if max_side is None or max(width, height) <= max_side:
        return 1.0
    return max(width, height) / max_side


@dataclass(frozen=True)
class Camera:
    """One posed image as the SfM model gives it (intrinsics for ``width`` x ``height``)."""

    name: str
    K: np.ndarray  # (3, 3)
    cam_from_world: np.ndarray  # (3, 4)
    width: int
    height: int


def is_blender(folder: Path) -> bool:
    return (Path(folder) / "transforms_train.json").is_file()


def load_scene(
    folder: Path, *, max_image_side: int | None, test_every: int = 8, background: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> Dataset:
    """An undistorted COLMAP folder (``images/`` + ``sparse/``) or a NeRF-synthetic folder."""
    if is_blender(folder):
        return load_blender(folder, max_image_side=max_image_side, background=background)
    return load_colmap(folder, max_image_side=max_image_side, test_every=test_every, background=background)


def read_blender_split(folder: Path, split: str) -> list[Camera]:
    path = Path(folder) / f"transforms_{split}.json"
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
        cameras = []
        for frame in doc["frames"]:
            rel = frame["file_path"]
            name = rel if Path(rel).suffix else rel + ".png"
            width, height = _image_size(Path(folder) / name)
            K, cam_from_world = frame_camera(doc, frame, width, height)
            cameras.append(Camera(name, K, cam_from_world, width, height))
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path.name} is not a NeRF-synthetic transforms file: {exc!r}") from exc
    return cameras


def load_blender(folder: Path, *, max_image_side: int | None, background: tuple[float, float, float]) -> Dataset:
    folder = Path(folder)
    train = read_blender_split(folder, "train")
    test = read_blender_split(folder, "test")
    empty = np.zeros((0, 3), np.float32)
    # Image names are paths relative to the folder; the held-out views are the official test split.
    return build_dataset(
        train + test, folder, empty, empty,
        max_image_side=max_image_side, background=background, held_out_names={c.name for c in test},
    )


RandomInit = Literal["cube", "frustum"]


def random_points(
    data: Dataset, n: int, extent: float, seed: int = 0, layout: RandomInit = "cube"
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points with random colours around the point all cameras aim at (:func:`focus_point`).

    ``cube``: uniform in a cube of half-side ``extent`` x scene scale centred there (gsplat's random
    initialisation, which centres the scene on that point before it samples). ``frustum``: each on
    the ray of a random pixel of a random training view, at a depth of ``1 -+ 2 extent`` times that
    view's distance to the focus point, so that every point is in sight and a sky is covered too.

    A cube around the cameras' mean (our first version) hangs above an object captured from the
    upper hemisphere, among the cameras: those near Gaussians covered every view, and ``reference``
    never learned such a scene on the GPU."""
    rng = np.random.default_rng(seed)
    focus = focus_point(data)
    colors = rng.uniform(0.0, 1.0, size=(n, 3)).astype(np.float32)
    if layout == "cube":
        return (focus + extent * data.scene_scale * rng.uniform(-1.0, 1.0, size=(n, 3))).astype(np.float32), colors
    views = data.train
    which = rng.integers(0, len(views), size=n)
    points = np.empty((n, 3))
    for i, view in enumerate(views):
        rows = np.nonzero(which == i)[0]
        R, K = view.viewmat[:3, :3].double().cpu().numpy(), view.K.double().cpu().numpy()
        ahead = float(np.dot(focus - view.center, R[2]))
        distance = ahead if ahead > 0 else data.scene_scale
        pixels = np.stack([rng.uniform(0, view.width, len(rows)), rng.uniform(0, view.height, len(rows)), np.ones(len(rows))], 1)
        depth = distance * np.maximum(1.0 + 2.0 * extent * rng.uniform(-1.0, 1.0, len(rows)), 0.05)
        points[rows] = view.center + ((pixels @ np.linalg.inv(K).T) * depth[:, None]) @ R
    return points.astype(np.float32), colors


def focus_point(data: Dataset) -> np.ndarray:
    """The point nearest to every camera's optical axis (least squares), or the cameras' mean when
    the axes are near parallel (a forward-facing capture) or meet behind the cameras."""
    views = data.train + data.test
    centres = data.camera_centers
    axes = np.stack([v.viewmat[2, :3].double().cpu().numpy() for v in views])  # camera z in world
    projectors = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]
    A, b = projectors.sum(axis=0), np.einsum("nij,nj->i", projectors, centres)
    mean = centres.mean(axis=0)
    if np.linalg.cond(A) > 1e4:
        return mean
    point = np.linalg.solve(A, b)
    in_front = np.einsum("ni,ni->n", point - centres, axes) > 0
    return point if in_front.mean() > 0.5 else mean


def load_colmap(
    folder: Path, *, max_image_side: int | None, test_every: int = 8, background: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> Dataset:
    folder = Path(folder)
    cameras, points, colors = read_colmap(folder)
    return build_dataset(
        cameras, folder / "images", points, colors, max_image_side=max_image_side, test_every=test_every, background=background
    )


def read_colmap(folder: Path) -> tuple[list[Camera], np.ndarray, np.ndarray]:
    import pycolmap

    sparse = Path(folder) / "sparse"
    if not (sparse / "images.bin").exists() and (sparse / "0" / "images.bin").exists():
        sparse = sparse / "0"
    try:
        rec = pycolmap.Reconstruction(str(sparse))
    except Exception as exc:  # pycolmap raises plain RuntimeErrors for missing or broken files
        raise UserError(f"the SfM model in {folder} cannot be read: {exc}") from exc
    cameras = []
    for img in sorted((i for i in rec.images.values() if i.has_pose), key=lambda i: i.name):
        cam = img.camera
        if cam.model_name not in ("PINHOLE", "SIMPLE_PINHOLE"):
            raise UserError(f"camera model {cam.model_name} of {img.name} is not undistorted (PINHOLE expected)")
        cameras.append(
            Camera(img.name, np.asarray(cam.calibration_matrix()), np.asarray(img.cam_from_world().matrix()), cam.width, cam.height)
        )
    pts = rec.points3D
    points = np.array([p.xyz for p in pts.values()], np.float32).reshape(-1, 3)
    colors = np.array([p.color for p in pts.values()], np.float32).reshape(-1, 3) / 255.0
    return cameras, points, colors


def build_dataset(
    cameras: list[Camera],
    image_dir: Path,
    points: np.ndarray,
    colors: np.ndarray,
    *,
    max_image_side: int | None,
    test_every: int = 8,
    background: tuple[float, float, float] = (0.0, 0.0, 0.0),
    held_out_names: set[str] | None = None,
) -> Dataset:
    """Load and downscale the images of ``cameras`` (sorted by name) and split off the held-out views
    (every ``test_every``-th, or those named in ``held_out_names``). Without 3D points the trainer
    starts from random Gaussians; transparent pixels show ``background``."""
    cameras = sorted(cameras, key=lambda c: c.name)
    if len(cameras) < 2:
        raise UserError(f"the SfM model has {len(cameras)} posed image(s); training needs at least 2")
    # Decoding and resizing release the GIL: hundreds of photos load in parallel.
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        views = list(pool.map(lambda cam: _load_view(cam, Path(image_dir), max_image_side, background), cameras))

    if held_out_names is not None:
        held_out = {i for i, v in enumerate(views) if v[0] in held_out_names}
    else:
        held_out = {i for i in range(len(views)) if test_every > 0 and i % test_every == 0}
        if len(held_out) == len(views):
            held_out = set()
    kept = [v for i, v in enumerate(views) if i not in held_out]
    train = [View(*v, index=idx) for idx, v in enumerate(kept)]
    test = [View(*views[i], index=-1) for i in sorted(held_out)]
    return Dataset(train, test, np.asarray(points, np.float32), np.asarray(colors, np.float32))


def _load_view(
    cam: Camera, image_dir: Path, max_image_side: int | None, background: tuple[float, float, float]
) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]:
    pixels = _read_image(image_dir / cam.name, background)
    h0, w0 = pixels.shape[:2]
    factor = downscale_factor(w0, h0, max_image_side)
    w, h = max(1, round(w0 / factor)), max(1, round(h0 / factor))
    if (w, h) != (w0, h0):
        pixels = np.asarray(Image.fromarray(pixels).resize((w, h), Image.Resampling.LANCZOS))
    K = torch.tensor(cam.K, dtype=torch.float32)
    # The intrinsics refer to the camera's size, which may differ from the file's (a resize).
    K[0] *= w / cam.width
    K[1] *= h / cam.height
    viewmat = torch.eye(4)
    viewmat[:3] = torch.tensor(cam.cam_from_world, dtype=torch.float32)
    # PIL gives read-only arrays; torch wants to own a writable one.
    return cam.name, torch.from_numpy(np.array(pixels, copy=not pixels.flags.writeable)), K, viewmat


def _image_size(path: Path) -> tuple[int, int]:
    if not path.exists():
        raise UserError(f"image {path.name} named in the camera file is missing")
    with Image.open(path) as im:
        return im.size


def _read_image(path: Path, background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    if not path.exists():
        raise UserError(f"image {path.name} named in the SfM model is missing")
    with Image.open(path) as im:
        if "A" not in im.getbands() and not (im.mode == "P" and "transparency" in im.info):
            return np.asarray(im.convert("RGB"))
        rgba = np.asarray(im.convert("RGBA")).astype(np.float32) / 255.0
    # Transparent pixels take the training background, so the model need not learn a colour for them.
    rgb = rgba[..., :3] * rgba[..., 3:] + np.asarray(background, np.float32) * (1.0 - rgba[..., 3:])
    return np.round(rgb * 255.0).astype(np.uint8)
