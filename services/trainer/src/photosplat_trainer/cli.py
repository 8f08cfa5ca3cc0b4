"""``photosplat train SFM_DIR --out DIR --preset P``: train locally from an undistorted SfM folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from photosplat_trainer.config import PRESETS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="photosplat train", description="Train a Gaussian Splatting scene from an SfM folder.")
    p.add_argument(
        "sfm_dir", type=Path,
        help="folder with images/ and sparse/ (undistorted, PINHOLE), or a NeRF-synthetic folder (transforms_train.json)",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for scene.ply/.splat/.spz, thumbnail and JSON")
    p.add_argument("--preset", default="standard", choices=sorted(PRESETS))
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--steps", type=int, default=None, help="train this many steps (the schedule is scaled)")
    p.add_argument("--max-image-side", type=int, default=None, help="downscale images to this longer side")
    p.add_argument("--gpu-memory-gib", type=float, default=None, help="use at most this much GPU memory (e.g. 24 for a 24 GB card)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from photosplat_trainer.pipeline import run_pipeline
    from photosplat_trainer.train import Callbacks, Progress

    def show(p: Progress) -> None:
        held_out = f"  held-out {p.eval_psnr:.2f} dB" if p.eval_psnr is not None else ""
        print(
            f"\rstep {p.step}/{p.steps}  loss {p.loss:.4f}  PSNR {p.psnr:.2f} dB{held_out}  "
            f"{p.gaussians} Gaussians  ETA {p.eta_seconds:.0f} s   ",
            end="",
            flush=True,
        )

    def log(line: str) -> None:
        print(f"\n{line}" if line else "", flush=True)

    if args.gpu_memory_gib is not None:
        from photosplat_trainer.backends.cuda import limit_gpu_memory

        limit_gpu_memory(args.gpu_memory_gib)
    overrides = {} if args.max_image_side is None else {"max_image_side": args.max_image_side}
    started = time.monotonic()
    out = run_pipeline(
        args.sfm_dir,
        args.out,
        preset_name=args.preset,
        overrides=overrides,
        device=args.device,
        steps=args.steps,
        callbacks=Callbacks(progress=show, log=log),
    )
    print()
    psnr = "n/a" if out.psnr is None else f"{out.psnr:.2f} dB"
    ssim = "n/a" if out.ssim is None else f"{out.ssim:.4f}"
    print(f"{len(out.gaussians)} Gaussians, held-out PSNR {psnr}, SSIM {ssim}, {time.monotonic() - started:.0f} s")
    for e in out.exports:
        rt = "" if e.psnr is None else f"  (PSNR after reload {e.psnr:.2f} dB)"
        print(f"  {e.path}  {e.bytes / 1e6:.2f} MB{rt}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
