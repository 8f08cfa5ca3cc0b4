"""Where SOG's round trip loses PSNR, and what the encoder's choices within the format buy.

Trains one scene with a preset (GPU), then scores on the held-out views: the trained set, SPZ's
round trip (the yardstick of a lossy web format), SOG's round trip with each encoder variant, and
the trained set with one attribute at a time taken from the SOG file (which attribute costs what).
Prints a Markdown table (PSNR, drop from the trained set, bytes per Gaussian).

    python services/trainer/bench/bench_sog.py /tmp/object --preset standard --json $OUT/sog.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path


ATTRIBUTES = ("means", "log_scales", "quats", "opacity_logits", "sh0", "shN")
# The attribute-at-a-time rows take attributes from this variant's file: a reoriented Gaussian's
# rotation and scales only make sense together.
HYBRIDS_FROM = "sog, frames as trained"
VARIANTS = {
    "sog (default)": {},
    "sog, frames as trained": {"reorient": False},
    "sog, palette unweighted": {"palette_weighted": False},
    "sog, palette 1 per 16": {"gaussians_per_palette_entry": 16},
    "sog, palette 1 per 4": {"gaussians_per_palette_entry": 4},
}


def _rows(g, score, out: Path) -> list[dict]:
    from photosplat_trainer.export.ply import write_ply
    from photosplat_trainer.export.sog import SogOptions, decode_sog, encode_sog, spatial_order
    from photosplat_trainer.export.spz import read_spz, write_spz

    n = len(g)
    base = score(g)
    ply, spz = write_ply(g, out / "scene.ply"), write_spz(g, out / "scene.spz")
    rows = [
        {"what": "trained set (PLY)", "psnr": base, "bytes_per_gaussian": ply.stat().st_size / n},
        {"what": "spz", "psnr": score(read_spz(spz)), "bytes_per_gaussian": spz.stat().st_size / n},
    ]
    backs = {}
    for label, options in VARIANTS.items():
        started = time.monotonic()
        data = encode_sog(g, SogOptions(**options))
        seconds = time.monotonic() - started
        backs[label] = decode_sog(data)
        rows.append({"what": label, "psnr": score(backs[label]), "bytes_per_gaussian": len(data) / n, "encode_seconds": seconds})
    ordered = g.subset(spatial_order(g.means))
    for attribute in ATTRIBUTES:
        hybrid = dataclasses.replace(ordered, **{attribute: getattr(backs[HYBRIDS_FROM], attribute)})
        rows.append({"what": f"trained set, {attribute} from {HYBRIDS_FROM}", "psnr": score(hybrid)})
    for row in rows:
        row["drop_db"] = base - row["psnr"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scene", type=Path)
    p.add_argument("--preset", default="standard")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", type=Path)
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of the script on a small scene")
    p.add_argument("--steps", type=int, help="override the preset's steps")
    args = p.parse_args()

    from photosplat_trainer.dataset import load_scene
    from photosplat_trainer.evaluation import evaluate_gaussians
    from photosplat_trainer.pipeline import run_pipeline

    out = Path(tempfile.mkdtemp(prefix="bench-sog-"))
    overrides = {"seed": args.seed, "checkpoint_every": 0} | ({"steps": args.steps} if args.steps else {})
    trained = run_pipeline(args.scene, out, preset_name=args.preset, device=args.device, overrides=overrides)
    cfg = trained.config
    from photosplat_trainer.backends import select_backend

    backend = select_backend(args.device)
    data = load_scene(args.scene, max_image_side=cfg.max_image_side, test_every=cfg.test_every, background=cfg.background)
    test = [v.to(backend.device) for v in data.test]
    rows = _rows(trained.gaussians, lambda g: evaluate_gaussians(g, test, backend, cfg)[0], out)
    print(f"\n{args.scene.name}, {args.preset}, {len(trained.gaussians)} Gaussians, {len(test)} held-out views")
    print("| what | held-out PSNR | drop dB | B/Gaussian | encode s |\n|---|---|---|---|---|")
    for r in rows:
        b = f"{r['bytes_per_gaussian']:.1f}" if "bytes_per_gaussian" in r else ""
        e = f"{r['encode_seconds']:.1f}" if "encode_seconds" in r else ""
        print(f"| {r['what']} | {r['psnr']:.2f} | {r['drop_db']:.2f} | {b} | {e} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
