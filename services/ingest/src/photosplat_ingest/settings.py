from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from photosplat_libs.settings import ServiceSettings

MIB = 1024 * 1024


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_INGEST_", extra="ignore")

    # Base URL clients use to reach this deployment: status and viewer links are built from it.
    public_base_url: str = "http://127.0.0.1:8000"

    max_file_bytes: int = Field(default=50 * MIB, ge=1)
    max_pixels: int = Field(default=120_000_000, ge=1)
    min_side: int = Field(default=100, ge=1)
    # SfM cannot triangulate anything from fewer than three views.
    min_files: int = Field(default=3, ge=1)
    max_files: int = Field(default=1000, ge=1)
    # One multipart POST /recon/jobs; Starlette spools its files to disk before we see them, so an
    # uncapped body could fill the disk. Larger sets use the presigned uploads.
    max_request_bytes: int = Field(default=1024 * MIB, ge=1)

    # Presigned upload URLs live at most 15 minutes (DESIGN §6: short-lived).
    upload_url_ttl_seconds: int = Field(default=900, ge=30, le=900)
    # Signs the folder store's upload URLs; empty: a random one per process (enough when the
    # process that signs is the one that serves the uploads, as in embedded mode).
    upload_signing_secret: str = ""
    # Full decodes running at once in this process: each may hold a max_pixels RGB image in memory.
    decode_concurrency: int = Field(default=2, ge=1)

    def public_url(self, path: str) -> str:
        return self.public_base_url.rstrip("/") + path
