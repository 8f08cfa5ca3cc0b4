"""One training run from an SfM folder to exported files: what the worker and the CLI both do.

Resolve the configuration (preset + overrides, the CPU image cap), load the views, train (with the
out-of-memory retry), prune floaters, evaluate the pruned set on the held-out views, write every
export and measure its held-out PSNR after the round trip, render a thumbnail, and save the resolved
configuration and the metrics as JSON beside the exports.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from photosplat_libs.errors import WorkError
from photosplat_libs.events import HomeView

from photosplat_trainer.backends import Backend, select_backend
from photosplat_trainer.config import TrainConfig
from photosplat_trainer.config_resolution import resolve_config
from photosplat_trainer.dataset import Dataset, View, focus_point, is_blender, load_scene
from photosplat_trainer.export import EXPORT_FORMATS, ExportResult, export_one, load_export, prune_floaters, save_thumbnail
from photosplat_trainer.export.prune import PruneResult
from photosplat_trainer.gaussians import GaussianSet
from photosplat_trainer import showcase
from photosplat_trainer.evaluation import evaluate_gaussians, render_image
from photosplat_trainer.train import Callbacks, TrainResult, train_with_oom_retry


@dataclass(frozen=True)
class ExportedFile:
    format: str
    path: Path
    bytes: int
    psnr: float | None  # held-out PSNR of the file read back


@dataclass(frozen=True)
class TrainOutputs:
    config: TrainConfig
    result: TrainResult
    gaussians: GaussianSet  # after floater pruning
    psnr: float | None
    ssim: float | None
    exports: list[ExportedFile]
    thumbnail: Path
    config_path: Path
    metrics_path: Path
    home_view: HomeView
    stage_seconds: dict[str, float]
    stage_peak_gpu_bytes: dict[str, int]
    backend: str  # cpu or cuda: where it trained


class StageClock:
    """Wall seconds and peak GPU memory of each named stage of a run, in order."""

    def __init__(self, device_is_cuda: bool) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_gpu_bytes: dict[str, int] = {}
        self._cuda = device_is_cuda

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        import torch

        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
        started = time.monotonic()
        try:
            yield
        finally:
            if self._cuda:
                torch.cuda.synchronize()
                self.peak_gpu_bytes[name] = int(torch.cuda.max_memory_allocated())
            self.seconds[name] = time.monotonic() - started

    def table(self) -> str:
        rows = [f"  {name:<12} {secs:7.1f} s" + (f"   peak GPU {self.peak_gpu_bytes[name] / 2**30:.2f} GiB" if name in self.peak_gpu_bytes else "")
                for name, secs in self.seconds.items()]
        return "\n".join(["time per stage:", *rows, f"  {'total':<12} {sum(self.seconds.values()):7.1f} s"])


def run_pipeline(
    scene_dir: Path,
    out_dir: Path,
    *,
    preset_name: str = "standard",
    overrides: dict[str, Any] | None = None,
    device: str = "auto",
    steps: int | None = None,
    max_steps: int | None = None,
    callbacks: Callbacks | None = None,
    work_dir: Path | None = None,
    resume: Path | None = None,
) -> TrainOutputs:
    hooks = callbacks or Callbacks()
    backend = select_backend(device)
    clock = StageClock(backend.device.type == "cuda")
    overrides = dict(overrides or {})
    if is_blender(Path(scene_dir)):
        # NeRF-synthetic objects are trained and scored on white, as 3DGS and its published numbers do.
        overrides.setdefault("background", (1.0, 1.0, 1.0))
    try:
        cfg = resolve_config(preset_name, overrides, backend, steps, max_steps)
    except ValueError as exc:
        # Bad job options fail the same way on every attempt.
        raise WorkError(f"the training options cannot be used: {exc}", retryable=False) from exc
    with clock.stage("load"):
        data = load_scene(Path(scene_dir), max_image_side=cfg.max_image_side, test_every=cfg.test_every, background=cfg.background)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with clock.stage("train"):
        result, cfg = train_with_oom_retry(data, cfg, backend, hooks, work_dir=work_dir or out_dir, resume=resume)
    config_path = cfg.save(out_dir / "config.json")

    with clock.stage("prune"):
        # The held-out views on the device once: they are evaluated for the pruned set and each export.
        data = dataclasses.replace(data, test=[v.to(backend.device) for v in data.test])
        pruned = prune_for_export(result.gaussians, data, cfg)
        hooks.log("floater pruning: " + ", ".join(f"{k} {v}" for k, v in pruned.counts.items()))
        gaussians = pruned.gaussians
        psnr, ssim = evaluate_gaussians(gaussians, data.test, backend, cfg) if data.test else (None, None)
    with clock.stage("export"):
        exports = _export(gaussians, out_dir, data, backend, cfg, psnr, hooks)
    with clock.stage("thumbnail"):
        # The viewer opens where the thumbnail (its social preview) was taken.
        showcase = _thumbnail_view(data)
        thumbnail = save_thumbnail(render_image(gaussians, showcase, backend, cfg), out_dir / "thumbnail.png")
        home = home_view(showcase, gaussians.means)
    hooks.log(clock.table())

    outputs = TrainOutputs(
        cfg, result, gaussians, psnr, ssim, exports, thumbnail, config_path, out_dir / "metrics.json", home,
        clock.seconds, clock.peak_gpu_bytes, backend.name,
    )
    metrics = _metrics(outputs, pruned.counts, data)
    outputs.metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    return outputs


def _metrics(o: TrainOutputs, pruned: dict[str, int], data: Dataset) -> dict[str, Any]:
    """metrics.json beside the exports: what the run did, for people and the benchmarks."""
    result = o.result
    return {
        "backend": o.backend,
        "steps": result.steps,
        "train_seconds": result.train_seconds,
        "stage_seconds": o.stage_seconds,
        "stage_peak_gpu_bytes": o.stage_peak_gpu_bytes,
        "gaussians_trained": len(result.gaussians),
        "gaussians": len(o.gaussians),
        "pruned": pruned,
        "psnr_before_pruning": result.psnr,
        "ssim_before_pruning": result.ssim,
        "psnr": o.psnr,
        "ssim": o.ssim,
        "peak_gpu_memory_bytes": result.peak_memory_bytes,
        "history": [dict(zip(("step", "seconds", "psnr", "ssim"), h)) for h in result.history],
        "exports": [{**dataclasses.asdict(e), "path": e.path.name} for e in o.exports],
        "views": {"train": [v.name for v in data.train], "test": [v.name for v in data.test]},
        "home_view": o.home_view.model_dump(mode="json"),
    }


def _export(
    gaussians: GaussianSet, out_dir: Path, data: Dataset, backend: Backend, cfg: TrainConfig, psnr: float | None, hooks: Callbacks
) -> list[ExportedFile]:
    """Every format written at once (each writer is numpy and zlib, which release the GIL), then each
    lossy file read back and scored on the held-out views; the PLY holds the float32 values
    themselves, so its score is the trained set's when it reads back identical."""
    def write(fmt: str) -> tuple[ExportResult, float]:
        started = time.monotonic()
        return export_one(gaussians, out_dir, fmt, antialiased=cfg.antialiased), time.monotonic() - started

    with ThreadPoolExecutor(max_workers=len(EXPORT_FORMATS)) as pool:
        written = list(pool.map(write, EXPORT_FORMATS))
        loaded = list(pool.map(lambda item: load_export(item[0].path), written))
    exports, spent = [], []
    for (item, write_seconds), back in zip(written, loaded, strict=True):
        hooks.check_cancelled()
        started = time.monotonic()
        if not data.test:
            round_trip = None
        elif item.format == "ply" and back.equals(gaussians):
            round_trip = psnr
        else:
            round_trip = evaluate_gaussians(back, data.test, backend, cfg)[0]
        exports.append(ExportedFile(item.format, item.path, item.bytes, round_trip))
        spent.append(f"{item.format} {write_seconds:.1f} s + scoring {time.monotonic() - started:.1f} s")
    hooks.log("exports written (in parallel) and scored: " + ", ".join(spent))
    return exports


def prune_for_export(gaussians: GaussianSet, data: Dataset, cfg: TrainConfig) -> PruneResult:
    # Sky points sit at 3x the camera extent and must stay wide to cover the sky: only drop
    # Gaussians larger than that whole sphere's reach then.
    wide = {"max_scale_fraction": 4.0} if cfg.sky_points_fraction > 0 else {}
    return prune_floaters(gaussians, data.camera_centers, **wide)


def home_view(view: View, means: np.ndarray) -> HomeView:
    """The viewer opens where the thumbnail was taken: a capture camera (turned towards what it
    frames, see :func:`_thumbnail_view`), aimed at the median depth of the Gaussians in its frame
    (the centre of all Gaussians would be wrong for sky or far background)."""
    rotation = view.viewmat[:3, :3].double().cpu().numpy()
    position = view.center
    forward, up = rotation.T @ np.array([0.0, 0.0, 1.0]), rotation.T @ np.array([0.0, -1.0, 0.0])
    depths, framed = showcase.project(view, np.asarray(means, dtype=np.float64).reshape(-1, 3))
    ahead = depths[framed] if framed.any() else depths[depths > 0]
    distance = float(np.median(ahead)) if ahead.size else 1.0
    fy = float(view.K[1, 1])
    fov_y = float(np.degrees(2 * np.arctan(view.height / (2 * fy))))
    return HomeView(
        position=_triple(position), target=_triple(position + distance * forward), up=_triple(up), fov_y_deg=fov_y
    )


def _triple(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _thumbnail_view(data: Dataset) -> View:
    # The training view that frames most of the SfM points (not a close-up), turned towards their
    # robust centre; without points, the point all cameras look at stands for the scene.
    points = data.points if len(data.points) else focus_point(data)[None]
    return showcase.choose_view(data.train, points)
