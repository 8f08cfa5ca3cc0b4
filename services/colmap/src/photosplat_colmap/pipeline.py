"""The SfM pipeline on local folders: photos in, a sparse model and an undistorted PINHOLE dataset
out. The service wraps it with store download/upload; the CLI runs it as is."""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import pycolmap
from photosplat_libs.errors import UserError

from photosplat_colmap import mapping, outputs
from photosplat_colmap.capture import CaptureReport, Photo, Prepared, prepare, usable_cpus
from photosplat_colmap.mapping import Attempt

DEFAULT_MAX_SIDE = 1600
# Exhaustive matching is the most robust choice and still cheap up to about this many images.
EXHAUSTIVE_MAX_IMAGES = 100
# Beyond this, a failed sequential/retrieval matching is not retried exhaustively (hours on CPU).
EXHAUSTIVE_FALLBACK_MAX_IMAGES = 400
SEQUENTIAL_OVERLAP = 15
SMALL_IMAGE_SIDE = 1280
# Extraction and matching run in chunks only to report progress; every call has a fixed cost
# (threads, the database, with CUDA its GPU contexts), so a chunk is never smaller than these.
EXTRACTION_MIN_IMAGES_PER_THREAD = 8
MATCHING_MIN_PAIRS_PER_CALL = 1000
# Progress shares of the steps (extraction and matching dominate on CPU).
_SHARES = {"capture": 0.05, "extraction": 0.30, "matching": 0.30, "mapping": 0.30, "undistortion": 0.05}

Matcher = Literal["auto", "exhaustive", "sequential", "vocabtree"]
Mapper = Literal["incremental", "global"]


class Reporter(Protocol):
    """What the pipeline tells its caller; :class:`photosplat_libs.worker.JobContext` is one."""

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None: ...

    def log(self, *lines: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass(frozen=True)
class SfmOptions:
    # Longer side of the working images; None keeps the original resolution.
    max_image_side: int | None = DEFAULT_MAX_SIDE
    matcher: Matcher = "auto"
    mapper: Mapper = "incremental"
    # A COLMAP vocabulary tree file; retrieval matching is only possible with one (no download).
    vocab_tree: Path | None = None
    # -1: every CPU this process may use.
    num_threads: int = -1
    # SIFT keypoints per image (COLMAP keeps up to two orientations each), with or without CUDA:
    # matching grows with the square of the count and mapping with the points it yields, and
    # 4096 still gives hundreds of inliers per overlapping pair at 1600 px.
    max_num_features: int = 4096


@dataclass
class SfmResult:
    sparse_dir: Path  # the raw model (binary COLMAP, at working resolution)
    undistorted_dir: Path  # images/ + sparse/ with PINHOLE cameras: what training reads
    registered_images: int
    total_images: int
    points: int
    reprojection_error: float
    mean_track_length: float
    timings: dict[str, float] = field(default_factory=dict)
    blurry_removed: int = 0
    warnings: list[str] = field(default_factory=list)
    matcher: str = ""
    mapper: str = ""
    attempts: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return {
            "mean_track_length": round(self.mean_track_length, 3),
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "blurry_removed": self.blurry_removed,
            "warnings": self.warnings,
            "matcher": self.matcher,
            "mapper": self.mapper,
            "attempts": self.attempts,
        }


class _Progress:
    """Maps each step's own 0..1 onto the whole stage and estimates the time left."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.start = time.monotonic()
        self.done = 0.0

    def step(self, name: str, fraction: float, **metrics: float) -> None:
        self.reporter.check_cancelled()
        overall = self.done + _SHARES[name] * min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - self.start
        eta = elapsed * (1 - overall) / overall if overall > 0.05 else None
        self.reporter.progress(overall, eta, **metrics)

    def finish(self, name: str) -> None:
        self.done += _SHARES[name]


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
    progress = _Progress(reporter)
    timings: dict[str, float] = {}
    images_dir, database = work_dir / "images", work_dir / "database.db"

    t = time.monotonic()
    capture = prepare(photos, images_dir, options.max_image_side)
    timings["capture"] = time.monotonic() - t
    warnings = capture.warnings()
    reporter.log(
        f"capture check: {len(capture.kept)} of {len(photos)} photos kept in {timings['capture']:.1f} s", *warnings
    )
    progress.finish("capture")

    t = time.monotonic()
    _extract(capture, images_dir, database, options, progress)
    timings["extraction"] = time.monotonic() - t
    reporter.log(f"feature extraction: {_num_keypoints(database)} features in {timings['extraction']:.1f} s")
    progress.finish("extraction")

    t = time.monotonic()
    matcher, why = choose_matcher(capture.kept, options)
    reporter.log(f"matching: {matcher} ({why})")
    names = [p.photo.name for p in capture.kept]
    _match(database, matcher, options, names, progress)
    pairs = _num_verified_pairs(database)
    timings["matching"] = time.monotonic() - t
    reporter.log(f"matching: {pairs} verified image pairs in {timings['matching']:.1f} s")
    progress.step("matching", 1.0, pairs=pairs)
    progress.finish("matching")
    if pairs == 0:
        raise UserError(
            "none of the photos could be matched with another: they do not show a common scene "
            "(or too little texture). Photograph one subject from many positions with ~70 % overlap between neighbours"
        )

    t = time.monotonic()
    best, attempts = _map_with_fallbacks(database, images_dir, work_dir, matcher, names, options, progress, reporter)
    timings["mapping"] = time.monotonic() - t
    progress.finish("mapping")
    _fail_if_poor(best, len(photos), len(capture.blurry_removed))
    assert best is not None and best.model is not None

    out_dir.mkdir(parents=True, exist_ok=True)
    sparse_dir = out_dir / "sparse"
    sparse_dir.mkdir(exist_ok=True)
    best.model.write_binary(str(sparse_dir))
    t = time.monotonic()
    undistorted = out_dir / "undistorted"
    pycolmap.undistort_images(
        str(undistorted), str(sparse_dir), str(images_dir), output_type="COLMAP", num_threads=options.num_threads
    )
    outputs.tidy_undistorted(undistorted)
    timings["undistortion"] = time.monotonic() - t
    progress.step("undistortion", 1.0)
    model = best.model
    result = SfmResult(
        sparse_dir=sparse_dir,
        undistorted_dir=undistorted,
        registered_images=model.num_reg_images(),
        total_images=len(photos),
        points=model.num_points3D(),
        reprojection_error=float(model.compute_mean_reprojection_error()),
        mean_track_length=float(model.compute_mean_track_length()) if model.num_points3D() else 0.0,
        timings=timings,
        blurry_removed=len(capture.blurry_removed),
        warnings=warnings,
        matcher=matcher,
        mapper=best.mapper,
        attempts=[a.describe() for a in attempts],
    )
    reporter.log(
        f"done: {result.registered_images}/{result.total_images} photos placed, {result.points} points, "
        f"reprojection error {result.reprojection_error:.2f} px, total {sum(timings.values()):.1f} s"
    )
    return result


# --- extraction ---------------------------------------------------------------------------------


def _extract(
    capture: CaptureReport, images_dir: Path, database: Path, options: SfmOptions, progress: _Progress
) -> None:
    kept = capture.kept
    names = [p.photo.name for p in kept]
    pycolmap.Database.open(str(database)).close()
    # Images are imported first so that cameras (shared or not) and focal priors are set before
    # extraction; extraction then reuses them and runs in chunks to report n/N.
    pycolmap.import_images(str(database), str(images_dir), _camera_mode(kept), names)
    _set_focal_priors(database, kept)
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = options.num_threads
    extraction.sift.max_num_features = options.max_num_features
    # SIFT's upsampled first octave finds small features in small images (lund's 1024 px street
    # fragments without it); at 1600 px it mostly costs time (4x the pixels).
    extraction.sift.first_octave = -1 if max(max(p.width, p.height) for p in kept) < SMALL_IMAGE_SIDE else 0
    extraction.use_gpu = pycolmap.has_cuda
    # Chunks for the progress bar, but each call costs a start (GPU contexts with CUDA) and idles
    # threads at its tail: only large sets are split, into at most ten calls.
    chunk = chunk_size(len(names), EXTRACTION_MIN_IMAGES_PER_THREAD * options.num_threads)
    for start in range(0, len(names), chunk):
        progress.step("extraction", start / len(names), extracted=start, images=len(names))
        pycolmap.extract_features(
            str(database), str(images_dir), image_names=names[start : start + chunk], extraction_options=extraction
        )
    progress.step("extraction", 1.0, extracted=len(names), images=len(names))


def chunk_size(count: int, min_per_call: int) -> int:
    """Up to ten equal calls of at least ``min_per_call`` items (one call for small sets)."""
    calls = min(10, max(1, count // max(min_per_call, 1)))
    return max(1, -(-count // calls))


def _camera_mode(kept: list[Prepared]) -> pycolmap.CameraMode:
    """One shared camera when every photo has the same EXIF make/model (or none at all, as with
    frames from one video) and the same size; otherwise one camera per photo, since sharing
    intrinsics between different devices breaks the model."""
    signatures = {(p.photo.camera, p.width, p.height) for p in kept}
    return pycolmap.CameraMode.SINGLE if len(signatures) == 1 else pycolmap.CameraMode.PER_IMAGE


def _set_focal_priors(database: Path, kept: list[Prepared]) -> None:
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


def _num_keypoints(database: Path) -> int:
    db = pycolmap.Database.open(str(database))
    try:
        return int(db.num_keypoints())
    finally:
        db.close()


def _num_verified_pairs(database: Path) -> int:
    db = pycolmap.Database.open(str(database))
    try:
        # Only pairs that passed geometric verification have a two-view geometry
        # (num_verified_image_pairs counts every pair that was tried).
        return len(db.read_two_view_geometries()[0])
    finally:
        db.close()


# --- matching -----------------------------------------------------------------------------------

_FRAME_NAME = re.compile(r"^(.*?)(\d+)\.[A-Za-z]+$")


def choose_matcher(kept: list[Prepared], options: SfmOptions) -> tuple[str, str]:
    """The matching strategy and why.

    - up to ~100 photos: exhaustive, whatever the order (all pairs: the most robust, still cheap);
    - names that number consecutive frames (``frame_00012.jpg``, a video's frames): sequential with
      a quadratic overlap, so loops close at growing distances without a vocabulary tree;
    - otherwise a vocabulary tree when one is installed (retrieval for large unordered sets);
    - otherwise exhaustive up to a few hundred photos, beyond that sequential in name order (phones
      name photos by time) with loop detection off, since it needs the vocabulary tree too.
    GPS-spatial pairs are not used: ingest strips GPS before SfM for privacy.
    """
    if options.matcher != "auto":
        return options.matcher, "requested"
    n = len(kept)
    if n <= EXHAUSTIVE_MAX_IMAGES:
        return "exhaustive", f"{n} photos <= {EXHAUSTIVE_MAX_IMAGES}"
    if looks_like_video_frames([p.photo.original_name or p.photo.name for p in kept]):
        return "sequential", "names number consecutive video frames"
    if options.vocab_tree is not None and options.vocab_tree.is_file():
        return "vocabtree", f"{n} photos, vocabulary tree {options.vocab_tree.name}"
    if n <= EXHAUSTIVE_FALLBACK_MAX_IMAGES:
        return "exhaustive", f"{n} photos, no vocabulary tree installed"
    return "sequential", f"{n} photos, no vocabulary tree: neighbours in name order"


def looks_like_video_frames(names: list[str]) -> bool:
    """Same prefix, numbers that mostly step by one: extracted frames (or a burst), in order."""
    parsed = [_FRAME_NAME.match(n) for n in sorted(names)]
    if len(names) < 10 or any(m is None for m in parsed):
        return False
    prefixes = {m.group(1) for m in parsed if m}
    numbers = [int(m.group(2)) for m in parsed if m]
    steps = [b - a for a, b in itertools.pairwise(numbers)]
    return len(prefixes) == 1 and sum(s == 1 for s in steps) >= 0.9 * len(steps)


def _match_pairs_in_chunks(
    database: Path,
    pairs: list[tuple[str, str]],
    matching: pycolmap.FeatureMatchingOptions,
    verification: pycolmap.TwoViewGeometryOptions,
    progress: _Progress,
) -> None:
    """Exhaustive matching as ~10 explicit pair lists, so that progress moves through the pairs
    (COLMAP's own exhaustive matcher reports nothing until it is done)."""
    pair_file = database.parent / "pairs.txt"
    size = chunk_size(len(pairs), MATCHING_MIN_PAIRS_PER_CALL)
    for start in range(0, len(pairs), size):
        progress.step("matching", start / len(pairs), pairs_matched=start, pairs=len(pairs))
        pair_file.write_text("\n".join(f"{a} {b}" for a, b in pairs[start : start + size]) + "\n")
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pair_file
        pycolmap.match_image_pairs(
            str(database), matching_options=matching, pairing_options=pairing, verification_options=verification
        )


def _match(
    database: Path, matcher: str, options: SfmOptions, names: list[str], progress: _Progress | None = None
) -> None:
    """Match with ``matcher``; ``progress`` reports per chunk where the matcher allows it."""
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.num_threads
    matching.use_gpu = pycolmap.has_cuda
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = mapping.RANDOM_SEED
    db = str(database)
    if matcher == "exhaustive" and progress is not None and all(" " not in n for n in names):
        _match_pairs_in_chunks(database, list(itertools.combinations(names, 2)), matching, verification, progress)
    elif matcher == "exhaustive":
        pycolmap.match_exhaustive(db, matching_options=matching, verification_options=verification)
    elif matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = SEQUENTIAL_OVERLAP
        pairing.quadratic_overlap = True
        pairing.num_threads = options.num_threads
        pycolmap.match_sequential(
            db, matching_options=matching, pairing_options=pairing, verification_options=verification
        )
    elif matcher == "vocabtree":
        if options.vocab_tree is None:
            raise ValueError("vocabtree matching needs SfmOptions.vocab_tree")
        pairing = pycolmap.VocabTreePairingOptions()
        pairing.vocab_tree_path = str(options.vocab_tree)
        pairing.num_threads = options.num_threads
        pycolmap.match_vocabtree(
            db, matching_options=matching, pairing_options=pairing, verification_options=verification
        )
    else:
        raise ValueError(f"unknown matcher {matcher!r}")


# --- mapping ------------------------------------------------------------------------------------


def _map_with_fallbacks(
    database: Path,
    images_dir: Path,
    work_dir: Path,
    matcher: str,
    names: list[str],
    options: SfmOptions,
    progress: _Progress,
    reporter: Reporter,
) -> tuple[Attempt | None, list[Attempt]]:
    """Run the mappers in order until one places (nearly) every photo; keep the best model.

    Chain: the chosen mapper; exhaustive re-matching if the matcher was not exhaustive (missing
    pairs are the usual cause); incremental with relaxed initialisation; the other mapper.
    """
    n = len(names)
    first: list[str] = ["incremental", "global"] if options.mapper == "incremental" else ["global", "incremental"]
    plan: list[tuple[str, str]] = [(first[0], "default")]
    if matcher != "exhaustive" and n <= EXHAUSTIVE_FALLBACK_MAX_IMAGES:
        plan.append(("rematch-exhaustive", "after exhaustive re-matching"))
    plan += [("incremental", "relaxed"), (first[1], "default")]
    best: Attempt | None = None
    attempts: list[Attempt] = []
    for index, (mapper, variant) in enumerate(plan):
        if best is not None and best.registered >= mapping.GOOD_ENOUGH * n:
            break
        if mapper == "rematch-exhaustive":
            t = time.monotonic()
            _match(database, "exhaustive", options, names)
            reporter.log(
                f"fallback: exhaustive re-matching, {_num_verified_pairs(database)} pairs in {time.monotonic() - t:.1f} s"
            )
            mapper = "incremental"
        if index > 0:
            placed = best.registered if best is not None else 0
            reporter.log(f"fallback: only {placed}/{n} placed so far, trying {mapper} mapping ({variant})")
        out = work_dir / f"attempt-{index}"
        attempt = mapping.run_mapper(mapper, variant, database, images_dir, out, n, options.num_threads, progress)
        attempts.append(attempt)
        reporter.log(attempt.describe())
        if attempt.better_than(best):
            best = attempt
    return best, attempts


def _fail_if_poor(best: Attempt | None, total: int, blurry: int) -> None:
    """A model that places under half the photos (or fewer than 3) is a failure, not a result."""
    registered = best.registered if best is not None else 0
    if registered >= 3 and registered >= mapping.MIN_REGISTERED_RATIO * total:
        return
    advice = (
        "take photos with more overlap, ~70 % between neighbours, moving around the subject "
        "(not turning on the spot), with the subject sharp and textured"
    )
    groups = f"; they formed {best.models} separate groups that do not overlap" if best and best.models > 1 else ""
    blurred = f" ({blurry} very blurry photo(s) were left out)" if blurry else ""
    raise UserError(f"only {registered} of {total} photos could be placed{blurred}{groups}: {advice}")
