"""Settings shared by every service. Each service subclasses :class:`ServiceSettings` with its own
env prefix (``PHOTOSPLAT_INGEST_``, ``PHOTOSPLAT_STATUS_``, ...) and creates it once in its
composition root. The defaults are the embedded adapters, so a bare start works on one machine."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = "data"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_", extra="ignore")

    # memory:// (embedded) or amqp://user:pass@host:5672/vhost
    bus_url: str = "memory://"
    # Prefix of every exchange and queue name: lets several deployments (or tests) share a broker.
    bus_namespace: str = ""
    # sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db
    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR}/photosplat.db"
    # file:///abs/path or s3://ACCESS:SECRET@host:9000/bucket?secure=false
    store_url: str = f"file:{DEFAULT_DATA_DIR}/objects"
    # Base URL clients use to reach the store (presigned URLs are signed for it).
    store_public_url: str | None = None
    # where a service with an HTTP API listens
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # "text" or "json" (one object per line with job_id, stage, attempt); unset: PHOTOSPLAT_LOG_FORMAT, else text.
    log_format: Literal["text", "json"] | None = None
    # A service without an HTTP API (a worker) serves /metrics, /healthz and /readyz on this port
    # (on ``host``); unset: none. HTTP services serve /metrics on their own port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    worker_name: str = Field(default="", description="defaults to host name + pid")
