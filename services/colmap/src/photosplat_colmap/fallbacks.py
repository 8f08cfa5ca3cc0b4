"""The fallback chain of the mapping step, and the verdict on its best model."""

from __future__ import annotations

import time
from pathlib import Path

from photosplat_libs.errors import UserError

from photosplat_colmap import mapping
from photosplat_colmap.mapping import Attempt
from photosplat_colmap.cameras import camera_per_photo, merge_cameras
from photosplat_colmap.matching import EXHAUSTIVE_FALLBACK_MAX_IMAGES, match, num_verified_pairs
from photosplat_colmap.progress import SfmProgress
from photosplat_colmap.types import Reporter, SfmOptions


def map_with_fallbacks(
    database: Path,
    images_dir: Path,
    work_dir: Path,
    matcher: str,
    names: list[str],
    options: SfmOptions,
    progress: SfmProgress,
    reporter: Reporter,
) -> tuple[Attempt | None, list[Attempt]]:
    """Run the mappers in order until one places (nearly) every photo; keep the best model.

    Chain: the chosen mapper; exhaustive re-matching if the matcher was not exhaustive (missing
    pairs are the usual cause); incremental with relaxed initialisation; the other mapper.
    """
    n = len(names)
    best: Attempt | None = None
    attempts: list[Attempt] = []
    for index, (mapper, variant) in enumerate(_plan(matcher, n, options)):
        if best is not None and best.registered >= mapping.GOOD_ENOUGH * n:
            break
        if mapper == "rematch-exhaustive":
            t = time.monotonic()
            # Verified with a camera per photo (in parallel), mapped on the shared one again.
            split = camera_per_photo(database)
            match(database, "exhaustive", options, names)
            if split:
                merge_cameras(database)
            reporter.log(
                f"fallback: exhaustive re-matching, {num_verified_pairs(database)} pairs in {time.monotonic() - t:.1f} s"
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


def _plan(matcher: str, n: int, options: SfmOptions) -> list[tuple[str, str]]:
    """(mapper, variant) in the order they are tried."""
    first: list[str] = ["incremental", "global"] if options.mapper == "incremental" else ["global", "incremental"]
    plan: list[tuple[str, str]] = [(first[0], "default")]
    if matcher != "exhaustive" and n <= EXHAUSTIVE_FALLBACK_MAX_IMAGES:
        plan.append(("rematch-exhaustive", "after exhaustive re-matching"))
    return plan + [("incremental", "relaxed"), (first[1], "default")]


def fail_if_poor(best: Attempt | None, total: int, blurry: int) -> None:
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
