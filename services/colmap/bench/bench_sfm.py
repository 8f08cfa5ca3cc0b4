"""SfM benchmark: time per step, registered photos, reprojection error and pose accuracy on
buddha, lund (--data, else $PHOTOSPLAT_DATASETS, else ../shared/datasets from the current folder)
and the synthetic scene. Prints a Markdown table.

    python services/colmap/bench/bench_sfm.py [--datasets buddha buddha-phone lund synthetic] [--data DIR]
        [--variant NAME:FIELD=VALUE,FIELD=VALUE ...]

Each --variant runs every dataset again with those SfmOptions fields changed (after the defaults),
e.g. --variant f3k:max_num_features=3072 --variant t8:num_threads=8.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pycolmap
from photosplat_colmap import pipeline
from photosplat_colmap.capture import photos_from_folder
from photosplat_testkit.poses import buddha_truth, pose_errors, poses_of
from photosplat_testkit.reporting import RecordingReporter
from photosplat_testkit.synthetic import render_scene, write_images

STEPS = ("capture", "extraction", "matching", "mapping", "undistortion")


def prepare_dataset(name: str, data: Path, tmp: Path) -> tuple[Path, dict[str, np.ndarray] | None]:
    """The photo folder and, where known, the true cameras."""
    if name == "synthetic":
        scene = render_scene(n_views=24, seed=0)
        write_images(scene, tmp / "synthetic")
        return tmp / "synthetic", dict(zip(scene.names, scene.cams_from_world, strict=True))
    root = data / name.removesuffix("-phone")
    if name == "buddha-phone":
        # Phone-sized frames (1920x1080, ~2 MP like a 1080x1920 capture): the photos upsampled, so the
        # cost of every step at phone resolution is measured on a set with known cameras.
        from PIL import Image

        folder = tmp / "buddha-phone"
        folder.mkdir()
        for path in sorted((root / "images").glob("*.jpg")):
            Image.open(path).resize((1920, 1080), Image.LANCZOS).save(folder / path.name, quality=92)
        _, truth = prepare_dataset("buddha", data, tmp)
        return folder, truth
    if name == "buddha":
        return root / "images", buddha_truth(root)
    return root / "images", None


def parse_variant(text: str) -> tuple[str, pipeline.SfmOptions]:
    """``NAME:FIELD=VALUE,...`` as SfmOptions (values as Python literals)."""
    name, _, fields = text.partition(":")
    changes = {k: ast.literal_eval(v) for k, v in (f.split("=", 1) for f in fields.split(",") if f)}
    return name, dataclasses.replace(pipeline.SfmOptions(), **changes)


def bench(name: str, data: Path, options: pipeline.SfmOptions) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images, truth = prepare_dataset(name, data, tmp)
        photos = photos_from_folder(images)
        start = time.monotonic()
        result = pipeline.run(photos, tmp / "work", tmp / "out", options, RecordingReporter())
        total = time.monotonic() - start
        accuracy = "n/a"
        if truth is not None:
            errors = pose_errors(poses_of(pycolmap.Reconstruction(str(result.sparse_dir))), truth)
            accuracy = f"{np.median(errors.rotation_deg):.3f} / {errors.rotation_deg.max():.3f}"
        width = max(c.width for c in pycolmap.Reconstruction(str(result.sparse_dir)).cameras.values())
        return [
            name,
            f"{result.registered_images}/{result.total_images}",
            str(width),
            str(result.points),
            f"{result.reprojection_error:.3f}",
            f"{result.mean_track_length:.2f}",
            *(f"{result.timings.get(step, 0.0):.1f}" for step in STEPS),
            f"{total:.1f}",
            f"{result.matcher}/{result.mapper}",
            accuracy,
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["buddha", "lund", "synthetic"])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("PHOTOSPLAT_DATASETS", "../shared/datasets")))
    parser.add_argument("--variant", action="append", default=[], help="NAME:FIELD=VALUE,... (SfmOptions)")
    args = parser.parse_args()
    variants = [("default", pipeline.SfmOptions()), *map(parse_variant, args.variant)]
    print(
        f"pycolmap {pycolmap.__version__} (CUDA: {pycolmap.has_cuda}), {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}\n"
    )
    header = [
        "dataset",
        "variant",
        "registered",
        "width px",
        "points",
        "reproj. err px",
        "track len",
        *(f"{s} s" for s in STEPS),
        "total s",
        "matcher/mapper",
        "rot. err median/max deg",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.datasets:
        for variant, options in variants:
            row = bench(name, args.data, options)
            print("| " + " | ".join([row[0], variant, *row[1:]]) + " |", flush=True)


if __name__ == "__main__":
    main()
