"""What a new job is: its row, its options and the events that announce it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.events import (
    PRESET_NAMES,
    CaptureKind,
    ImageInfo,
    ImagesValidated,
    JobOptions,
    JobSubmitted,
    Stage,
    VideoInfo,
)
from photosplat_libs.security import hash_token, seal_pub_key

from photosplat_ingest.validation import FileError, Rule, ValidationFailed

# 24 bytes -> 32 URL-safe characters, 192 bits: unguessable viewer links.
PUB_KEY_BYTES = 24
_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


@dataclass(frozen=True)
class NewJob:
    id: uuid.UUID
    pub_key: str
    token: str

    @classmethod
    def mint(cls, token: str) -> NewJob:
        return cls(id=uuid.uuid4(), pub_key=secrets.token_urlsafe(PUB_KEY_BYTES), token=token)

    def row(self, options: JobOptions, *, stage: Stage, image_count: int, uploads: list[dict[str, Any]]) -> Job:
        return Job(
            id=self.id,
            owner_hash=hash_token(self.token),
            pub_key_hash=hash_token(self.pub_key),
            pub_key_sealed=seal_pub_key(self.pub_key, self.token, str(self.id)),
            status=JobStatus.PENDING.value,
            stage=stage.value,
            image_count=image_count,
            options=options.model_dump(mode="json"),
            uploads=uploads,
            created_at=datetime.now(timezone.utc),
        )


def parse_options(original_resolution: object, preset: object) -> JobOptions:
    """Options from form fields or JSON; a bad value is a 400 like a bad file."""
    errors: list[FileError] = []
    try:
        flag = _BOOL.validate_python(False if original_resolution in (None, "") else original_resolution)
    except ValidationError:
        flag = False
        problem = f"original_resolution must be true or false, not {original_resolution!r}"
        errors.append(FileError(None, Rule.OPTIONS, problem))
    name = "standard" if preset in (None, "") else preset
    if name not in PRESET_NAMES:
        choices = ", ".join(PRESET_NAMES)
        errors.append(FileError(None, Rule.OPTIONS, f"preset must be one of {choices}, not {str(name)[:40]!r}"))
        name = "standard"
    if errors:
        raise ValidationFailed(errors)
    return JobOptions(preset=name, original_resolution=flag)


def submission_events(
    job_id: uuid.UUID,
    pub_key_hash: str,
    options: JobOptions,
    images: Sequence[ImageInfo],
    poses_key: str | None = None,
    video: VideoInfo | None = None,
) -> tuple[JobSubmitted, ImagesValidated]:
    """A video capture has no images: the colmap stage chooses its frames."""
    capture: CaptureKind = "photos" if video is None else "video"
    return (
        JobSubmitted(job_id=job_id, image_count=len(images), options=options, pub_key_hash=pub_key_hash),
        ImagesValidated(
            job_id=job_id, images=tuple(images), options=options, poses_key=poses_key, capture=capture, video=video
        ),
    )
