"""GPU benchmark of the trainer presets: a table per scene of ms/step, time to reach the reference
preset's held-out PSNR, final PSNR/SSIM, Gaussians, peak GPU memory and total job time.

Two steps, because the GPU machine has no pycolmap:

    # here (pycolmap installed): COLMAP folder or synthetic scene -> images/ + scene.json
    python services/trainer/bench/bench_train.py prepare --colmap .bench-data/buddha --out .bench-data/p/buddha
    python services/trainer/bench/bench_train.py prepare --synthetic --out .bench-data/p/synthetic
    # there:
    python services/trainer/bench/bench_train.py run .bench-data/p/buddha .bench-data/p/synthetic \
        --presets reference standard preview --json $OUT/bench.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np


def prepare_colmap(src: Path, out: Path) -> None:
    from photosplat_trainer.dataset import read_colmap

    cameras, points, colors = read_colmap(src)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for cam in cameras:
        shutil.copy(src / "images" / cam.name, out / "images" / cam.name)
    _write_scene(out, [(c.name, c.K, c.cam_from_world, c.width, c.height) for c in cameras], points, colors)


def prepare_synthetic(out: Path, views: int, width: int, height: int) -> None:
    from photosplat_libs.synthetic import render_scene, write_images

    scene = render_scene(n_views=views, width=width, height=height, n_points=40_000, seed=3)
    write_images(scene, out / "images", exif_focal=False)
    cams = [(n, scene.K, P, scene.width, scene.height) for n, P in zip(scene.names, scene.cams_from_world, strict=True)]
    _write_scene(out, cams, scene.points, scene.colors.astype(np.float32) / 255.0)


def _write_scene(out: Path, cams: list, points: np.ndarray, colors: np.ndarray) -> None:
    doc = {
        "cameras": [
            {"name": n, "K": np.asarray(K).tolist(), "cam_from_world": np.asarray(P).tolist(), "width": w, "height": h}
            for n, K, P, w, h in cams
        ],
        "points": np.asarray(points, np.float32).round(5).tolist(),
        "colors": np.asarray(colors, np.float32).round(4).tolist(),
    }
    (out / "scene.json").write_text(json.dumps(doc))


def load_prepared(folder: Path, max_image_side: int | None):
    from photosplat_trainer.dataset import Camera, build_dataset

    doc = json.loads((folder / "scene.json").read_text())
    cams = [Camera(c["name"], np.array(c["K"]), np.array(c["cam_from_world"]), c["width"], c["height"]) for c in doc["cameras"]]
    return build_dataset(cams, folder / "images", np.array(doc["points"]), np.array(doc["colors"]), max_image_side=max_image_side)


def run_one(folder: Path, preset_name: str, eval_every: int, out_dir: Path, device: str, overrides: dict) -> dict:
    import torch
    from photosplat_trainer.backends import select_backend
    from photosplat_trainer.config import preset, with_overrides
    from photosplat_trainer.export import export_all
    from photosplat_trainer.pipeline import prune_for_export
    from photosplat_trainer.train import evaluate_gaussians, train_with_oom_retry

    backend = select_backend(device)
    cfg = with_overrides(preset(preset_name), eval_every=eval_every, checkpoint_every=0)
    if "batch" in overrides:
        cfg = cfg.with_batch(overrides.pop("batch"))
        cfg = with_overrides(cfg, eval_every=max(1, eval_every // cfg.batch_size))
    if "steps" in overrides:
        cfg = cfg.scaled(overrides.pop("steps") / cfg.steps)
    cfg = with_overrides(cfg, **overrides)
    started = time.monotonic()
    data = load_prepared(folder, cfg.max_image_side)
    result, cfg = train_with_oom_retry(data, cfg, backend)
    pruning = prune_for_export(result.gaussians, data, cfg)
    pruned = pruning.gaussians
    exports = export_all(pruned, out_dir / f"{folder.name}-{preset_name}")
    total = time.monotonic() - started
    psnr, ssim = evaluate_gaussians(pruned, data.test, backend, cfg)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {
        "scene": folder.name,
        "preset": preset_name,
        "steps": result.steps,
        "batch": cfg.batch_size,
        "image": f"{data.train[0].width}x{data.train[0].height}",
        "views": f"{len(data.train)}/{len(data.test)}",
        "ms_per_step": 1000 * result.train_seconds / result.steps,
        "train_seconds": result.train_seconds,
        "psnr_trained": result.psnr,
        "psnr": psnr,
        "ssim": ssim,
        "gaussians": len(pruned),
        "pruned": pruning.counts,
        "peak_gpu_gib": result.peak_memory_bytes / 2**30,
        "total_seconds": total,
        "history": result.history,
        "export_mb": {e.format: e.bytes / 1e6 for e in exports},
    }


def profile(folder: Path, preset_name: str, steps: int, batch: int | None, device: str) -> str:
    """Where a training step's time goes: torch.profiler over 40 steps after ``steps - 40`` warm ones."""
    import torch
    from torch.profiler import ProfilerActivity, schedule

    from photosplat_trainer.backends import select_backend
    from photosplat_trainer.config import preset, with_overrides
    from photosplat_trainer.train import Callbacks, train

    backend = select_backend(device)
    cfg = preset(preset_name)
    if batch:
        cfg = cfg.with_batch(batch)
    cfg = with_overrides(cfg, steps=steps, checkpoint_every=0, eval_every=0)
    data = load_prepared(folder, cfg.max_image_side)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if backend.name == "cuda" else [])
    with torch.profiler.profile(activities=activities, schedule=schedule(wait=steps - 41, warmup=1, active=40)) as prof:
        result = train(data, cfg, backend, Callbacks(check_cancelled=prof.step))
    sort = "self_cuda_time_total" if backend.name == "cuda" else "self_cpu_time_total"
    head = f"{folder.name} {preset_name} batch {cfg.batch_size}: {1000 * result.train_seconds / steps:.2f} ms/step over {steps} steps"
    return head + "\n" + prof.key_averages().table(sort_by=sort, row_limit=30, max_name_column_width=60)


def time_to_reach(history: list, target: float) -> float | None:
    for _step, seconds, psnr, _ssim in history:
        if psnr >= target - 0.1:
            return seconds
    return None


def table(rows: list[dict]) -> str:
    lines = []
    for scene in dict.fromkeys(r["scene"] for r in rows):
        rs = [r for r in rows if r["scene"] == scene]
        ref = next((r["psnr_trained"] for r in rs if r["preset"] == "reference"), None)
        lines += [
            f"\n{scene} ({rs[0]['image']}, train/test views {rs[0]['views']}); reference PSNR "
            + (f"{ref:.2f} dB" if ref else "n/a"),
            "| preset | steps x batch | ms/step | train s | to ref PSNR-0.1 s | PSNR | SSIM | Gaussians | peak GPU GiB | total s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rs:
            reach = time_to_reach(r["history"], ref) if ref else None
            lines.append(
                f"| {r['preset']} | {r['steps']} x {r.get('batch', 1)} | {r['ms_per_step']:.1f} | {r['train_seconds']:.1f} | "
                + ("not reached" if reach is None else f"{reach:.1f}")
                + f" | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['gaussians']} | {r['peak_gpu_gib']:.2f} | {r['total_seconds']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare")
    prep.add_argument("--colmap", type=Path)
    prep.add_argument("--synthetic", action="store_true")
    prep.add_argument("--views", type=int, default=40)
    prep.add_argument("--size", type=int, nargs=2, default=(640, 480))
    prep.add_argument("--out", type=Path, required=True)
    prof = sub.add_parser("profile")
    prof.add_argument("scene", type=Path)
    prof.add_argument("--preset", default="standard")
    prof.add_argument("--steps", type=int, default=600)
    prof.add_argument("--batch", type=int)
    prof.add_argument("--device", default="cuda")
    run = sub.add_parser("run")
    run.add_argument("scenes", type=Path, nargs="+")
    run.add_argument("--presets", nargs="+", default=["reference", "standard", "preview"])
    run.add_argument("--eval-every", type=int, default=500)
    run.add_argument("--json", type=Path)
    run.add_argument("--exports", type=Path, default=Path("/tmp/bench-exports"))
    run.add_argument("--device", default="cuda")
    run.add_argument("--steps", type=int, help="smoke tests: scale every preset to this many steps")
    run.add_argument("--batch", type=int, help="views per step (the preset's schedule kept in images seen)")
    run.add_argument("--max-image-side", type=int, help="smoke tests: smaller images")
    run.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="config overrides for a variant")
    run.add_argument("--label", default="", help="appended to the preset's name in the table")
    args = p.parse_args()
    if args.cmd == "prepare":
        if args.synthetic:
            prepare_synthetic(args.out, args.views, *args.size)
        else:
            prepare_colmap(args.colmap, args.out)
        return
    if args.cmd == "profile":
        print(profile(args.scene, args.preset, args.steps, args.batch, args.device))
        return
    rows = []
    for scene in args.scenes:
        for name in args.presets:
            overrides: dict = {"steps": args.steps} if args.steps else {}
            if args.batch:
                overrides["batch"] = args.batch
            if args.max_image_side:
                overrides["max_image_side"] = args.max_image_side
            overrides.update({k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)})
            row = run_one(scene, name, args.eval_every, args.exports, args.device, overrides)
            row["preset"] += args.label
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
