"""The SfM pipeline on local folders: photos in, a sparse model and an undistorted PINHOLE dataset
out. The service wraps it with store download/upload; the CLI runs it as is.

This module runs the steps in order; each lives in its own module (:mod:`.extraction`,
:mod:`.matching`, :mod:`.fallbacks` around :mod:`.mapping`), the options and result in :mod:`.types`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pycolmap
from photosplat_libs.errors import UserError

from photosplat_colmap import devices, outputs
from photosplat_colmap.capture import CaptureReport, Photo, prepare, usable_cpus
from photosplat_colmap.cameras import share_one_camera
from photosplat_colmap.extraction import extract, num_keypoints
from photosplat_colmap.fallbacks import fail_if_poor, map_with_fallbacks
from photosplat_colmap.mapping import Attempt
from photosplat_colmap.matching import choose_matcher, match, num_verified_pairs
from photosplat_colmap.progress import SfmProgress
from photosplat_colmap.types import DEFAULT_MAX_SIDE, Reporter, SfmOptions, SfmResult

__all__ = ["DEFAULT_MAX_SIDE", "Reporter", "SfmOptions", "SfmResult", "run"]


def run(photos: list[Photo], work_dir: Path, out_dir: Path, options: SfmOptions, reporter: Reporter) -> SfmResult:
    """Capture check, extraction, matching, mapping (with fallbacks), undistortion.

    Raises :class:`UserError` with advice when the photos cannot give a usable model.
    """
    if len(photos) < 3:
        raise UserError(f"{len(photos)} photo(s) is not enough: take at least 3, better 20 or more, around the subject")
    # COLMAP's own INFO/WARNING lines (per image, per BA iteration) would drown the job's log.
    pycolmap.logging.minloglevel = max(pycolmap.logging.minloglevel, 2)
    if options.num_threads <= 0:
        options = dataclasses.replace(options, num_threads=usable_cpus())
    steps = _Steps(work_dir, options, reporter)
    capture = steps.capture(photos)
    steps.extract(capture)
    matcher, names = steps.match(capture)
    best, attempts = steps.map(matcher, names)
    fail_if_poor(best, len(photos), len(capture.blurry_removed))
    assert best is not None and best.model is not None
    model = best.model
    sparse_dir, undistorted = steps.undistort(model, out_dir)
    result = SfmResult(
        sparse_dir=sparse_dir,
        undistorted_dir=undistorted,
        registered_images=model.num_reg_images(),
        total_images=len(photos),
        points=model.num_points3D(),
        reprojection_error=float(model.compute_mean_reprojection_error()),
        mean_track_length=float(model.compute_mean_track_length()) if model.num_points3D() else 0.0,
        timings=steps.timings,
        blurry_removed=len(capture.blurry_removed),
        warnings=capture.warnings(),
        matcher=matcher,
        mapper=best.mapper,
        attempts=[a.describe() for a in attempts],
    )
    reporter.log(
        f"done: {result.registered_images}/{result.total_images} photos placed, {result.points} points, "
        f"reprojection error {result.reprojection_error:.2f} px, total {sum(steps.timings.values()):.1f} s"
    )
    return result


class _Steps:
    """The steps of one run, each timed into ``timings``, logged and weighted into the progress."""

    def __init__(self, work_dir: Path, options: SfmOptions, reporter: Reporter) -> None:
        self.work_dir, self.options, self.reporter = work_dir, options, reporter
        self.images_dir, self.database = work_dir / "images", work_dir / "database.db"
        self.progress = SfmProgress(reporter)
        self.timings: dict[str, float] = {}

    def capture(self, photos: list[Photo]) -> CaptureReport:
        t = time.monotonic()
        capture = prepare(photos, self.images_dir, self.options.max_image_side)
        self.timings["capture"] = time.monotonic() - t
        self.reporter.log(
            f"capture check: {len(capture.kept)} of {len(photos)} photos kept in {self.timings['capture']:.1f} s",
            *capture.warnings(),
        )
        self.progress.finish("capture")
        return capture

    def extract(self, capture: CaptureReport) -> None:
        t = time.monotonic()
        extract(capture, self.images_dir, self.database, self.options, self.progress)
        self.timings["extraction"] = time.monotonic() - t
        self.reporter.log(
            f"feature extraction: {num_keypoints(self.database)} features in {self.timings['extraction']:.1f} s",
            devices.describe(self.options),
        )
        self.progress.finish("extraction")

    def match(self, capture: CaptureReport) -> tuple[str, list[str]]:
        """The matcher used and the names of the photos it matched."""
        t = time.monotonic()
        matcher, why = choose_matcher(capture.kept, self.options)
        self.reporter.log(f"matching: {matcher} ({why})")
        names = [p.photo.name for p in capture.kept]
        match(self.database, matcher, self.options, names, self.progress)
        share_one_camera(self.database, capture.kept)
        pairs = num_verified_pairs(self.database)
        self.timings["matching"] = time.monotonic() - t
        self.reporter.log(f"matching: {pairs} verified image pairs in {self.timings['matching']:.1f} s")
        self.progress.step("matching", 1.0, pairs=pairs)
        self.progress.finish("matching")
        if pairs == 0:
            raise UserError(
                "none of the photos could be matched with another: they do not show a common scene (or too "
                "little texture). Photograph one subject from many positions with ~70 % overlap between neighbours"
            )
        return matcher, names

    def map(self, matcher: str, names: list[str]) -> tuple[Attempt | None, list[Attempt]]:
        t = time.monotonic()
        best, attempts = map_with_fallbacks(
            self.database, self.images_dir, self.work_dir, matcher, names, self.options, self.progress, self.reporter
        )
        self.timings["mapping"] = time.monotonic() - t
        self.progress.finish("mapping")
        return best, attempts

    def undistort(self, model: pycolmap.Reconstruction, out_dir: Path) -> tuple[Path, Path]:
        """Writes the raw model and the PINHOLE dataset; returns their folders (sparse, undistorted)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        sparse_dir = out_dir / "sparse"
        sparse_dir.mkdir(exist_ok=True)
        model.write_binary(str(sparse_dir))
        t = time.monotonic()
        undistorted = out_dir / "undistorted"
        pycolmap.undistort_images(
            str(undistorted), str(sparse_dir), str(self.images_dir), output_type="COLMAP",
            num_threads=self.options.num_threads,
        )
        outputs.tidy_undistorted(undistorted)
        self.timings["undistortion"] = time.monotonic() - t
        self.progress.step("undistortion", 1.0)
        return sparse_dir, undistorted
