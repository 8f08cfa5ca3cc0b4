"""`photosplat sfm IMAGES_DIR --out DIR`: the service's SfM pipeline on a local folder (or on the
frames it chooses from a video: `photosplat sfm VIDEO.mp4 --out DIR`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from photosplat_libs.errors import UserError

from photosplat_colmap import known_poses, pipeline
from photosplat_colmap.video import local_inputs


class ConsoleReporter:
    """Prints log lines and, at most every 2 s, the progress."""

    def __init__(self) -> None:
        self._last = 0.0

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None:
        now = time.monotonic()
        if now - self._last >= 2.0 or fraction >= 1.0:
            self._last = now
            extra = " ".join(f"{k}={v:g}" for k, v in metrics.items())
            eta = f" eta {eta_seconds:.0f} s" if eta_seconds is not None else ""
            print(f"  {fraction * 100:5.1f} %{eta} {extra}", file=sys.stderr)

    def log(self, *lines: str) -> None:
        for line in lines:
            print(line, file=sys.stderr)

    def check_cancelled(self) -> None:
        """Ctrl-C interrupts the process; nothing else cancels a local run."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photosplat sfm", description=__doc__)
    p.add_argument("images", type=Path, metavar="IMAGES_DIR", help="a folder of photos, or a video (.mp4, .mov)")
    p.add_argument("--out", type=Path, required=True, help="output folder: sparse/ and undistorted/")
    p.add_argument(
        "--original-resolution",
        action="store_true",
        help=f"do not cap the longer side at {pipeline.DEFAULT_MAX_SIDE} px",
    )
    p.add_argument("--matcher", choices=["auto", "exhaustive", "sequential", "vocabtree"], default="auto")
    p.add_argument("--mapper", choices=["incremental", "global"], default="incremental")
    p.add_argument("--vocab-tree", type=Path, help="COLMAP vocabulary tree file for retrieval matching")
    p.add_argument("--poses", type=Path, help="known poses (COLMAP model folder or transforms.json): skip SfM")
    p.add_argument("--work-dir", type=Path, help="keep the database and attempts here (default: a temp folder)")
    p.add_argument("--cpu", action="store_true", help="SIFT on the CPU even where pycolmap's CUDA build sees a GPU")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = pipeline.SfmOptions(
        max_image_side=None if args.original_resolution else pipeline.DEFAULT_MAX_SIDE,
        matcher=args.matcher,
        mapper=args.mapper,
        vocab_tree=args.vocab_tree,
        use_gpu=not args.cpu,
    )
    reporter = ConsoleReporter()
    with tempfile.TemporaryDirectory(prefix="photosplat-sfm-") as tmp:
        work_dir = args.work_dir or Path(tmp)
        try:
            photos, options = local_inputs(args.images, work_dir, options, reporter)
            poses = args.poses or (known_poses.find(args.images) if args.images.is_dir() else None)
            if poses is not None:
                result = known_poses.run(poses, photos, work_dir, args.out, options, reporter)
            else:
                result = pipeline.run(photos, work_dir, args.out, options, reporter)
        except UserError as exc:
            print(f"SfM failed: {exc}", file=sys.stderr)
            return 2
    print(summary(result))
    return 0


def summary(result: pipeline.SfmResult) -> str:
    rows = [
        ("registered", f"{result.registered_images}/{result.total_images}"),
        ("3D points", str(result.points)),
        ("reprojection error", f"{result.reprojection_error:.3f} px"),
        ("mean track length", f"{result.mean_track_length:.2f}"),
        ("matcher / mapper", f"{result.matcher} / {result.mapper}"),
        ("blurry left out", str(result.blurry_removed)),
        *((f"time {step}", f"{seconds:.1f} s") for step, seconds in result.timings.items()),
        ("time total", f"{sum(result.timings.values()):.1f} s"),
        ("model", str(result.sparse_dir)),
        ("for training", str(result.undistorted_dir)),
        *(("warning", w) for w in result.warnings),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


if __name__ == "__main__":
    raise SystemExit(main())
