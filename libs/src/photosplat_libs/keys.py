"""Object keys of a job (docs/architecture.md §4). Built from the job id and our own indices only."""

from __future__ import annotations

import uuid


def job_prefix(job_id: uuid.UUID) -> str:
    return f"jobs/{job_id}/"


def incoming(job_id: uuid.UUID, index: int, ext: str) -> str:
    """Where a presigned upload lands before validation."""
    return f"jobs/{job_id}/incoming/{index:04d}{ext}"


def image(job_id: uuid.UUID, index: int, ext: str) -> str:
    return f"jobs/{job_id}/images/{index:04d}{ext}"


def video(job_id: uuid.UUID) -> str:
    """The job's video (its video track, remuxed by ingest), when it came as a video."""
    return f"jobs/{job_id}/video/source.mp4"


def poses(job_id: uuid.UUID) -> str:
    """Camera poses uploaded with the photos."""
    return f"jobs/{job_id}/poses/transforms.json"


def sfm(job_id: uuid.UUID, name: str) -> str:
    return f"jobs/{job_id}/sfm/{name}"


def train(job_id: uuid.UUID, name: str) -> str:
    return f"jobs/{job_id}/train/{name}"


def train_checkpoint(job_id: uuid.UUID) -> str:
    """The trainer's latest checkpoint: kept while the job may resume, dropped when it ends."""
    return train(job_id, "checkpoint.pt")


def output(job_id: uuid.UUID, name: str) -> str:
    return f"jobs/{job_id}/output/{name}"


def cancel_marker(job_id: uuid.UUID) -> str:
    """Written by status on cancel, so a worker that picks the job up later skips it."""
    return f"jobs/{job_id}/control/cancelled"


def stage_result(job_id: uuid.UUID, stage: str) -> str:
    """The result event of a finished stage (``jobs/{id}/sfm/result.json``): a redelivered work
    message republishes it instead of doing the work again."""
    return f"jobs/{job_id}/{stage}/result.json"


def stage_progress(job_id: uuid.UUID, stage: str) -> str:
    """How far the deliveries of a stage's work request got (the worker's attempt accounting)."""
    return f"jobs/{job_id}/{stage}/progress.json"
