"""Jobs that bring their own cameras (a COLMAP model, text or binary, or a NeRF-style
``transforms.json``) skip SfM: the poses are read, scaled to the working resolution and
undistorted to the same PINHOLE layout that SfM produces.

The CLI takes them with ``--poses`` (or such a file inside the images folder); a service job takes
the poses uploaded with the photos (``poses`` of ``POST /recon/jobs`` or ``POST /recon/uploads``),
checked by ingest and carried as ``ImagesValidated.poses_key``: the key of a ``transforms.json``, or
(ending in ``/``) the folder of a COLMAP text model that ingest rewrote from the checked values.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pycolmap
from photosplat_libs.transforms import frame_camera
from photosplat_libs.errors import UserError
from photosplat_libs.store import ObjectStore

from photosplat_colmap import outputs
from photosplat_colmap.capture import Photo, prepare
from photosplat_colmap.types import Reporter, SfmOptions, SfmResult

_MODEL_FILES = ("cameras.bin", "cameras.txt")
# What ingest stores of an uploaded COLMAP text model (every file, points3D.txt empty if none came).
_STORED_MODEL = ("cameras.txt", "images.txt", "points3D.txt")


async def fetch(store: ObjectStore, poses_key: str, folder: Path) -> Path:
    """Download a job's poses into ``folder``: the path to :func:`run` them from."""
    folder.mkdir(parents=True, exist_ok=True)
    if not poses_key.endswith("/"):
        path = folder / "transforms.json"
        await store.get_file(poses_key, str(path))
        return path
    for name in _STORED_MODEL:
        await store.get_file(poses_key + name, str(folder / name))
    return folder


def find(images_dir: Path) -> Path | None:
    """A poses file or model shipped inside the images folder, if any."""
    for candidate in (images_dir / "transforms.json", images_dir / "sparse" / "0", images_dir / "sparse", images_dir):
        if candidate.name == "transforms.json" and candidate.is_file():
            return candidate
        if candidate.is_dir() and any((candidate / f).is_file() for f in _MODEL_FILES):
            return candidate
    return None


def load(
    poses: Path, image_sizes: dict[str, tuple[int, int]], aliases: dict[str, str] | None = None
) -> pycolmap.Reconstruction:
    """The cameras and poses of ``poses``, with image names reduced to the names of ``image_sizes``.
    Frames are matched by file stem, or through ``aliases`` (stem of the user's file name -> local
    copy such as ``0007.jpg``) when the photos were renamed."""
    by_stem = aliases or {Path(name).stem: name for name in image_sizes}
    if poses.is_file() and poses.suffix == ".json":
        return _from_transforms(json.loads(poses.read_text()), image_sizes, by_stem)
    model = pycolmap.Reconstruction(str(poses))
    for image in model.images.values():
        image.name = by_stem.get(Path(image.name).stem, Path(image.name).name)
    _fit_cameras(model, image_sizes)
    return model


def _fit_cameras(model: pycolmap.Reconstruction, image_sizes: dict[str, tuple[int, int]]) -> None:
    """Each camera at the size of the photos it took: a model may be of the full-size originals of
    smaller photos (ingest checked that the shapes agree and that one camera has one size)."""
    for image in model.images.values():
        size = image_sizes.get(image.name)
        camera = model.cameras[image.camera_id]
        if size is not None and (camera.width, camera.height) != size:
            camera.rescale(*size)


def _from_transforms(
    data: dict, image_sizes: dict[str, tuple[int, int]], by_stem: dict[str, str]
) -> pycolmap.Reconstruction:
    model = pycolmap.Reconstruction()
    for image_id, frame in enumerate(data["frames"], start=1):
        name = by_stem.get(Path(frame["file_path"]).stem)
        if name is None:
            continue
        width, height = image_sizes[name]
        K, cam_from_world = frame_camera(data, frame, width, height)
        camera = pycolmap.Camera(
            camera_id=image_id,
            model="PINHOLE",
            width=width,
            height=height,
            params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
        )
        model.add_camera_with_trivial_rig(camera)
        image = pycolmap.Image(name=name, camera_id=image_id, image_id=image_id)
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam_from_world))
    return model


def run(
    poses: Path, photos: list[Photo], work_dir: Path, out_dir: Path, options: SfmOptions, reporter: Reporter
) -> SfmResult:
    from PIL import Image

    t = time.monotonic()
    sizes = {}
    for photo in photos:
        with Image.open(photo.path) as image:
            sizes[photo.name] = image.size
    model = load(poses, sizes, {Path(p.original_name).stem: p.name for p in photos if p.original_name})
    source = poses.name if poses.is_file() else "the COLMAP model"
    if model.num_reg_images() < 3:
        raise UserError(f"the poses in {source} match only {model.num_reg_images()} of the photos")
    images_dir = work_dir / "images"
    posed = {i.name for i in model.images.values()}
    capture = prepare([p for p in photos if p.name in posed], images_dir, options.max_image_side)
    scale = {p.photo.name: p.scale for p in capture.kept}
    for camera_id, camera in model.cameras.items():
        names = [i.name for i in model.images.values() if i.camera_id == camera_id]
        if names and scale[names[0]] != 1.0:
            camera.rescale(scale[names[0]])
    sparse_dir = out_dir / "sparse"
    sparse_dir.mkdir(parents=True, exist_ok=True)
    model.write_binary(str(sparse_dir))
    undistorted = out_dir / "undistorted"
    pycolmap.undistort_images(str(undistorted), str(sparse_dir), str(images_dir), output_type="COLMAP")
    outputs.tidy_undistorted(undistorted)
    seconds = time.monotonic() - t
    reporter.log(f"known poses from {source}: {model.num_reg_images()} cameras, SfM skipped ({seconds:.1f} s)")
    reporter.progress(1.0)
    return SfmResult(
        sparse_dir=sparse_dir,
        undistorted_dir=undistorted,
        registered_images=model.num_reg_images(),
        total_images=len(photos),
        points=model.num_points3D(),
        reprojection_error=float(model.compute_mean_reprojection_error()) if model.num_points3D() else 0.0,
        mean_track_length=float(model.compute_mean_track_length()) if model.num_points3D() else 0.0,
        timings={"known_poses": seconds},
        warnings=capture.warnings()
        + ([] if model.num_points3D() else ["no 3D points came with the poses"]),
        matcher="none",
        mapper="known poses",
    )
