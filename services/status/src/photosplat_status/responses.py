"""What the API returns for a job (the shapes are the API contract)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from photosplat_libs.db.job_statistics import HeldOutScores, JobStatistics
from photosplat_libs.db.models import ErrorLog, JobStatus
from photosplat_libs.events import Stage

# The file a viewer loads first, best first: its size is the job's "file size".
MAIN_FORMATS = ("splat", "ksplat", "spz", "sog", "ply")
# Share of the whole job each stage stands for (rough wall-time shares of a typical job), for a
# single progress bar; ``progress`` itself stays per stage.
STAGE_SPAN: dict[str, tuple[float, float]] = {
    Stage.UPLOAD: (0.0, 0.02),
    Stage.VALIDATE: (0.02, 0.05),
    Stage.SFM: (0.05, 0.30),
    Stage.TRAIN: (0.30, 0.95),
    Stage.EXPORT: (0.95, 1.0),
}
MIB = 1024 * 1024


class JobColumns(Protocol):
    """What a summary reads of a job: a ``Job``, or a row of just these columns."""

    id: uuid.UUID
    status: str
    stage: str
    progress: float
    eta_seconds: float | None
    eta_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    processing_time_seconds: float | None
    image_count: int
    registered_image_count: int | None
    gaussian_count: int | None
    file_sizes: dict[str, Any]
    error_message: str | None
    error_stage: str | None
    attempt: int


class JobSummary(BaseModel):
    job_id: uuid.UUID
    status: str
    stage: str
    # fraction of the current stage done
    progress: float
    overall_progress: float
    # the worker's estimate for the current stage, made at ``eta_at``: what is left now is
    # eta_seconds - (now - eta_at) (the worker reports again within seconds while it works)
    eta_seconds: float | None
    eta_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    processing_time_seconds: float | None
    image_count: int
    registered_image_count: int | None
    gaussian_count: int | None
    file_size_mb: float | None
    viewer_url: str | None
    error: str | None
    error_stage: str | None
    attempt: int


class _StatusWithoutStats(JobSummary):
    log_tail: list[str]
    file_sizes: dict[str, Any]
    # the held-out scores of the finished scene
    metrics: HeldOutScores


class JobStatusView(_StatusWithoutStats):
    stats: JobStatistics


class JobPage(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int


class ErrorView(BaseModel):
    stage: str
    error_type: str
    message: str
    traceback: str
    attempt: int
    final: bool
    time: datetime


class CancelView(BaseModel):
    job_id: uuid.UUID
    status: str


def main_file_size_mb(file_sizes: dict[str, Any]) -> float | None:
    for fmt in (*MAIN_FORMATS, *file_sizes):
        if fmt in file_sizes:
            return round(float(file_sizes[fmt]) / MIB, 2)
    return None


def overall_progress(job: JobColumns) -> float:
    if job.status == JobStatus.DONE:
        return 1.0
    start, end = STAGE_SPAN.get(job.stage, (0.0, 1.0))
    return round(start + (end - start) * job.progress, 4)


def _summary_fields(job: JobColumns, viewer_url: str | None) -> dict[str, Any]:
    return dict(
        job_id=job.id,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        overall_progress=overall_progress(job),
        eta_seconds=job.eta_seconds,
        eta_at=job.eta_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        processing_time_seconds=job.processing_time_seconds,
        image_count=job.image_count,
        registered_image_count=job.registered_image_count,
        gaussian_count=job.gaussian_count,
        file_size_mb=main_file_size_mb(job.file_sizes),
        viewer_url=viewer_url,
        error=job.error_message if job.status == JobStatus.FAILED else None,
        error_stage=job.error_stage if job.status == JobStatus.FAILED else None,
        attempt=job.attempt,
    )


def summary(job: JobColumns, viewer_url: str | None) -> JobSummary:
    return JobSummary(**_summary_fields(job, viewer_url))


class StatusColumns(JobColumns, Protocol):
    """A row of :func:`repository.status_row`: ``statistics_json`` is the job's
    :class:`JobStatistics` as the database keeps it (JSON the model wrote)."""

    held_out: HeldOutScores
    statistics_json: str


def status_json(job: StatusColumns, viewer_url: str | None, log_tail: list[str]) -> bytes:
    """A :class:`JobStatusView` as JSON. The statistics hold the training curve, hundreds of points
    that a status request passes on untouched: decoding and encoding them again was the largest cost
    of the request, so their stored JSON goes into the answer as it is."""
    rest = _StatusWithoutStats(
        **_summary_fields(job, viewer_url), log_tail=log_tail, file_sizes=job.file_sizes, metrics=job.held_out
    )
    return b"".join((rest.model_dump_json().encode()[:-1], b',"stats":', job.statistics_json.encode(), b"}"))


def error_view(error: ErrorLog) -> ErrorView:
    return ErrorView(
        stage=error.stage,
        error_type=error.error_type,
        message=error.message,
        traceback=error.traceback,
        attempt=error.attempt,
        final=error.final,
        time=error.created_at,
    )
