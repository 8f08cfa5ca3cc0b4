"""Is the ETA a user sees right? One photo set through SfM and CPU training on this machine, every
progress report recorded (wall time, fraction, ETA) and scored against the time really left, which
is known at the stage's end. Prints Markdown tables (see eta_scoring.py for the rules).

    python services/trainer/bench/bench_eta.py [--datasets buddha lund] [--data DIR] [--json FILE]
        [--scene UNDISTORTED_DIR (skips SfM)] [--skip-training] [--keep DIR] [--max-steps N]

The job page shows "about N left in this stage" from the latest StageProgress (status keeps the
worker's ``eta_seconds`` as is; no ETA for the whole job is shown), so each stage is scored alone.
Training runs the default preset as a CPU job does (``device="cpu"``: the CPU's image and step caps);
its stage is what the worker times: loading, the loop, pruning, held-out scoring, exports, thumbnail.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # eta_scoring beside this script

from eta_scoring import SAMPLES_HEADER, SUMMARY_HEADER, Report, judged_reports, sample_rows, shown, summary_row


class Recorder:
    """A reporter (SfM's protocol) and the training hooks' target: every report with its time."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.reports: list[Report] = []
        self.lines: list[str] = []
        self.steps: list[dict] = []  # SfM's per-step calls, for replaying other estimators

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None:
        self.reports.append(Report(time.monotonic() - self.start, fraction, eta_seconds))

    def log(self, *lines: str) -> None:
        for line in filter(None, lines):
            self.lines.append(line)
            print(f"  [{time.monotonic() - self.start:6.1f} s] {line}", file=sys.stderr, flush=True)

    def check_cancelled(self) -> None:
        pass


def run_sfm(images: Path, out: Path) -> tuple[Recorder, float, Path]:
    from photosplat_colmap import pipeline, progress
    from photosplat_colmap.capture import photos_from_folder

    recorder = Recorder()
    step, finish = progress.SfmProgress.step, progress.SfmProgress.finish

    def traced_step(self: progress.SfmProgress, name: str, fraction: float, **metrics: float) -> None:
        recorder.steps.append({"t": time.monotonic() - recorder.start, "step": name, "fraction": fraction, **metrics})
        step(self, name, fraction, **metrics)

    def traced_finish(self: progress.SfmProgress, name: str) -> None:
        recorder.steps.append({"t": time.monotonic() - recorder.start, "finish": name})
        finish(self, name)

    progress.SfmProgress.step, progress.SfmProgress.finish = traced_step, traced_finish  # type: ignore[method-assign]
    try:
        photos = photos_from_folder(images)
        recorder.start = time.monotonic()
        result = pipeline.run(photos, out / "work", out / "sfm", pipeline.SfmOptions(), recorder)
    finally:
        progress.SfmProgress.step, progress.SfmProgress.finish = step, finish  # type: ignore[method-assign]
    duration = time.monotonic() - recorder.start
    placed = f"{result.registered_images}/{result.total_images}"
    print(f"SfM: {placed} placed, {duration:.1f} s, steps {result.timings}", flush=True)
    return recorder, duration, result.undistorted_dir


def run_training(scene: Path, out: Path, max_steps: int | None) -> tuple[Recorder, float, dict]:
    from photosplat_trainer.pipeline import run_pipeline
    from photosplat_trainer.train import Callbacks, Progress

    recorder = Recorder()

    def on_progress(p: Progress) -> None:  # as training_job._callbacks turns a Progress into a report
        recorder.progress(p.step / p.steps, p.eta_seconds)
        recorder.steps.append({"t": recorder.reports[-1].t, "step": p.step, "gaussians": p.gaussians})

    recorder.start = time.monotonic()
    outputs = run_pipeline(
        scene, out / "train", preset_name="standard", device="cpu", max_steps=max_steps,
        callbacks=Callbacks(progress=on_progress, log=recorder.log),
    )
    duration = time.monotonic() - recorder.start
    cfg = outputs.config
    info = {
        "steps": cfg.steps, "max_image_side": cfg.max_image_side, "gaussians": len(outputs.result.gaussians),
        "stage_seconds": {k: round(v, 1) for k, v in outputs.stage_seconds.items()},
    }
    print(f"training: {info}, {duration:.1f} s", flush=True)
    return recorder, duration, info


def score(stages: list[tuple[str, list[Report], float]]) -> None:
    print(SUMMARY_HEADER)
    for name, reports, duration in stages:
        for by in ("time", "fraction"):
            print(summary_row(name, "reports", by, judged_reports(reports, duration, by)))
            print(summary_row(name, "shown", by, shown(reports, duration, by)))
        print(summary_row(name, "shown, counting down", "time", shown(reports, duration, "time", countdown=True)))
    print()
    print(SAMPLES_HEADER)
    for name, reports, duration in stages:
        print("\n".join(sample_rows(name, reports, duration)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["buddha"], help="SfM on each; the first one is trained")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("PHOTOSPLAT_DATASETS", "../shared/datasets")))
    parser.add_argument("--scene", type=Path, help="an undistorted SfM folder: train it, skip SfM")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--max-steps", type=int, help="fewer steps than a CPU job's (the schedule scaled to fit)")
    parser.add_argument("--json", type=Path, help="write every report (and SfM's step calls) here")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (NAME/sfm/undistorted: a --scene)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    stages: list[tuple[str, list[Report], float]] = []
    raw: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-eta-") as tmp_name:
        scene = args.scene
        for name in [] if args.scene else args.datasets:
            images = args.data / name / "images"
            if not images.is_dir():
                print(f"skipped {name}: no photo set at {images} (pass --data DIR holding {name}/images)", flush=True)
                continue
            sfm, duration, undistorted = run_sfm(images, Path(args.keep or tmp_name) / name)
            scene = scene or undistorted
            stages.append((f"sfm ({name})", sfm.reports, duration))
            raw[f"sfm:{name}"] = {"duration": duration, "reports": [asdict(r) for r in sfm.reports], "trace": sfm.steps}
            _print_basis(f"{name}: SfM's", sfm.lines)
            _save(args.json, raw)
        if not args.skip_training and scene is not None:
            train, duration, info = run_training(scene, Path(args.keep or tmp_name) / "train", args.max_steps)
            stages.append(("train (CPU)", train.reports, duration))
            reports = [asdict(r) for r in train.reports]
            raw["train"] = {**info, "duration": duration, "reports": reports, "trace": train.steps}
            _print_basis("training's", train.lines)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    _save(args.json, raw)
    score(stages)


def _print_basis(whose: str, lines: list[str]) -> None:
    print(f"{whose} ETA basis in the job log:", *(f"  {line}" for line in lines if "ETA" in line), sep="\n")


def _save(path: Path | None, raw: dict[str, object]) -> None:
    """After every stage: a run stopped early (other load on the machine) keeps what it measured."""
    if path is not None:
        path.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
