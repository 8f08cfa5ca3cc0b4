"""`photosplat reconstruct IMAGES_DIR --out DIR`: the whole pipeline on a local folder, no services.
A video works too (`photosplat reconstruct VIDEO.mp4 --out DIR`): SfM runs on the frames it chooses.

The same code as the colmap and trainer services (their pipelines on local folders), with one
progress bar: SfM takes the first part of it, training the rest.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Share of the bar for SfM: on a GPU machine training takes the larger part of a job.
SFM_SHARE = 0.3
BAR_WIDTH = 30


class ProgressBar:
    def __init__(self, stream=sys.stderr) -> None:  # type: ignore[no-untyped-def]
        self.stream = stream
        self.started = time.monotonic()
        self._last = 0.0

    def show(self, fraction: float, label: str) -> None:
        now = time.monotonic()
        if now - self._last < 0.5 and fraction < 1.0:
            return
        self._last = now
        filled = int(BAR_WIDTH * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {fraction * 100:5.1f} %  {now - self.started:5.0f} s  {label[:60]:<60}")
        self.stream.flush()

    def log(self, line: str) -> None:
        self.stream.write(f"\r{' ' * (BAR_WIDTH + 80)}\r{line}\n")
        self.stream.flush()


class SfmReporter:
    """The SfM pipeline's reporter interface, drawn on the shared bar."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None:
        self.bar.show(SFM_SHARE * fraction, "camera poses")

    def log(self, *lines: str) -> None:
        for line in lines:
            self.bar.log(line)

    def check_cancelled(self) -> None:
        """Ctrl-C interrupts a local run; nothing else cancels it."""


def parser() -> argparse.ArgumentParser:
    from photosplat_trainer.config import PRESETS

    p = argparse.ArgumentParser(prog="photosplat reconstruct", description=__doc__.splitlines()[0])
    p.add_argument("images", type=Path, metavar="IMAGES_DIR", help="a folder of photos, or a video (.mp4, .mov)")
    p.add_argument("--out", type=Path, required=True, help="output folder: sfm/ and scene/")
    p.add_argument("--preset", default="standard", choices=sorted(PRESETS))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--original-resolution", action="store_true", help="do not cap the photos' longer side")
    p.add_argument("--steps", type=int, default=None, help="train this many steps (the schedule is scaled)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from photosplat_colmap import pipeline as sfm
    from photosplat_colmap.video import local_inputs
    from photosplat_libs.errors import UserError
    from photosplat_trainer.dataset import is_blender
    from photosplat_trainer.pipeline import run_pipeline
    from photosplat_trainer.train import Callbacks, Progress

    bar = ProgressBar()
    started = time.monotonic()
    stages: dict[str, float] = {}
    warming = _warm_up_in_background(args.preset, args.device, bar)
    if is_blender(args.images):
        # A NeRF-synthetic folder brings its cameras: nothing for SfM to do.
        bar.log(f"camera poses: from {args.images / 'transforms_train.json'} (SfM skipped)")
        scene_dir = args.images
    else:
        options = sfm.SfmOptions(max_image_side=None if args.original_resolution else sfm.DEFAULT_MAX_SIDE)
        work = args.out / "work"
        try:
            photos, options = local_inputs(args.images, work, options, SfmReporter(bar))
            result = sfm.run(photos, work, args.out / "sfm", options, SfmReporter(bar))
        except UserError as exc:
            bar.log(f"SfM failed: {exc}")
            return 2
        finally:
            shutil.rmtree(work, ignore_errors=True)
        bar.log(f"camera poses: {result.registered_images}/{result.total_images} photos placed, {result.points} points")
        scene_dir = result.undistorted_dir
        stages = {f"sfm {step}": seconds for step, seconds in result.timings.items()}

    def progress(p: Progress) -> None:
        bar.show(SFM_SHARE + (1 - SFM_SHARE) * p.step / max(p.steps, 1), f"training step {p.step}/{p.steps}, PSNR {p.psnr:.1f} dB")

    with _stage(stages, "train warm-up wait"):
        warming.join()
    overrides = {"max_image_side": None} if args.original_resolution else {}
    out = run_pipeline(
        scene_dir,
        args.out / "scene",
        preset_name=args.preset,
        overrides=overrides,
        device=args.device,
        steps=args.steps,
        callbacks=Callbacks(progress=progress, log=lambda line: line and bar.log(line)),
    )
    bar.show(1.0, "done")
    bar.log("")
    psnr = "n/a" if out.psnr is None else f"{out.psnr:.2f} dB"
    print(f"{len(out.gaussians)} Gaussians, held-out PSNR {psnr}")
    for export in out.exports:
        print(f"  {export.path}  {export.bytes / 1e6:.2f} MB")
    print("time per stage:")
    for name, seconds in {**stages, **{f"train {k}": v for k, v in out.stage_seconds.items()}}.items():
        print(f"  {name:<20} {seconds:7.1f} s")
    print(f"  {'photos -> scene':<20} {time.monotonic() - started:7.1f} s (wall)")
    return 0


def _warm_up_in_background(preset: str, device: str, bar: ProgressBar) -> threading.Thread:
    """The GPU's one-time costs (CUDA start-up, kernel compilation) paid while SfM keeps the CPU
    busy, not by the first training step; a failure here is left for training to report."""

    def run() -> None:
        from photosplat_trainer.warmup import warm_up

        try:
            seconds = warm_up(preset, device)
        except Exception as exc:  # noqa: BLE001 - training will meet and report the same problem
            bar.log(f"GPU warm-up skipped: {type(exc).__name__}: {exc}")
            return
        if seconds:
            bar.log(f"GPU warmed up in {seconds:.1f} s (beside SfM)")

    thread = threading.Thread(target=run, name="gpu-warm-up", daemon=True)
    thread.start()
    return thread


@contextmanager
def _stage(stages: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    stages[name] = time.monotonic() - started
