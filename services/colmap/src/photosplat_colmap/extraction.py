"""Feature extraction: the photos imported into COLMAP's database with their cameras and EXIF focal
priors, then SIFT features extracted in chunks that report progress."""

from __future__ import annotations

from pathlib import Path

import pycolmap

from photosplat_colmap.capture import CaptureReport, Prepared
from photosplat_colmap import devices
from photosplat_colmap.progress import SfmProgress, chunk_size
from photosplat_colmap.types import SfmOptions

SMALL_IMAGE_SIDE = 1280
# Extraction runs in chunks only to report progress; every call has a fixed cost (threads, the
# database, with CUDA its GPU contexts), so a chunk is never smaller than this per thread.
EXTRACTION_MIN_IMAGES_PER_THREAD = 8


def extract(
    capture: CaptureReport, images_dir: Path, database: Path, options: SfmOptions, progress: SfmProgress
) -> None:
    kept = capture.kept
    names = [p.photo.name for p in kept]
    pycolmap.Database.open(str(database)).close()
    # Images are imported first so that cameras and focal priors are set before extraction;
    # extraction then reuses them and runs in chunks to report n/N. Always one camera per photo
    # here: pycolmap 4.2 verifies the pairs of photos that share one camera nearly serially
    # (buddha's 67 photos: 5.2 s against 0.6 s with CUDA matching on 16 cores); photos from one
    # device are given one shared camera after matching (cameras.share_one_camera), before mapping.
    pycolmap.import_images(str(database), str(images_dir), pycolmap.CameraMode.PER_IMAGE, names)
    set_focal_priors(database, kept)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = options.num_threads
    extraction.sift.max_num_features = options.max_num_features
    # SIFT's upsampled first octave finds small features in small images (lund's 1024 px street
    # fragments without it); at 1600 px it mostly costs time (4x the pixels).
    small = max(max(p.width, p.height) for p in kept) < SMALL_IMAGE_SIDE
    upsample = small if options.upsample_small_images is None else options.upsample_small_images
    extraction.sift.first_octave = -1 if upsample else 0
    # Chunks for the progress bar, but each call costs a start (GPU contexts with CUDA) and idles
    # threads at its tail: only large sets are split, into at most ten calls.
    chunk = chunk_size(len(names), EXTRACTION_MIN_IMAGES_PER_THREAD * options.num_threads)
    device = devices.sift_device(options)
    for start in range(0, len(names), chunk):
        progress.step("extraction", start / len(names), extracted=start, images=len(names))
        pycolmap.extract_features(
            str(database), str(images_dir), image_names=names[start : start + chunk], extraction_options=extraction,
            device=device,
        )
    progress.step("extraction", 1.0, extracted=len(names), images=len(names))


def set_focal_priors(database: Path, kept: list[Prepared]) -> None:
    """EXIF focal lengths (scaled to the working copies) as initial focal lengths with prior."""
    by_name = {p.photo.name: p for p in kept}
    db = pycolmap.Database.open(str(database))
    try:
        focal_by_camera: dict[int, list[float]] = {}
        for image in db.read_all_images():
            p = by_name[image.name]
            if p.photo.focal_length_px:
                focal_by_camera.setdefault(image.camera_id, []).append(p.photo.focal_length_px * p.scale)
        for camera in db.read_all_cameras():
            focals = focal_by_camera.get(camera.camera_id)
            if not focals:
                continue
            params = camera.params
            params[0] = sorted(focals)[len(focals) // 2]  # SIMPLE_RADIAL: f, cx, cy, k
            camera.params = params
            camera.has_prior_focal_length = True
            db.update_camera(camera)
    finally:
        db.close()


def num_keypoints(database: Path) -> int:
    db = pycolmap.Database.open(str(database))
    try:
        return int(db.num_keypoints())
    finally:
        db.close()
