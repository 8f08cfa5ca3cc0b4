from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from photosplat_libs.settings import ServiceSettings

MIN_ADMIN_TOKEN_LENGTH = 22  # 22 URL-safe characters carry 128 bits
_WEAK_TOKENS = frozenset({"admin", "administrator", "changeme", "change-me", "password", "secret", "token", "test"})


class StatusSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSPLAT_STATUS_", extra="ignore")

    # None disables every admin-only route (403), which is safer than any default value.
    admin_token: SecretStr | None = None
    # A dashboard login lasts this long (the cookie's lifetime too); logout ends it sooner.
    admin_session_seconds: int = Field(default=12 * 3600, gt=0, le=30 * 24 * 3600)
    # GET .../status answers may be this many seconds old (0: always read the database). Many
    # pollers of few jobs then cost one read per job and interval instead of one per request; the
    # job page polls every 2 s. A cancel or delete through this process is seen at once.
    status_cache_seconds: float = Field(default=0.0, ge=0.0, le=10.0)
    # Base of the links handed to clients (viewer URL).
    public_base_url: str = "http://127.0.0.1:8000"
    # A started job whose worker has been silent this long is re-dispatched (workers report at least
    # every ~30 s while running).
    lease_seconds: float = Field(default=900.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    recovery_interval_seconds: float = Field(default=60.0, gt=0)
    # Jobs still waiting for their photos after this long are removed with their objects.
    upload_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)
    # The job event stream (GET .../events) reads the database this often when this process's
    # projection did not wake it (another replica may be projecting the job's events).
    events_poll_seconds: float = Field(default=1.0, gt=0, le=30)
    # A stream ends after this long without its final event and the client resumes it with
    # Last-Event-ID: a server stopping waits no longer for open streams (uvicorn waits for them).
    events_max_seconds: float = Field(default=15.0, gt=0, le=3600)

    # Webhooks (docs/architecture.md §5.12): each attempt may take this long in all (the receiver
    # should answer at once and work later); a failed one is retried after base x 2^(n-1) seconds
    # (capped, less up to half at random, so receivers back from an outage are not hit by every
    # sender at once), up to max_attempts: with the defaults over about three hours.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=10, ge=1, le=30)
    webhook_retry_base_seconds: float = Field(default=30.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # How often the sender looks for due deliveries (it sends what it finds at once).
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # Deliveries posted at once by one sender.
    webhook_batch: int = Field(default=20, ge=1, le=500)
    # Allow callbacks to loopback and private addresses (see ingest's setting of the same name).
    webhook_allow_private_addresses: bool = False

    @field_validator("admin_token")
    @classmethod
    def _refuse_weak_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        # The blocklist names the classic defaults; the variety rule catches "aaaa..." or "1212...".
        weak = token.strip().lower() in _WEAK_TOKENS or len(set(token)) < 8
        if len(token) < MIN_ADMIN_TOKEN_LENGTH or weak:
            raise ValueError(
                f"admin_token is too weak: use at least {MIN_ADMIN_TOKEN_LENGTH} random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(32))"), or leave it unset to disable admin'
            )
        return value

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
