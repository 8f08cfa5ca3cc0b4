from __future__ import annotations

from pathlib import Path

from photosplat_libs.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class ColmapSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_COLMAP_", extra="ignore")

    # How often a running job tells status it is alive (status's lease must be longer).
    heartbeat_seconds: float = 20.0
    # Where per-job scratch folders go (images, database, models); the system temp dir if unset.
    work_dir: Path | None = None
