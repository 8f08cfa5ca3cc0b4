"""Training parameters and their named presets.

``reference`` is the standard 3DGS recipe as gsplat's ``simple_trainer`` runs it by default (30k
steps, the default densification strategy, its learning rates, SH degree 3 raised one degree per
1000 steps, L1 + 0.2 SSIM). ``standard`` compresses that schedule so training ends within about a
minute on one H100; ``preview`` is the quickest viewable result.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from photosplat_trainer.dataset import RandomInit

Strategy = Literal["default", "mcmc"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 30_000
    seed: int = 42
    # Views rendered per step (one batched rasterisation; CUDA only, a CPU run is converted to one
    # view per step with the same number of images seen). Learning rates and Adam's betas are scaled
    # for the batch as simple_trainer does (lr x sqrt(B), betas 1 - B(1 - beta)).
    batch_size: int = 1
    # Images: the longer side is capped (None keeps the original size); every n-th image is held out.
    max_image_side: int | None = 1600
    test_every: int = 8
    # A CPU run has no hope at photo resolution: its images are capped harder, and its schedule is
    # scaled to at most this many steps, so the embedded demo on a 2-core machine ends in minutes.
    cpu_max_image_side: int = 160
    cpu_max_steps: int = 2000

    # Spherical harmonics: the degree in use grows by one every ``sh_degree_interval`` steps.
    sh_degree: int = 3
    sh_degree_interval: int = 1000

    # Initialisation from the SfM points (simple_trainer: opacity 0.1, scale = mean 3-NN distance).
    init_opacity: float = 0.1
    init_scale: float = 1.0
    # Scenes without 3D points (known poses, NeRF-synthetic): this many random Gaussians around the
    # point the cameras aim at, in a cube of half-side ``random_init_extent`` x the scene scale
    # (gsplat's ``init_type="random"``; 3DGS's NeRF-synthetic init is 100k points in a cube too) or
    # in the cameras' frusta (see dataset.random_points).
    random_init_points: int = 100_000
    random_init_extent: float = 0.5
    random_init: RandomInit = "cube"
    # Extra Gaussians on a far sphere, coloured from the photos, as this fraction of the SfM points:
    # SfM finds no points on sky or blank walls, and black there costs the short presets dearly.
    sky_points_fraction: float = 0.0

    # Adam learning rates (simple_trainer); ``means_lr`` is multiplied by the scene scale and decays
    # exponentially to ``means_lr_final_factor`` of itself by the last step.
    means_lr: float = 1.6e-4
    means_lr_final_factor: float = 0.01
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20

    # Loss: (1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM) + regularisers against floaters.
    ssim_lambda: float = 0.2
    opacity_reg: float = 0.0
    scale_reg: float = 0.0

    # Densification. "default" is 3DGS's clone/split/prune/reset (gsplat DefaultStrategy);
    # "mcmc" relocates a fixed budget of Gaussians (gsplat MCMCStrategy, CUDA only).
    strategy: Strategy = "default"
    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    grow_grad2d: float = 2e-4
    grow_scale3d: float = 0.01
    prune_opacity: float = 0.005
    prune_scale3d: float = 0.1
    # Rank Gaussians for growth by the absolute screen-space gradient (AbsGS): finer detail in
    # textured regions; its threshold is then ``grow_grad2d`` x 4 as gsplat recommends.
    absgrad: bool = False
    # Upper bound on the number of Gaussians (growth stops there); None: sized from free GPU memory.
    max_gaussians: int | None = None
    mcmc_noise_lr: float = 5e5

    # Rasterisation.
    antialiased: bool = False
    packed: bool = False
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    # Per-image affine colour correction (exposure / white balance), learned on training images.
    appearance: bool = False
    appearance_lr: float = 1e-3

    # Camera pose refinement: a learned correction per training view (translation + 6D rotation),
    # against small SfM pose errors; held-out views keep their SfM poses (as simple_trainer).
    pose_refine: bool = False
    pose_lr: float = 1e-5
    pose_reg: float = 1e-6

    # Bookkeeping: held-out evaluation every n steps (0: only at the end), checkpoints every n steps.
    eval_every: int = 0
    checkpoint_every: int = 2000
    progress_seconds: float = 2.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    def with_batch(self, batch_size: int) -> TrainConfig:
        """The same schedule in images seen, with ``batch_size`` views per step."""
        if batch_size == self.batch_size:
            return self
        factor = self.batch_size / batch_size
        scaled = self.scaled(factor)
        return dataclasses.replace(scaled, batch_size=batch_size, refine_every=max(1, round(self.refine_every * factor)))

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return with_overrides(cls(), **json.loads(text))

    def scaled(self, factor: float) -> TrainConfig:
        """The same recipe on a schedule ``factor`` times as long (as simple_trainer's steps_scaler,
        except ``refine_every``: gradient statistics need that many steps whatever the length)."""

        def s(n: int) -> int:
            return max(1, round(n * factor))

        return dataclasses.replace(
            self,
            steps=s(self.steps),
            sh_degree_interval=s(self.sh_degree_interval),
            refine_start=s(self.refine_start),
            refine_stop=s(self.refine_stop),
            reset_every=s(self.reset_every),
            checkpoint_every=s(self.checkpoint_every),
        )


_REFERENCE = TrainConfig()

PRESETS: dict[str, TrainConfig] = {
    "reference": _REFERENCE,
    # 14k views seen (under half of reference's 30k) as 3500 steps of 4 views, MCMC densification
    # (a fixed budget of Gaussians relocated from dead ones, with opacity and scale regularisation,
    # as simple_trainer's --strategy mcmc), sky points for the background SfM never reconstructs,
    # antialiased. Measured against `reference` on buddha in docs/benchmarks.md (target: reference's
    # held-out PSNR within 0.1 dB in <= 60 s on an H100).
    "standard": dataclasses.replace(
        _REFERENCE,
        steps=3500,
        batch_size=4,
        sh_degree_interval=250,
        strategy="mcmc",
        max_gaussians=400_000,
        init_opacity=0.5,
        init_scale=0.1,
        opacity_reg=0.01,
        scale_reg=0.01,
        refine_start=250,
        refine_stop=1750,
        refine_every=25,
        reset_every=750,
        antialiased=True,
        sky_points_fraction=0.1,
        checkpoint_every=500,
    ),
}


# Quick look: the standard recipe on 4k views seen, smaller images, degree-1 colours.
PRESETS["preview"] = dataclasses.replace(
    PRESETS["standard"],
    steps=1000,
    sh_degree=1,
    max_gaussians=200_000,
    refine_start=100,
    refine_stop=600,
    reset_every=1_000_000,
    max_image_side=1000,
)


def preset(name: str, **overrides: Any) -> TrainConfig:
    """The named preset with ``overrides`` applied (unknown names raise ``ValueError``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return with_overrides(PRESETS[name], **overrides)


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
    if "background" in overrides:
        overrides["background"] = tuple(float(v) for v in overrides["background"])
    return dataclasses.replace(config, **overrides)


