"""Plain pycolmap SfM, the baseline our pipeline is measured against: the four calls with pycolmap's
defaults, only the working resolution set like ours. Imports nothing but pycolmap, so that running it
as a process measures pycolmap's own start-up.

    python services/colmap/bench/plain_colmap.py IMAGES_DIR WORK_DIR [--max-side 1600]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pycolmap


def run(images: Path, work: Path, max_side: int | None) -> tuple[dict[str, float], pycolmap.Reconstruction, Path]:
    """Seconds per step, the largest model and the folder it was written to."""
    pycolmap.logging.minloglevel = max(pycolmap.logging.minloglevel, 2)  # as ours: no per-image log lines
    work.mkdir(parents=True, exist_ok=True)
    database, sparse = work / "database.db", work / "sparse"
    timings: dict[str, float] = {}

    t = time.monotonic()
    extraction = pycolmap.FeatureExtractionOptions()
    if max_side is not None:
        extraction.max_image_size = max_side
    pycolmap.extract_features(str(database), str(images), extraction_options=extraction)
    timings["extraction"] = time.monotonic() - t

    t = time.monotonic()
    pycolmap.match_exhaustive(str(database))
    timings["matching"] = time.monotonic() - t

    t = time.monotonic()
    sparse.mkdir(exist_ok=True)
    models = pycolmap.incremental_mapping(str(database), str(images), str(sparse))
    timings["mapping"] = time.monotonic() - t

    t = time.monotonic()
    best = max(models.values(), key=lambda r: r.num_reg_images())
    best_dir = sparse / "best"
    best_dir.mkdir()
    best.write_binary(str(best_dir))
    pycolmap.undistort_images(str(work / "undistorted"), str(best_dir), str(images))
    timings["undistortion"] = time.monotonic() - t
    return timings, best, best_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--max-side", type=int, default=1600)
    args = parser.parse_args()
    timings, best, _ = run(args.images, args.work, args.max_side)
    print(f"registered {best.num_reg_images()}", *(f"{k} {v:.2f} s" for k, v in timings.items()), sep="; ")


if __name__ == "__main__":
    main()
