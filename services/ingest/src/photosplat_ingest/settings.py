from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from photosplat_libs.settings import ServiceSettings

MIB = 1024 * 1024
GIB = 1024 * MIB


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_INGEST_", extra="ignore")

    # Base URL clients use to reach this deployment: status and viewer links are built from it.
    public_base_url: str = "http://127.0.0.1:8000"

    max_file_bytes: int = Field(default=50 * MIB, ge=1)
    # Checked from the header before any pixel is decoded. A decode holds about one copy of the
    # pixels (4 bytes each for RGB): 64 MP (61 MP full-frame bodies fit) costs ~260 MB.
    max_pixels: int = Field(default=64_000_000, ge=1)
    min_side: int = Field(default=100, ge=1)
    # SfM cannot triangulate anything from fewer than three views.
    min_files: int = Field(default=3, ge=1)
    max_files: int = Field(default=1000, ge=1)
    # One multipart POST /recon/jobs; Starlette spools its files to disk before we see them, so an
    # uncapped body could fill the disk. Larger sets use the presigned uploads.
    max_request_bytes: int = Field(default=1024 * MIB, ge=1)
    # A video sent instead of photos (one file; larger than a multipart request only through the
    # presigned uploads). The colmap stage decodes every frame: 4K for 5 minutes is the most.
    max_video_bytes: int = Field(default=2 * GIB, ge=1)
    min_video_seconds: float = Field(default=2.0, gt=0)
    max_video_seconds: float = Field(default=300.0, gt=0)
    min_video_side: int = Field(default=240, ge=1)
    max_video_pixels: int = Field(default=4096 * 2160, ge=1)

    # Presigned upload URLs live at most 15 minutes (short-lived), each good for exactly the
    # declared size and type of its one file.
    upload_url_ttl_seconds: int = Field(default=900, ge=30, le=900)
    # How long a presigned-upload job waits for its submit. Then what was uploaded is swept and a
    # submit answers 410; a submitted job's leftover uploads go as soon as its URLs have expired.
    upload_ttl_seconds: int = Field(default=3600, ge=30)
    upload_sweep_interval_seconds: float = Field(default=300.0, gt=0)
    # Signs the folder store's upload URLs; empty: a random one per process (enough when the
    # process that signs is the one that serves the uploads, as in embedded mode).
    upload_signing_secret: str = ""
    # Full decodes running at once in this process (a thread pool of this size): each holds up to
    # ~4 bytes x max_pixels, so decode memory stays under decode_concurrency x that.
    decode_concurrency: int = Field(default=2, ge=1)

    # Rate limits on creating jobs (0: no such limit), counted in the database so that every
    # replica sees the same numbers. Per client: the owner token a request carries, else its
    # address (an IPv6 one by its /64, which one subscriber usually holds whole); globally: all
    # clients together. Unfinished jobs are those not yet DONE, FAILED or CANCELLED (a declared
    # upload counts until its upload window closes). A request with an API key (X-API-Key) is not
    # limited, though its jobs count towards the global numbers.
    client_jobs_per_hour: int = Field(default=10, ge=0)
    client_unfinished_jobs: int = Field(default=3, ge=0)
    client_upload_bytes_per_day: int = Field(default=5 * GIB, ge=0)
    global_jobs_per_hour: int = Field(default=100, ge=0)
    global_unfinished_jobs: int = Field(default=30, ge=0)
    global_upload_bytes_per_day: int = Field(default=100 * GIB, ge=0)
    # The Retry-After of a refusal for unfinished jobs: it ends when a job does, at no known time.
    unfinished_retry_after_seconds: int = Field(default=60, ge=1)
    # Proxies in front of ingest that each append the address they saw to X-Forwarded-For. 0: the
    # header is ignored (a client can write anything there); 1: its last entry is the client's.
    trusted_proxy_hops: int = Field(default=0, ge=0)
    # How long a retry with the same Idempotency-Key gets the first response back.
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    # Callback URLs (webhooks) may point at loopback and private addresses: an intranet receiver, a
    # test. Off on a public instance, where such a URL would let clients probe the inside (SSRF).
    # Status checks again before each delivery (PHOTOSPLAT_STATUS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES).
    webhook_allow_private_addresses: bool = False

    @model_validator(mode="after")
    def _window_outlives_its_urls(self) -> IngestSettings:
        if self.upload_ttl_seconds < self.upload_url_ttl_seconds:
            raise ValueError("upload_ttl_seconds must be at least upload_url_ttl_seconds")
        return self

    def public_url(self, path: str) -> str:
        return self.public_base_url.rstrip("/") + path
