from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from photosplat_libs.settings import ServiceSettings


class ViewerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_VIEWER_", extra="ignore")

    # Where browsers reach this service (through the gateway in a deployment); absolute links use it.
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
