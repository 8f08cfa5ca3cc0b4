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
    from photosplat_trainer.train import Callbacks

    out = Path(tempfile.mkdtemp(prefix=f"bench-{preset_name}-"))
    started = time.monotonic()
    result = run_pipeline(
        scene, out, preset_name=preset_name, device=device, steps=steps,
        overrides={"seed": seed, "checkpoint_every": 0, **overrides},
        callbacks=Callbacks(log=lambda line: print(f"  [{preset_name}] {line}", flush=True) if line else None),
    )
    wall = time.monotonic() - started
    torch.cuda.empty_cache()
    def drop(fmt: str) -> float | None:
        e = next((e for e in result.exports if e.format == fmt), None)
        return None if e is None or e.psnr is None or result.psnr is None else result.psnr - e.psnr

    return {
        "train_seconds": result.result.train_seconds,
        "other_seconds": wall - result.result.train_seconds,
        "wall_seconds": wall,
        "stages": result.stage_seconds,
        "psnr": result.psnr,
        "psnr_before_pruning": result.result.psnr,
        "ssim": result.ssim,
        "gaussians": len(result.gaussians),
        "steps": f"{result.config.steps} x {result.config.batch_size}",
        "peak_gpu_gib": max(result.stage_peak_gpu_bytes.values(), default=0) / 2**30,
        "exports": {e.format: {"mb": e.bytes / 1e6, "psnr": e.psnr} for e in result.exports},
        "history": [list(h) for h in result.result.history],
        "spz_drop_db": drop("spz"),
        "sog_drop_db": drop("sog"),
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

    keys = ("psnr", "psnr_before_pruning", "ssim", "train_seconds", "other_seconds", "gaussians", "peak_gpu_gib", "spz_drop_db", "sog_drop_db")
    return {k: stat(k) for k in keys}


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    lines = []
    for scene, by_label in results.items():
        base = summarize(by_label["plain 7k"]) if "plain 7k" in by_label else None
        lines += [
            f"\n{scene}",
            "| run | steps x views | runs | held-out PSNR | before pruning | SSIM | train s | other s | Gaussians | peak GPU GiB "
            "| SPZ drop dB | SOG drop dB | PSNR - plain 7k | train time / plain 7k | s to plain-7k PSNR |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, rows in by_label.items():
            s = summarize(rows)
            vs = "" if base is None else f"{s['psnr'][0] - base['psnr'][0]:+.2f} | {s['train_seconds'][0] / base['train_seconds'][0]:.2f}"
            lines.append(
                f"| {label} | {rows[0]['steps']} | {len(rows)} | {s['psnr'][0]:.2f} ± {s['psnr'][1]:.2f} | {_opt(s['psnr_before_pruning'])} | "
                f"{s['ssim'][0]:.4f} | {s['train_seconds'][0]:.1f} ± {s['train_seconds'][1]:.1f} | {s['other_seconds'][0]:.1f} | "
                f"{s['gaussians'][0]:.0f} | {s['peak_gpu_gib'][0]:.2f} | {_opt(s['spz_drop_db'])} | {_opt(s['sog_drop_db'])} | "
                f"{vs} | {_reach(rows, base)} |"
            )
    return "\n".join(lines)


def _opt(stat: tuple[float, float]) -> str:
    """A mean that only some rows have (NaN when none has it)."""
    return "" if stat[0] != stat[0] else f"{stat[0]:.2f}"


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


def merge_results(files: list[Path]) -> dict[str, dict[str, list[dict]]]:
    merged: dict[str, dict[str, list[dict]]] = {}
    for f in files:
        for scene, by_label in json.loads(f.read_text()).items():
            for label, rows in by_label.items():
                merged.setdefault(scene, {}).setdefault(label, []).extend(rows)
    for by_label in merged.values():  # the yardstick rows first, as a single run prints them
        order = sorted(by_label, key=lambda label: (not label.startswith("plain"), label))
        by_label_sorted = {label: by_label[label] for label in order}
        by_label.clear()
        by_label.update(by_label_sorted)
    return merged


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
    run.add_argument("--first-seed", type=int, default=42, help="seed of the first run (parallel runs split the seeds)")
    run.add_argument("--steps", type=int, help="our presets' schedule scaled to this many steps")
    run.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="config overrides for a variant")
    run.add_argument("--label", default="", help="appended to the preset's name in the table")
    run.add_argument("--json", type=Path)
    run.add_argument("--device", default="cuda", help="cpu: a smoke test of the script, not a benchmark")
    run.add_argument("--no-warm-up", action="store_true", help="let the first run pay the GPU's one-time costs")
    run.add_argument("--gpu-memory-gib", type=float, help="limit GPU memory, as on a smaller card")
    merge = sub.add_parser("table", help="one table from the --json files of several runs (e.g. run in parallel)")
    merge.add_argument("files", type=Path, nargs="+")
    args = p.parse_args()
    if args.cmd == "table":
        print(table(merge_results(args.files)))
        return
    if args.cmd == "prepare-object":
        prepare_object(args.out, args.views, args.size, args.test_every, args.processes)
        return
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.gpu_memory_gib:
        from photosplat_trainer.backends.cuda import limit_gpu_memory

        limit_gpu_memory(args.gpu_memory_gib)
    if args.device == "cuda" and not args.no_warm_up:
        # As the trainer worker and `photosplat reconstruct` do before a job: the GPU's one-time
        # costs (CUDA start, gsplat's kernels, Triton's SSIM) are not the first run's "other".
        from photosplat_trainer.warmup import warm_up

        print(f"warm-up: {warm_up(next((n for n in args.presets if n != 'plain'), 'standard')):.1f} s", flush=True)
    results: dict[str, dict[str, list[dict]]] = {}
    for scene in args.scenes:
        by_label = results.setdefault(scene.name, {})
        for name in args.presets:
            for i in range(args.repeat):
                seed = args.first_seed + i
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
