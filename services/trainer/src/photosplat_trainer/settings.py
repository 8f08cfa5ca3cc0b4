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
    # At most this many training steps (the preset's schedule is scaled to fit): for CPU-only
    # machines and CI, where a full preset takes hours.
    max_steps: int | None = None
