"""The body of a webhook: the end of a job, as the client that registered the callback gets it.
A public contract like the status API's answers: fields are added, never renamed or removed."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

WEBHOOK_VERSION = 1
TerminalStatus = Literal["DONE", "FAILED", "CANCELLED"]


class WebhookEvent(StrEnum):
    JOB_DONE = "job.done"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"

    @classmethod
    def of_status(cls, status: str) -> WebhookEvent:
        return cls(f"job.{status.lower()}")


class JobEnded(BaseModel):
    """``delivery_id`` is also the ``PhotoSplat-Delivery`` header: every attempt of one
    notification carries the same, so a receiver that got it already can ignore a repeat."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = WEBHOOK_VERSION
    delivery_id: uuid.UUID
    event: WebhookEvent
    job_id: uuid.UUID
    status: TerminalStatus
    # the stage the job was in when it ended (the failing one for FAILED)
    stage: str
    error: str | None = None
    error_stage: str | None = None
    # the public viewer link (DONE only) and the status route, which needs the owner token
    viewer_url: str | None = None
    status_url: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime
    processing_time_seconds: float | None = None
