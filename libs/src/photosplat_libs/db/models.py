"""Database models shared by ingest (creates jobs), status (projects events) and viewer (reads)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from photosplat_libs.db.job_statistics import HeldOutScores, JobStatistics

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


M = TypeVar("M", bound=BaseModel)


class ModelJSON(TypeDecorator[M]):
    """A pydantic model kept as JSON: validated when read, so code reads its attributes, and only an
    instance of the model is written (not a loose dict that could spell a key differently)."""

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[M]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: M | None, dialect: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, self.model):
            raise TypeError(f"a {self.model.__name__} is stored here, not {type(value).__name__}")
        return value.model_dump(mode="json")

    def process_result_value(self, value: dict[str, Any] | None, dialect: Any) -> M | None:
        return None if value is None else self.model.model_validate(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    owner_hash: Mapped[str] = mapped_column(String(64), index=True)
    pub_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # the public key encrypted with the owner token (see photosplat_libs.security.seal_pub_key)
    pub_key_sealed: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True, default=JobStatus.PENDING)
    stage: Mapped[str] = mapped_column(String(16), default="upload")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    # when the worker made that estimate: pages count down from it between reports
    eta_at: Mapped[datetime | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    error_stage: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    processing_time_seconds: Mapped[float | None] = mapped_column(Float)
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    registered_image_count: Mapped[int | None] = mapped_column(Integer)
    gaussian_count: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # the attempt the current progress value belongs to (a later attempt restarts it)
    progress_attempt: Mapped[int] = mapped_column(Integer, default=1)
    # format -> bytes / object key of each export
    file_sizes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    held_out: Mapped[HeldOutScores] = mapped_column(ModelJSON(HeldOutScores), default=HeldOutScores)
    # curve, SfM figures, timings, home view, thumbnail: listings never load it
    statistics: Mapped[JobStatistics] = mapped_column(ModelJSON(JobStatistics), default=JobStatistics)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # presigned flow: the files the client declared, [{name, key, size}]
    uploads: Mapped[list[Any]] = mapped_column(default=list)

    def eta_left(self, now: datetime) -> float | None:
        """The stage's ETA as of ``now``: the worker's estimate less the time since it made it
        (at least 0; None when there is no estimate)."""
        if self.eta_seconds is None or self.eta_at is None:
            return self.eta_seconds
        return max(0.0, self.eta_seconds - (now - self.eta_at).total_seconds())


class ErrorLog(Base):
    __tablename__ = "error_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    error_type: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text, default="")
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    final: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]


class LogLine(Base):
    __tablename__ = "log_lines"
    # The status API reads a job's newest lines: (job_id, id) answers that from the index alone,
    # however many lines the job (or the table) has.
    __table_args__ = (Index("ix_log_lines_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    stage: Mapped[str | None] = mapped_column(String(16))
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ProcessedEvent(Base):
    """Every event status has applied: idempotency by event id, audit trail, and recovery input."""

    __tablename__ = "events"

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]


class OutboxMessage(Base):
    """Events written in the same transaction as the state they announce (transactional outbox)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class AdminSession(Base):
    """A browser logged in to the admin dashboard. Only the hash of the session id (the cookie) is
    kept, so a leaked database opens no session; logout deletes the row, expiry ends it."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class QuotaCharge(Base):
    """One job a client created, for ingest's rate limits. Kept for the longest quota window (a day)
    even when the job is deleted (the link is cleared, the charge stays): deleting jobs must not hand
    a client its quota back. ``client`` is the hash of the owner token, of the client's address or
    of its API key."""

    __tablename__ = "quota_charges"
    __table_args__ = (Index("ix_quota_charges_client_created_at", "client", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(index=True)


class IdempotencyKey(Base):
    """The response to a job-creating request sent with an ``Idempotency-Key``: a retry with the
    same key from the same client gets it again instead of a second job. The key itself is not
    kept, only its hash, and the response (it holds the owner token) is encrypted with a key derived
    from the client's key, so a leaked database reveals no token."""

    __tablename__ = "idempotency_keys"

    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # what the request asked for (method, path, body): the same key with another request is refused
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    status_code: Mapped[int] = mapped_column(Integer)
    response_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class ApiKey(Base):
    """A key an operator hands out (``photosplat api-key create``): requests carrying it in
    ``X-API-Key`` are exempt from ingest's rate limits. Only the hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # Signs the webhooks of the key's jobs (kept readable: an HMAC needs the secret itself); NULL
    # for keys issued before webhooks, whose jobs are signed with the owner token's secret.
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    # Where the end of a job created with this key is announced, unless the job names its own.
    callback_url: Mapped[str | None] = mapped_column(Text)


class JobWebhook(Base):
    """A job's callback (docs/architecture.md §5.12): where its end is announced and what signs it.
    The body is written by ingest when the job is created, so status needs neither the owner token
    nor ingest's settings: the status link in clear, the viewer link sealed with the secret."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))
    status_url: Mapped[str] = mapped_column(Text)
    viewer_url_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One notification of a job's end, written in the transaction that ends the job (outbox) and
    sent by status's webhook sender. ``next_attempt_at`` is set while it is pending: it is also the
    claim (a sender moves it past its request timeout before posting), so replicas never post the
    same delivery at once and a sender that dies mid-post is relieved when it passes."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    # the exact JSON body, signed again at each attempt with that attempt's timestamp
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One POST of a delivery: what the receiver answered, or why there was no answer."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    duration_seconds: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
