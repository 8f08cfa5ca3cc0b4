"""The SfM pipeline on real photo sets from ../shared/datasets (skipped where absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from photosplat_colmap import pipeline
from photosplat_colmap.capture import photos_from_folder
from photosplat_testkit.poses import buddha_truth, pose_errors, poses_of
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from conftest import shared_dataset
from photosplat_testkit.reporting import RecordingReporter

pytestmark = pytest.mark.slow

# Reached on buddha (67 photos, 1368x770), see docs/benchmarks.md.
BUDDHA_MAX_MEDIAN_ROTATION_DEG = 0.5
BUDDHA_MAX_ROTATION_DEG = 1.0
_GPS_IFD = 0x8825


def test_buddha_registers_nearly_all_photos_with_true_poses(tmp_path: Path) -> None:
    root = shared_dataset("buddha")
    photos = photos_from_folder(root / "images")
    result = pipeline.run(photos, tmp_path / "work", tmp_path / "out", pipeline.SfmOptions(), RecordingReporter())

    assert result.registered_images >= 0.95 * len(photos)
    errors = pose_errors(poses_of(pycolmap.Reconstruction(str(result.sparse_dir))), buddha_truth(root))
    assert np.median(errors.rotation_deg) <= BUDDHA_MAX_MEDIAN_ROTATION_DEG, errors.summary()
    assert errors.rotation_deg.max() <= BUDDHA_MAX_ROTATION_DEG, errors.summary()


def test_lund_uses_the_exif_focal_length_and_leaks_no_gps(tmp_path: Path) -> None:
    root = shared_dataset("lund")
    photos = photos_from_folder(root / "images")
    assert any(Image.open(p.path).getexif().get_ifd(_GPS_IFD) for p in photos), "the originals do carry GPS"
    exif_focal = np.median([p.focal_length_px for p in photos if p.focal_length_px])
    result = pipeline.run(photos, tmp_path / "work", tmp_path / "out", pipeline.SfmOptions(), RecordingReporter())

    db = pycolmap.Database.open(str(tmp_path / "work" / "database.db"))
    cameras = db.read_all_cameras()
    db.close()
    assert len(cameras) == 1 and cameras[0].has_prior_focal_length
    assert cameras[0].focal_length == pytest.approx(exif_focal)  # 1024 px: no rescaling
    assert result.registered_images >= 0.95 * len(photos)
    for path in (tmp_path / "out").rglob("*.jpg"):
        exif = Image.open(path).getexif()
        assert not exif.get_ifd(_GPS_IFD) and _GPS_IFD not in exif, path
