"""GPU benchmark of the trainer presets beside the yardstick (a plain gsplat loop, plain_gsplat.py),
on the same scenes in the same run. Prints a Markdown table per scene: held-out PSNR/SSIM (mean and
spread over ``--repeat`` runs with different seeds), training seconds, everything else the pipeline
does (load, prune, exports with their round trips, thumbnail), peak GPU memory, and the ratios to
the plain loop's 7k-step row.

Scenes are folders the trainer reads: an undistorted COLMAP folder (``images/`` + ``sparse/``) or a
NeRF-synthetic folder (``transforms_train.json``). ``prepare-object`` renders a NeRF-synthetic-like
object scene with our ray caster (boxes on a transparent background, cameras over the upper
hemisphere):

    python services/trainer/bench/bench_train.py prepare-object --out /tmp/object --size 800 --views 125
    python services/trainer/bench/bench_train.py run /tmp/object SFM/undistorted \
        --presets plain standard reference --repeat 3 --json $OUT/bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # plain_gsplat beside this script


def prepare_object(out: Path, views: int, size: int, test_every: int, processes: int) -> None:
    from photosplat_testkit.synthetic import render_scene, write_blender_dataset

    scene = render_scene(n_views=views, width=size, height=size, n_points=1000, seed=7, object_only=True, processes=processes)
    write_blender_dataset(scene, out, test_every=test_every)


def run_ours(scene: Path, preset_name: str, seed: int, overrides: dict, steps: int | None, device: str = "cuda") -> dict:
    import torch
    from photosplat_trainer.pipeline import run_pipeline

    out = Path(tempfile.mkdtemp(prefix=f"bench-{preset_name}-"))
    started = time.monotonic()
    result = run_pipeline(
        scene, out, preset_name=preset_name, device=device, steps=steps,
        overrides={"seed": seed, "checkpoint_every": 0, **overrides},
    )
    wall = time.monotonic() - started
    torch.cuda.empty_cache()
    spz = next((e for e in result.exports if e.format == "spz"), None)
    return {
        "train_seconds": result.result.train_seconds,
        "other_seconds": wall - result.result.train_seconds,
        "wall_seconds": wall,
        "stages": result.stage_seconds,
        "psnr": result.psnr,
        "ssim": result.ssim,
        "gaussians": len(result.gaussians),
        "steps": f"{result.config.steps} x {result.config.batch_size}",
        "peak_gpu_gib": max(result.stage_peak_gpu_bytes.values(), default=0) / 2**30,
        "exports": {e.format: {"mb": e.bytes / 1e6, "psnr": e.psnr} for e in result.exports},
        "history": [list(h) for h in result.result.history],
        "spz_drop_db": None if spz is None or spz.psnr is None or result.psnr is None else result.psnr - spz.psnr,
    }


def run_plain(scene: Path, seed: int, stop_at: tuple[int, ...]) -> list[dict]:
    from photosplat_trainer.dataset import is_blender, load_scene
    from plain_gsplat import train_plain

    background = (1.0, 1.0, 1.0) if is_blender(scene) else (0.0, 0.0, 0.0)
    started = time.monotonic()
    data = load_scene(scene, max_image_side=1600, background=background)
    loaded = time.monotonic() - started
    rows = train_plain(data, stop_at=stop_at, seed=seed, background=background)
    for row in rows:
        row["other_seconds"] = loaded
        row["steps"] = f"{row['steps']} x 1"
    return rows


def summarize(rows: list[dict]) -> dict:
    def stat(key: str) -> tuple[float, float]:
        values = [r[key] for r in rows if r.get(key) is not None]
        if not values:
            return float("nan"), 0.0
        return statistics.fmean(values), (max(values) - min(values)) / 2

    return {k: stat(k) for k in ("psnr", "ssim", "train_seconds", "other_seconds", "gaussians", "peak_gpu_gib", "spz_drop_db")}


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    lines = []
    for scene, by_label in results.items():
        base = summarize(by_label["plain 7k"]) if "plain 7k" in by_label else None
        lines += [
            f"\n{scene}",
            "| run | steps x views | runs | held-out PSNR | SSIM | train s | other s | Gaussians | peak GPU GiB | SPZ drop dB | PSNR - plain 7k | train time / plain 7k | s to plain-7k PSNR |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, rows in by_label.items():
            s = summarize(rows)
            vs = "" if base is None else f"{s['psnr'][0] - base['psnr'][0]:+.2f} | {s['train_seconds'][0] / base['train_seconds'][0]:.2f}"
            drop = "" if s["spz_drop_db"][0] != s["spz_drop_db"][0] else f"{s['spz_drop_db'][0]:.2f}"
            lines.append(
                f"| {label} | {rows[0]['steps']} | {len(rows)} | {s['psnr'][0]:.2f} ± {s['psnr'][1]:.2f} | {s['ssim'][0]:.4f} | "
                f"{s['train_seconds'][0]:.1f} ± {s['train_seconds'][1]:.1f} | {s['other_seconds'][0]:.1f} | {s['gaussians'][0]:.0f} | "
                f"{s['peak_gpu_gib'][0]:.2f} | {drop} | {vs} | {_reach(rows, base)} |"
            )
    return "\n".join(lines)


def _reach(rows: list[dict], base: dict | None) -> str:
    """Mean training seconds until the held-out PSNR first reached the plain 7k mean (needs
    ``--set eval_every=N``)."""
    if base is None or not all(r.get("history") for r in rows):
        return ""
    target = base["psnr"][0]
    times = [next((sec for _step, sec, p, _s in r["history"] if p >= target), None) for r in rows]
    if any(t is None for t in times):
        return "not reached"
    return f"{statistics.fmean(times):.1f}"


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare-object")
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--views", type=int, default=125)
    prep.add_argument("--size", type=int, default=800)
    prep.add_argument("--test-every", type=int, default=5)
    prep.add_argument("--processes", type=int, default=1)
    run = sub.add_parser("run")
    run.add_argument("scenes", type=Path, nargs="+")
    run.add_argument("--presets", nargs="+", default=["plain", "standard"], help="'plain' is the yardstick loop")
    run.add_argument("--plain-steps", type=int, nargs="+", default=[7000], help="where the plain loop is evaluated")
    run.add_argument("--repeat", type=int, default=1, help="runs per preset (seeds 42, 43, ...)")
    run.add_argument("--steps", type=int, help="our presets' schedule scaled to this many steps")
    run.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="config overrides for a variant")
    run.add_argument("--label", default="", help="appended to the preset's name in the table")
    run.add_argument("--json", type=Path)
    run.add_argument("--device", default="cuda", help="cpu: a smoke test of the script, not a benchmark")
    args = p.parse_args()
    if args.cmd == "prepare-object":
        prepare_object(args.out, args.views, args.size, args.test_every, args.processes)
        return
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    results: dict[str, dict[str, list[dict]]] = {}
    for scene in args.scenes:
        by_label = results.setdefault(scene.name, {})
        for name in args.presets:
            for i in range(args.repeat):
                seed = 42 + i
                if name == "plain":
                    for row in run_plain(scene, seed, tuple(args.plain_steps)):
                        by_label.setdefault(f"plain {row['steps'].split()[0][:-3]}k", []).append(row)
                        print(json.dumps({"scene": scene.name, "run": "plain", **row}), flush=True)
                else:
                    row = run_ours(scene, name, seed, overrides, args.steps, args.device)
                    by_label.setdefault(name + args.label, []).append(row)
                    print(json.dumps({"scene": scene.name, "run": name + args.label, **row}), flush=True)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
