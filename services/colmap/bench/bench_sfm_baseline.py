"""Our SfM pipeline beside plain pycolmap on the same photos: seconds per step, the ratio ours/plain,
photos placed and (buddha) rotation error. Prints one Markdown table per dataset.

    python services/colmap/bench/bench_sfm_baseline.py [--data DIR] [--datasets buddha lund buddha:17]
        [--repeat 2] [--processes] [--variant NAME:FIELD=VALUE,...]

``buddha:17`` is 17 of buddha's photos, evenly spread over the set. Each repeat runs plain then ours
back to back (other processes on the machine shift both alike); the table shows the median of the
repeats and every run's total. ``--processes`` also times both as whole processes (``python
plain_colmap.py`` and ``python -m photosplat.cli sfm``), start-up and imports included. Each
``--variant`` runs ours again with those SfmOptions fields changed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plain_colmap
import pycolmap
from photosplat_colmap import pipeline
from photosplat_libs.errors import UserError
from photosplat_colmap.capture import photos_from_folder, usable_cpus
from photosplat_testkit.poses import buddha_truth, pose_errors, poses_of
from photosplat_testkit.reporting import RecordingReporter

STEPS = ("capture", "extraction", "matching", "mapping", "undistortion", "other")


@dataclass
class Run:
    timings: dict[str, float]
    total: float
    cpu: float  # CPU seconds of every thread: less disturbed than wall time by other processes
    registered: int
    model: pycolmap.Reconstruction
    features: float  # keypoints per image
    attempts: str = ""  # ours: the mapping attempts, fallbacks included


@dataclass
class Column:
    name: str
    runs: list[Run] = field(default_factory=list)
    processes: list[float] = field(default_factory=list)

    def median(self, step: str) -> float:
        return statistics.median(r.timings.get(step, 0.0) for r in self.runs)

    def total(self) -> float:
        return statistics.median(r.total for r in self.runs)

    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)


def default_data() -> Path:
    return Path(os.environ.get("PHOTOSPLAT_DATASETS", "../shared/datasets"))


def copy_photos(data: Path, spec: str, dest: Path) -> Path:
    """``name`` or ``name:N`` (N photos evenly spread over the set) copied to ``dest``."""
    name, _, count = spec.partition(":")
    paths = sorted(p for p in (data / name / "images").iterdir() if p.is_file())
    if count:
        paths = [paths[i * len(paths) // int(count)] for i in range(int(count))]
    dest.mkdir(parents=True)
    for path in paths:
        shutil.copy2(path, dest / path.name)
    return dest


def run_plain(images: Path, work: Path, max_side: int | None) -> Run:
    start, cpu = time.monotonic(), time.process_time()
    timings, model, _ = plain_colmap.run(images, work, max_side)
    total = time.monotonic() - start
    timings["other"] = total - sum(timings.values())
    cpu = time.process_time() - cpu
    return Run(timings, total, cpu, model.num_reg_images(), model, features_per_image(work / "database.db"))


def run_ours(images: Path, work: Path, options: pipeline.SfmOptions) -> Run:
    start, cpu = time.monotonic(), time.process_time()
    photos = photos_from_folder(images)  # EXIF focal lengths: part of ours, timed as "other"
    result = pipeline.run(photos, work / "work", work / "out", options, RecordingReporter())
    total = time.monotonic() - start
    timings = dict(result.timings)
    timings["other"] = total - sum(timings.values())
    cpu = time.process_time() - cpu
    model = pycolmap.Reconstruction(str(result.sparse_dir))
    features = features_per_image(work / "work" / "database.db")
    return Run(timings, total, cpu, result.registered_images, model, features, "; ".join(result.attempts))


def features_per_image(database: Path) -> float:
    db = pycolmap.Database.open(str(database))
    try:
        return db.num_keypoints() / max(db.num_images(), 1)
    finally:
        db.close()


def time_processes(images: Path, work: Path, max_side: int | None) -> tuple[float, float]:
    """Wall seconds of plain and ours, each as a fresh Python process."""
    plain_script = Path(plain_colmap.__file__)
    side = [] if max_side is None else ["--max-side", str(max_side)]
    start = time.monotonic()
    subprocess.run([sys.executable, str(plain_script), str(images), str(work / "p-plain"), *side], check=True)
    plain = time.monotonic() - start
    flag = [] if max_side is not None else ["--original-resolution"]
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "photosplat.cli", "sfm", str(images), "--out", str(work / "p-ours"), *flag],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return plain, time.monotonic() - start


def accuracy(model: pycolmap.Reconstruction, truth: dict[str, np.ndarray] | None) -> str:
    if truth is None:
        return "n/a"
    errors = pose_errors(poses_of(model), truth)
    return f"{np.median(errors.rotation_deg):.3f} / {errors.rotation_deg.max():.3f}"


def table(spec: str, n: int, columns: list[Column], truth: dict[str, np.ndarray] | None) -> str:
    plain = columns[0]
    head = ["", *(c.name for c in columns), *(f"{c.name}/plain" for c in columns[1:])]
    rows = [head, ["---"] * len(head)]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0.05 else "-"

    for step in STEPS:
        values = [c.median(step) for c in columns]
        rows.append([f"{step} s", *(f"{v:.2f}" for v in values), *(ratio(v, values[0]) for v in values[1:])])
    totals = [c.total() for c in columns]
    rows.append(["**total s**", *(f"**{v:.2f}**" for v in totals), *(ratio(v, totals[0]) for v in totals[1:])])
    cpus = [c.cpu() for c in columns]
    rows.append(["CPU s (all threads)", *(f"{v:.1f}" for v in cpus), *(ratio(v, cpus[0]) for v in cpus[1:])])
    rows.append(["totals per run s", *(" ".join(f"{r.total:.1f}" for r in c.runs) for c in columns), *[""] * (len(columns) - 1)])
    if plain.processes:
        procs = [statistics.median(c.processes) for c in columns if c.processes]
        rows.append(["whole process s", *(f"{v:.2f}" for v in procs), *(ratio(v, procs[0]) for v in procs[1:])])
    rows.append(["registered", *(f"{min(r.registered for r in c.runs)}/{n}" for c in columns), *[""] * (len(columns) - 1)])
    rows.append(["features / image", *(f"{c.runs[-1].features:.0f}" for c in columns), *[""] * (len(columns) - 1)])
    rows.append(["3D points", *(str(c.runs[-1].model.num_points3D()) for c in columns), *[""] * (len(columns) - 1)])
    rows.append(["rot. err median / max deg", *(accuracy(c.runs[-1].model, truth) for c in columns), *[""] * (len(columns) - 1)])
    attempts = "".join(f"\n- {c.name} mapping: {c.runs[-1].attempts}" for c in columns[1:])
    return f"### {spec} ({n} photos)\n\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n" + attempts + "\n"


def _value(text: str) -> object:
    """A Python literal, or else the text itself (``matcher=sequential``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_variant(text: str) -> tuple[str, pipeline.SfmOptions]:
    """``NAME:FIELD=VALUE,...`` as SfmOptions (values as Python literals)."""
    name, _, fields = text.partition(":")
    changes = {k: _value(v) for k, v in (f.split("=", 1) for f in fields.split(",") if f)}
    return name, dataclasses.replace(pipeline.SfmOptions(), **changes)


def bench(data: Path, spec: str, repeat: int, processes: bool, variants: list[tuple[str, pipeline.SfmOptions]]) -> str:
    max_side = pipeline.SfmOptions().max_image_side
    columns = [Column("plain"), *(Column(name) for name, _ in variants)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        images = copy_photos(data, spec, tmp / "photos")
        n = len(list(images.iterdir()))
        for index in range(repeat):
            run_dir = tmp / f"run-{index}"
            columns[0].runs.append(run_plain(images, run_dir / "plain", max_side))
            for column, (name, options) in zip(columns[1:], variants, strict=True):
                try:
                    column.runs.append(run_ours(images, run_dir / name, options))
                except UserError as exc:  # a variant that cannot place the set is a result, not a crash
                    print(f"  {spec} {name} failed: {exc}", file=sys.stderr)
            if processes:
                plain, ours = time_processes(images, run_dir, max_side)
                columns[0].processes.append(plain)
                columns[1].processes.append(ours)
            print(f"  {spec} run {index + 1}: " + ", ".join(f"{c.name} {c.runs[-1].total:.1f} s" for c in columns if c.runs), file=sys.stderr)
            shutil.rmtree(run_dir)
        truth = buddha_truth(data / "buddha") if spec.partition(":")[0] == "buddha" else None
        failed = [c.name for c in columns if len(c.runs) < repeat]
        note = f"\n\nfailed in some runs (left out): {', '.join(failed)}" if failed else ""
        return table(spec, n, [c for c in columns if len(c.runs) == repeat], truth) + note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=default_data(), help="datasets folder (env PHOTOSPLAT_DATASETS)")
    parser.add_argument("--datasets", nargs="+", default=["buddha", "lund"], help="NAME or NAME:N (N photos)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--processes", action="store_true", help="also time both as whole processes")
    parser.add_argument("--variant", action="append", default=[], help="NAME:FIELD=VALUE,... (SfmOptions)")
    args = parser.parse_args()
    variants = [("ours", pipeline.SfmOptions()), *map(parse_variant, args.variant)]
    print(
        f"pycolmap {pycolmap.__version__} (CUDA: {pycolmap.has_cuda}), {usable_cpus()} usable CPUs "
        f"({os.cpu_count()} on the host), {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    for spec in args.datasets:
        print(bench(args.data, spec, args.repeat, args.processes, variants), flush=True)


if __name__ == "__main__":
    main()
