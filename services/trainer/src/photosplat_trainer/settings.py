from __future__ import annotations

from pathlib import Path
from typing import Literal

from photosplat_libs.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class TrainerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_TRAINER_", extra="ignore")

    # How often a running job tells status it is alive (status's lease must be longer).
    heartbeat_seconds: float = 20.0
    # Where per-job scratch folders go (images, checkpoints, exports); the system temp dir if unset.
    work_dir: Path | None = None
    # Training backend: auto (CUDA when a GPU is visible), cpu or cuda.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Before consuming, train a few steps on a tiny scene so that the first job does not pay for
    # CUDA start-up and kernel compilation (seconds; nothing happens on the CPU).
    warm_up: bool = True
    # At most this much GPU memory (GiB) for this worker: two trainers sharing one card, or a big card
    # standing in for a smaller one. The Gaussian budget is sized from it. None: the whole card.
    gpu_memory_gib: float | None = None
    # At most this many training steps (the preset's schedule is scaled to fit): for CPU-only
    # machines and CI, where a full preset takes hours.
    max_steps: int | None = None
