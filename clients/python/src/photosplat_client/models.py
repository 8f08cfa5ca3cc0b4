"""The server's answers the client reads, as typed models.

They name only the fields the client uses and ignore the rest, so a server that adds fields never
breaks an installed client. The shapes are those of ingest (``POST /recon/uploads``, ``POST
/recon/jobs/{id}/submit``), status (``GET /recon/jobs/{id}/status``) and the viewer
(``GET /v/{pub_key}/files.json``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class JobState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class UploadSlot(_Answer):
    """Where one declared photo goes: a presigned URL for exactly its declared size and type."""

    name: str
    url: str
    method: str = "PUT"
    headers: dict[str, str] = Field(default_factory=dict)


class Declaration(_Answer):
    """``POST /recon/uploads`` (201): the new job, its owner token and one slot per photo, in the
    order they were declared."""

    job_id: uuid.UUID
    pub_key: str
    token: str
    expires_at: datetime
    uploads: list[UploadSlot]
    # With a callback URL (the request's or the API key's): where the job's end is POSTed, and the
    # secret its PhotoSplat-Signature is made with.
    callback_url: str | None = None
    webhook_secret: str | None = None


class Submission(_Answer):
    """``POST /recon/jobs/{id}/submit`` (200): the photos were checked and the job has started."""

    job_id: uuid.UUID
    status: str
    image_count: int
    status_url: str | None = None
    viewer_url: str | None = None


class HeldOutScores(_Answer):
    psnr: float | None = None
    ssim: float | None = None


class JobStatus(_Answer):
    """``GET /recon/jobs/{id}/status``."""

    job_id: uuid.UUID
    status: JobState
    stage: str
    # fraction of the current stage done
    progress: float
    overall_progress: float
    eta_seconds: float | None = None
    # when the worker made that estimate (absent from older servers): less has been left since
    eta_at: datetime | None = None
    created_at: datetime
    finished_at: datetime | None = None
    processing_time_seconds: float | None = None
    image_count: int
    registered_image_count: int | None = None
    gaussian_count: int | None = None
    file_size_mb: float | None = None
    # the public viewer page, once the job is DONE (only the owner's token opens it)
    viewer_url: str | None = None
    error: str | None = None
    error_stage: str | None = None
    attempt: int = 1
    log_tail: list[str] = Field(default_factory=list)
    metrics: HeldOutScores = HeldOutScores()

    @property
    def pub_key(self) -> str | None:
        """The scene's public key: the last path segment of the viewer URL (``.../v/{pub_key}``)."""
        return self.viewer_url.rstrip("/").rsplit("/", 1)[-1] if self.viewer_url else None


class SceneFile(_Answer):
    """One download of a finished scene (``/v/{pub_key}/files.json``)."""

    format: str
    filename: str
    bytes: int | None = None
    # a path on the server: /recon/pub/{pub_key}/{filename}
    href: str


class SceneFiles(_Answer):
    files: list[SceneFile]
