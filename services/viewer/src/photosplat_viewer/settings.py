from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from photosplat_libs.settings import ServiceSettings

def _default_assets_dir() -> Path | None:
    """``web/node_modules`` of the working folder (``scripts/run`` and the tests run from the
    repository, where ``npm ci --prefix web`` put them); an installed package is told where they are
    (PHOTOSPLAT_VIEWER_ASSETS_DIR, as the image does), never guessed from where the code lies."""
    candidate = Path.cwd() / "web" / "node_modules"
    return candidate if candidate.is_dir() else None


class ViewerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_VIEWER_", extra="ignore")

    # Where browsers reach this service (through the gateway in a deployment); absolute links use it.
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    # The installed front-end packages (three, @sparkjsdev/spark): a node_modules folder. None: the
    # pages still work, the 3D viewer says its files are missing.
    assets_dir: Path | None = Field(default_factory=_default_assets_dir)
    # Origins the upload page may send photos to besides its own (the object store's public URL
    # when presigned URLs point at S3/MinIO rather than this origin), for the Content-Security-Policy.
    upload_origins: list[str] = Field(default_factory=list)
    # The other services' API descriptions (name -> URL of its /openapi.json on the inside network),
    # merged with this one's into /openapi.json and /docs. Empty in `photosplat up`: its one app has
    # every route.
    api_specs: dict[str, str] = Field(default_factory=dict)
    api_spec_timeout_seconds: float = Field(default=3.0, gt=0)
