"""Synthetic photo sets with known cameras, rendered by our own ray caster (numpy only).

A few textured boxes stand on a textured ground; pinhole cameras orbit the centre and look at it.
Textures are procedural (multi-scale value noise plus sharp-edged discs and bars), so SIFT finds
many distinctive features at every scale; they are sampled with mip-mapping so that what a pixel
sees is the same on every view (aliasing would make features that do not repeat between views).
Shading is Lambertian without shadows: a surface point looks the same from every camera.

Conventions are COLMAP's: world-to-camera poses ``[R|t]``, camera x right, y down, z forward,
pixel centres at ``+0.5`` (so ``K @ (R @ X + t)`` gives the pixel coordinates COLMAP stores).
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from photosplat_libs.transforms import OPENGL_FROM_OPENCV

# Texture resolutions and the world size they cover.
_GROUND_TEXELS = 1024
_GROUND_HALF_EXTENT = 6.0
_FACE_TEXELS = 256
_LIGHT = np.array([0.4, 0.3, 0.85]) / np.linalg.norm([0.4, 0.3, 0.85])
_AMBIENT = 0.35
_SKY_TOP, _SKY_HORIZON = np.array([0.45, 0.6, 0.85]), np.array([0.85, 0.88, 0.92])
_EXIF_MAKE, _EXIF_MODEL = "PhotoSplat", "Synthetic camera"


@dataclass
class SyntheticScene:
    images: list[np.ndarray]  # H x W x 3 uint8
    names: list[str]
    K: np.ndarray  # 3 x 3
    cams_from_world: list[np.ndarray]  # 3 x 4, COLMAP convention
    width: int
    height: int
    points: np.ndarray  # (M, 3) points on visible surfaces
    colors: np.ndarray  # (M, 3) uint8
    # Per view, (point index, pixel x, pixel y) of the points that view sees (COLMAP pixel convention).
    observations: list[np.ndarray] = field(default_factory=list)
    # Object scenes: per view, 255 where a surface was hit and 0 on the empty background.
    alphas: list[np.ndarray] | None = None

    @property
    def centers(self) -> np.ndarray:
        """Camera centres in world coordinates, (N, 3)."""
        return np.stack([-P[:, :3].T @ P[:, 3] for P in self.cams_from_world])

    @property
    def focal_35mm(self) -> int:
        """The 35 mm-equivalent focal length (as EXIF stores it, an integer)."""
        return round(self.K[0, 0] * 36.0 / max(self.width, self.height))


@dataclass
class _Box:
    center: np.ndarray  # (3,)
    half: np.ndarray  # (3,)
    rot: np.ndarray  # 3x3 local-to-world (a rotation about z)


@dataclass
class _World:
    boxes: list[_Box]
    # Mip pyramids: index 0 is the ground, then 6 per box (axis * 2 + positive side).
    textures: list[list[np.ndarray]]
    # Object scenes have no ground: the boxes float on an empty (transparent) background.
    ground: bool = True


def render_scene(
    n_views: int = 24,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    radius: float = 4.0,
    camera_height: float = 1.8,
    fov_degrees: float = 60.0,
    n_boxes: int = 5,
    n_points: int = 20_000,
    object_only: bool = False,
    processes: int = 1,
    arc_degrees: float = 360.0,
) -> SyntheticScene:
    """Render ``n_views`` images on an orbit of ``radius`` around the scene centre.

    The camera height oscillates a little around ``camera_height`` so the centres are not coplanar
    (a single circle is a weak configuration for self-calibration). With ``object_only`` the boxes
    float without ground or sky (``alphas`` marks the object) and the cameras are spread over the
    upper hemisphere of radius ``radius``, as in the NeRF-synthetic object scenes. ``arc_degrees``
    shortens the orbit to an arc walked in that many steps (a video's path).
    """
    rng = np.random.default_rng(seed)
    world = _make_world(rng, n_boxes)
    world.ground = not object_only
    f = width / 2.0 / math.tan(math.radians(fov_degrees) / 2.0)
    K = np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])
    target = np.array([0.0, 0.0, 0.4])
    phase = rng.uniform(0, 2 * math.pi)
    centers = [
        _hemisphere_camera(i, n_views, radius, phase)
        if object_only
        else _orbit_camera(i, n_views, radius, camera_height, phase, arc_degrees)
        for i in range(n_views)
    ]
    poses = [_look_at(center, target) for center in centers]
    render = partial(_render_view, world, K, width=width, height=height)
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            rendered = list(pool.map(render, poses))
    else:
        rendered = [render(pose) for pose in poses]
    images, depths = [r[0] for r in rendered], [r[1] for r in rendered]
    points, colors = _surface_points(world, rng, n_points, radius)
    alphas = [np.where(np.isfinite(d), 255, 0).astype(np.uint8) for d in depths] if object_only else None
    observations = [_visible(points, K, P, d) for P, d in zip(poses, depths, strict=True)]
    return SyntheticScene(
        images=images,
        names=[f"view_{i:03d}.jpg" for i in range(n_views)],
        K=K,
        cams_from_world=poses,
        width=width,
        height=height,
        points=points,
        colors=colors,
        observations=observations,
        alphas=alphas,
    )


def _orbit_camera(
    i: int, n: int, radius: float, height: float, phase: float, arc_degrees: float = 360.0
) -> np.ndarray:
    angle = phase + math.radians(arc_degrees) * i / n
    return np.array([radius * math.cos(angle), radius * math.sin(angle), height + 0.3 * math.sin(3 * angle)])


def _hemisphere_camera(i: int, n: int, radius: float, phase: float) -> np.ndarray:
    # A Fibonacci spiral over elevations 10-80 degrees: even coverage, never two views alike.
    elevation = math.radians(10.0 + 70.0 * (i + 0.5) / n)
    azimuth = phase + i * math.pi * (3.0 - math.sqrt(5.0))
    return radius * np.array([math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])


def write_images(scene: SyntheticScene, directory: Path, exif_focal: bool = True) -> list[Path]:
    """JPEG files named ``scene.names``; with ``exif_focal`` they carry make, model and the
    35 mm-equivalent focal length (as a phone would), so the focal-prior path is exercised."""
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pixels in zip(scene.names, scene.images, strict=True):
        exif = Image.Exif()
        if exif_focal:
            exif[0x010F] = _EXIF_MAKE
            exif[0x0110] = _EXIF_MODEL
            exif.get_ifd(0x8769)[0xA405] = scene.focal_35mm
        path = directory / name
        Image.fromarray(pixels).save(path, quality=95, exif=exif)
        paths.append(path)
    return paths


def write_colmap_dataset(scene: SyntheticScene, directory: Path) -> Path:
    """``directory/images/*.jpg`` and ``directory/sparse/{cameras,images,points3D}.bin`` with the
    true PINHOLE camera and poses and the surface points as 3D points (tracks from visibility):
    the layout the SfM stage hands to training."""
    import pycolmap

    directory = Path(directory)
    write_images(scene, directory / "images")
    rec = pycolmap.Reconstruction()
    fx, fy, cx, cy = scene.K[0, 0], scene.K[1, 1], scene.K[0, 2], scene.K[1, 2]
    camera = pycolmap.Camera(
        camera_id=1, model="PINHOLE", width=scene.width, height=scene.height, params=[fx, fy, cx, cy]
    )
    rec.add_camera_with_trivial_rig(camera)
    tracks: dict[int, list[tuple[int, int]]] = {}
    for image_id, (name, pose, obs) in enumerate(
        zip(scene.names, scene.cams_from_world, scene.observations, strict=True), start=1
    ):
        image = pycolmap.Image(name=name, keypoints=obs[:, 1:3].astype(np.float64), camera_id=1, image_id=image_id)
        rec.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pose.astype(np.float64)))
        for point2d_idx, point_idx in enumerate(obs[:, 0].astype(int)):
            tracks.setdefault(point_idx, []).append((image_id, point2d_idx))
    for point_idx, elements in sorted(tracks.items()):
        if len(elements) < 2:
            continue
        track = pycolmap.Track()
        for image_id, point2d_idx in elements:
            track.add_element(image_id, point2d_idx)
        rec.add_point3D(scene.points[point_idx].astype(np.float64), track, scene.colors[point_idx])
    sparse = directory / "sparse"
    sparse.mkdir(parents=True, exist_ok=True)
    rec.write_binary(str(sparse))
    return directory


# --- scene construction -------------------------------------------------------------------------


def _make_world(rng: np.random.Generator, n_boxes: int) -> _World:
    boxes: list[_Box] = []
    while len(boxes) < n_boxes:
        half = rng.uniform([0.2, 0.2, 0.2], [0.55, 0.55, 0.7])
        r = rng.uniform(0.0, 1.6)
        a = rng.uniform(0, 2 * math.pi)
        center = np.array([r * math.cos(a), r * math.sin(a), half[2]])
        # Boxes must not interpenetrate (a crude bounding-circle test is enough).
        if any(
            np.linalg.norm(center[:2] - b.center[:2]) < np.linalg.norm(half[:2]) + np.linalg.norm(b.half[:2])
            for b in boxes
        ):
            continue
        yaw = rng.uniform(0, math.pi)
        c, s = math.cos(yaw), math.sin(yaw)
        boxes.append(_Box(center, half, np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])))
    textures = [_mip_pyramid(_make_texture(rng, _GROUND_TEXELS, n_discs=2500, n_bars=400))]
    for _ in range(6 * n_boxes):
        textures.append(_mip_pyramid(_make_texture(rng, _FACE_TEXELS, n_discs=140, n_bars=25)))
    return _World(boxes, textures)


def _make_texture(rng: np.random.Generator, size: int, n_discs: int, n_bars: int) -> np.ndarray:
    """An RGB float texture in [0, 1]: coloured multi-scale noise with sharp discs and bars on top."""
    # A coarse colour tint plus luminance noise over many octaves (one channel: 3x cheaper).
    tint = rng.uniform(0.2, 0.8, 3) + 0.15 * _upsample(rng.uniform(-1, 1, (4, 4, 3)).astype(np.float32), size)
    noise = np.zeros((size, size, 1), np.float32)
    amplitude = 1.0
    cells = 8
    while cells <= size // 4:
        noise += amplitude * _upsample(rng.uniform(-1, 1, (cells, cells, 1)).astype(np.float32), size)
        amplitude *= 0.7
        cells *= 2
    tex = tint * (1 + 0.5 * noise / np.abs(noise).max())
    ys, xs = np.ogrid[0:size, 0:size]
    for _ in range(n_discs):
        r = size * rng.uniform(0.004, 0.04)
        cx, cy = rng.uniform(0, size, 2)
        x0, x1 = int(max(cx - r, 0)), int(min(cx + r + 1, size))
        y0, y1 = int(max(cy - r, 0)), int(min(cy + r + 1, size))
        inside = (xs[:, x0:x1] - cx) ** 2 + (ys[y0:y1] - cy) ** 2 <= r * r
        tex[y0:y1, x0:x1][inside] = rng.uniform(0, 1, 3)
    for _ in range(n_bars):
        w, h = size * rng.uniform(0.005, 0.06, 2)
        x0, y0 = rng.uniform(0, size, 2)
        tex[int(y0) : int(y0 + h) + 1, int(x0) : int(x0 + w) + 1] = rng.uniform(0, 1, 3)
    return np.clip(tex, 0, 1).astype(np.float32)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a (g, g, C) grid to (size, size, C)."""
    g = grid.shape[0]
    x = np.clip((np.arange(size) + 0.5) * g / size - 0.5, 0, g - 1)
    i0 = np.minimum(np.floor(x).astype(int), g - 2)
    w = (x - i0).astype(np.float32)[:, None]
    rows = grid[i0] * (1 - w[:, :, None]) + grid[i0 + 1] * w[:, :, None]
    return rows[:, i0] * (1 - w[None, :, :]) + rows[:, i0 + 1] * w[None, :, :]


def _mip_pyramid(tex: np.ndarray) -> list[np.ndarray]:
    levels = [tex]
    while levels[-1].shape[0] > 4:
        t = levels[-1]
        levels.append(0.25 * (t[0::2, 0::2] + t[1::2, 0::2] + t[0::2, 1::2] + t[1::2, 1::2]))
    return levels


def _look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera [R|t] of a camera at ``center`` looking at ``target``, world z up."""
    forward = (target - center) / np.linalg.norm(target - center)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return np.concatenate([R, (-R @ center)[:, None]], axis=1)


# --- rendering ----------------------------------------------------------------------------------


def _render_view(
    world: _World, K: np.ndarray, pose: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray]:
    """The image (uint8) and the per-pixel hit distance (inf for sky)."""
    R, t = pose[:, :3], pose[:, 3]
    origin = -R.T @ t
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
    dirs = _rows_times(rays_cam, R)  # rows: R.T @ d
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)

    dist, surface, uv, normal = _intersect(world, origin, dirs)
    color = np.empty((dirs.shape[0], 3), np.float32)
    sky = surface < 0
    color[sky] = _sky(dirs[sky]) if world.ground else 1.0
    hit = ~sky
    # The footprint of one pixel on the surface, in metres: grows with distance and obliquity.
    cos = np.maximum(np.abs(np.einsum("ij,ij->i", dirs[hit], normal[hit])), 0.25)
    footprint = dist[hit] / K[0, 0] / cos
    color[hit] = _shade(world, surface[hit], uv[hit], footprint, normal[hit])
    image = (np.clip(color, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    return image, dist.reshape(height, width)


def _intersect(world: _World, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nearest hit per ray: distance, surface index (-1 = none), uv in [0,1]^2 and world normal."""
    n = dirs.shape[0]
    dist = np.full(n, np.inf)
    surface = np.full(n, -1, np.int64)
    uv = np.zeros((n, 2))
    normal = np.zeros((n, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = -origin[2] / dirs[:, 2]
    p = origin + t_ground[:, None] * dirs
    on_ground = world.ground & (t_ground > 1e-6) & (np.abs(p[:, 0]) < _GROUND_HALF_EXTENT) & (np.abs(p[:, 1]) < _GROUND_HALF_EXTENT)
    dist[on_ground] = t_ground[on_ground]
    surface[on_ground] = 0
    uv[on_ground] = (p[on_ground, :2] + _GROUND_HALF_EXTENT) / (2 * _GROUND_HALF_EXTENT)
    normal[on_ground] = [0.0, 0.0, 1.0]

    for b, box in enumerate(world.boxes):
        o = box.rot.T @ (origin - box.center)
        d = _rows_times(dirs, box.rot)  # rows: rot.T @ dir
        d = np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (-box.half - o) / d, (box.half - o) / d
        t_near, t_far = np.minimum(t1, t2), np.maximum(t1, t2)
        t_in = np.maximum(np.maximum(t_near[:, 0], t_near[:, 1]), t_near[:, 2])
        t_out = np.minimum(np.minimum(t_far[:, 0], t_far[:, 1]), t_far[:, 2])
        closer = (t_in <= t_out) & (t_in > 1e-6) & (t_in < dist)
        if not closer.any():
            continue
        axis = t_near[closer].argmax(axis=1)
        positive = (d[closer, axis] < 0).astype(np.int64)
        local = o + t_in[closer, None] * d[closer]
        # uv: the two other local coordinates, scaled from [-half, half] to [0, 1].
        others = np.array([[1, 2], [0, 2], [0, 1]])[axis]
        rows = np.arange(len(axis))[:, None]
        uv[closer] = (local[rows, others] / box.half[others] + 1) / 2
        local_normal = np.zeros((len(axis), 3))
        local_normal[np.arange(len(axis)), axis] = np.where(positive == 1, 1.0, -1.0)
        normal[closer] = _rows_times(local_normal, box.rot.T)
        dist[closer] = t_in[closer]
        surface[closer] = 1 + 6 * b + 2 * axis + positive
    return dist, surface, np.clip(uv, 0, 1), normal


def _texels_per_metre(world: _World, surface: int) -> float:
    if surface == 0:
        return _GROUND_TEXELS / (2 * _GROUND_HALF_EXTENT)
    box = world.boxes[(surface - 1) // 6]
    axis = ((surface - 1) % 6) // 2
    others = [a for a in range(3) if a != axis]
    return _FACE_TEXELS / (2 * float(box.half[others].max()))


def _shade(world: _World, surface: np.ndarray, uv: np.ndarray, footprint: np.ndarray, normal: np.ndarray) -> np.ndarray:
    color = np.empty((len(surface), 3), np.float32)
    for s in np.unique(surface):
        rows = surface == s
        level = np.log2(np.maximum(footprint[rows] * _texels_per_metre(world, int(s)), 1.0))
        color[rows] = _sample_mip(world.textures[int(s)], uv[rows], level)
    light = _AMBIENT + (1 - _AMBIENT) * np.clip(np.einsum("ij,j->i", normal, _LIGHT), 0, 1)
    return color * light[:, None].astype(np.float32)


def _sample_mip(pyramid: list[np.ndarray], uv: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Trilinear sample (bilinear within two neighbouring mip levels, blended)."""
    level = np.clip(level, 0, len(pyramid) - 1)
    l0 = np.minimum(np.floor(level).astype(int), len(pyramid) - 2)
    frac = (level - l0)[:, None]
    out = np.empty((len(uv), 3), np.float32)
    for lv in np.unique(l0):
        rows = l0 == lv
        a = _sample_bilinear(pyramid[lv], uv[rows])
        b = _sample_bilinear(pyramid[lv + 1], uv[rows])
        out[rows] = a * (1 - frac[rows]) + b * frac[rows]
    return out


def _sample_bilinear(tex: np.ndarray, uv: np.ndarray) -> np.ndarray:
    size = tex.shape[0]
    x = np.clip(uv[:, 0] * size - 0.5, 0, size - 1)
    y = np.clip(uv[:, 1] * size - 0.5, 0, size - 1)
    x0, y0 = np.minimum(x.astype(int), size - 2), np.minimum(y.astype(int), size - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = tex[y0, x0] * (1 - fx) + tex[y0, x0 + 1] * fx
    bottom = tex[y0 + 1, x0] * (1 - fx) + tex[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _rows_times(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` for many short rows: einsum is ~20x faster than BLAS for (N,3)@(3,3)."""
    return np.einsum("ij,jk->ik", rows, matrix)


def _sky(dirs: np.ndarray) -> np.ndarray:
    up = np.clip(dirs[:, 2:3], 0, 1)
    return (_SKY_HORIZON * (1 - up) + _SKY_TOP * up).astype(np.float32)


# --- 3D points ----------------------------------------------------------------------------------


def _surface_points(world: _World, rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Random points on the ground inside the orbit and on the boxes' visible faces, with colours."""
    faces = [
        (1 + 6 * b + 2 * axis + positive, b, axis, positive)
        for b in range(len(world.boxes))
        for axis in range(3)
        for positive in (0, 1)
        if not (axis == 2 and positive == 0)
    ]
    areas = []
    for _, b, axis, _ in faces:
        h = world.boxes[b].half
        areas.append(4 * np.prod([h[a] for a in range(3) if a != axis]))
    ground_area = math.pi * radius**2
    # Boxes get more points per area than the ground: they are what the cameras look at.
    weights = np.array([ground_area] + [4 * a for a in areas])
    if not world.ground:
        weights[0] = 0.0
    counts = rng.multinomial(n, weights / weights.sum())
    points, colors = [], []
    r = radius * np.sqrt(rng.uniform(0, 1, counts[0]))
    a = rng.uniform(0, 2 * math.pi, counts[0])
    ground = np.stack([r * np.cos(a), r * np.sin(a), np.zeros_like(r)], axis=1)
    inside_box = np.zeros(len(ground), bool)
    for box in world.boxes:
        local = _rows_times(ground - box.center, box.rot)
        inside_box |= np.all(np.abs(local[:, :2]) < box.half[:2], axis=1)
    ground = ground[~inside_box]
    uv = (ground[:, :2] + _GROUND_HALF_EXTENT) / (2 * _GROUND_HALF_EXTENT)
    points.append(ground)
    colors.append(
        _shade(
            world,
            np.zeros(len(ground), np.int64),
            uv,
            np.zeros(len(ground)),
            np.tile([0.0, 0.0, 1.0], (len(ground), 1)),
        )
    )
    for (surface, b, axis, positive), count in zip(faces, counts[1:], strict=True):
        box = world.boxes[b]
        others = [x for x in range(3) if x != axis]
        face_uv = rng.uniform(0, 1, (count, 2))
        local = np.zeros((count, 3))
        local[:, others] = (face_uv * 2 - 1) * box.half[others]
        local[:, axis] = box.half[axis] * (1 if positive else -1)
        local_normal = np.zeros(3)
        local_normal[axis] = 1 if positive else -1
        points.append(_rows_times(local, box.rot.T) + box.center)
        normal = np.tile(box.rot @ local_normal, (count, 1))
        colors.append(_shade(world, np.full(count, surface), face_uv, np.zeros(count), normal))
    pts = np.concatenate(points)
    cols = (np.clip(np.concatenate(colors), 0, 1) * 255 + 0.5).astype(np.uint8)
    return pts, cols


def _visible(points: np.ndarray, K: np.ndarray, pose: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """(point index, x, y) of the points this view sees: in the image and not occluded."""
    cam = _rows_times(points, pose[:, :3].T) + pose[:, 3]
    z = cam[:, 2]
    front = z > 1e-6
    pix = _rows_times(cam[front] / z[front, None], K.T)
    h, w = depth.shape
    idx = np.nonzero(front)[0]
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < w) & (pix[:, 1] >= 0) & (pix[:, 1] < h)
    idx, pix = idx[inside], pix[inside]
    dist = np.linalg.norm(cam[idx], axis=1)
    seen = depth[pix[:, 1].astype(int), pix[:, 0].astype(int)]
    unoccluded = np.abs(dist - seen) < 0.01 * dist + 0.02
    return np.column_stack([idx[unoccluded], pix[unoccluded, 0], pix[unoccluded, 1]])


def transforms_frames(scene: SyntheticScene, file_paths: list[str]) -> list[dict]:
    """NeRF-style frames (``file_path``, OpenGL camera-to-world ``transform_matrix``) of the views."""
    frames = []
    for file_path, cam_from_world in zip(file_paths, scene.cams_from_world, strict=True):
        w2c = np.eye(4)
        w2c[:3] = cam_from_world
        frames.append({"file_path": file_path, "transform_matrix": (np.linalg.inv(w2c) @ OPENGL_FROM_OPENCV).tolist()})
    return frames



def known_poses_upload(scene: SyntheticScene) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The multipart fields of a job whose cameras are known: the views as JPEG ``files`` and a
    NeRF-style ``poses`` transforms.json naming them."""
    import io

    from PIL import Image

    files = []
    for i, pixels in enumerate(scene.images):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=95)
        files.append(("files", (f"frame_{i:03d}.jpg", out.getvalue(), "image/jpeg")))
    frames = transforms_frames(scene, [f"images/frame_{i:03d}" for i in range(len(scene.images))])
    poses = json.dumps({"fl_x": float(scene.K[0, 0]), "fl_y": float(scene.K[1, 1]), "frames": frames}).encode()
    return [*files, ("poses", ("transforms.json", poses, "application/json"))]

def write_blender_dataset(
    scene: SyntheticScene, folder: Path, test_every: int = 4, transparent_border: int = 0
) -> tuple[list[str], list[str]]:
    """The scene in NeRF-synthetic layout: ``{train,test}/r_i.png`` (RGBA; a transparent frame of
    ``transparent_border`` px) and ``transforms_{train,test}.json`` with OpenGL camera-to-world
    matrices. Returns the train and test image names as the transforms files name them."""
    from PIL import Image

    splits: dict[str, list[dict]] = {"train": [], "test": []}
    names: dict[str, list[str]] = {"train": [], "test": []}
    paths = [f"./{'test' if i % test_every == 0 else 'train'}/r_{i}" for i in range(len(scene.images))]
    for i, (image, frame) in enumerate(zip(scene.images, transforms_frames(scene, paths), strict=True)):
        split = "test" if i % test_every == 0 else "train"
        (folder / split).mkdir(parents=True, exist_ok=True)
        alpha = scene.alphas[i] if scene.alphas is not None else np.full(image.shape[:2], 255, np.uint8)
        rgba = np.dstack([image, alpha])
        if transparent_border:
            b = transparent_border
            rgba[:b, :, 3] = rgba[-b:, :, 3] = rgba[:, :b, 3] = rgba[:, -b:, 3] = 0
        Image.fromarray(rgba, "RGBA").save(folder / split / f"r_{i}.png")
        splits[split].append(frame)
        names[split].append(frame["file_path"] + ".png")
    angle_x = 2 * math.atan(scene.width / (2 * scene.K[0, 0]))
    for split, frames in splits.items():
        (folder / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": angle_x, "frames": frames}))
    return names["train"], names["test"]
