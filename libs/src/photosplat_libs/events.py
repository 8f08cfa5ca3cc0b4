"""The event contract: every message on the bus is one of these models.

Events are facts in the past tense. The routing key of an event is derived from its type
(``ImagesValidated`` -> ``images.validated``) so that topology and code cannot drift apart.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

CONTRACT_VERSION = 1


class Stage(StrEnum):
    UPLOAD = "upload"
    VALIDATE = "validate"
    SFM = "sfm"
    TRAIN = "train"
    EXPORT = "export"


STAGE_ORDER: dict[Stage, int] = {s: i for i, s in enumerate(Stage)}


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    job_id: uuid.UUID
    attempt: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=_now)
    version: int = CONTRACT_VERSION

    type: str
    routing_key: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__name__
        cls.routing_key = re.sub(r"(?<!^)(?=[A-Z])", ".", name).lower()


# The trainer's named presets (photosplat_trainer.config.PRESETS has one per name, tested): ingest
# refuses any other name before a job costs anything.
PRESET_NAMES = ("preview", "standard", "reference")
Preset = Literal["preview", "standard", "reference"]


class JobOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: Preset = "standard"
    original_resolution: bool = False

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_fields(cls, data: Any) -> Any:
        # max_image_side was never set by any client: messages and rows written before its removal
        # carry it as null.
        if isinstance(data, dict) and data.get("max_image_side", 0) is None:
            data = {k: v for k, v in data.items() if k != "max_image_side"}
        return data


class JobSubmitted(Envelope):
    type: Literal["JobSubmitted"] = "JobSubmitted"
    image_count: int = Field(ge=0)
    options: JobOptions = JobOptions()
    pub_key_hash: str


class ImageInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    width: int
    height: int
    bytes: int
    focal_length_px: float | None = None
    camera: str | None = None


class VideoInfo(BaseModel):
    """A video uploaded instead of photos, as ingest checked and stored it (its video track only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    name: str
    bytes: int
    # The codec's name as FFmpeg knows it (h264, hevc, vp9, av1).
    codec: str
    # As displayed: a phone's rotation applied.
    width: int
    height: int
    duration_seconds: float = Field(gt=0)
    frame_rate: float | None = None
    # The most frames SfM may take from it: ingest's photo limit.
    max_frames: int = Field(default=1000, ge=3)


# What the photographer uploaded: photos, or one video whose frames the colmap stage chooses.
CaptureKind = Literal["photos", "video"]


class ImagesValidated(Envelope):
    type: Literal["ImagesValidated"] = "ImagesValidated"
    images: tuple[ImageInfo, ...]
    options: JobOptions = JobOptions()
    # Cameras uploaded with the photos, naming them by their original file names: the key of a
    # NeRF-style transforms.json, or of a folder (ending in "/") holding a checked COLMAP text model.
    # SfM is skipped and these poses are used.
    poses_key: str | None = None
    # A video capture has no images yet: the colmap stage extracts them from ``video``.
    capture: CaptureKind = "photos"
    video: VideoInfo | None = None

    @model_validator(mode="after")
    def _one_kind_of_capture(self) -> ImagesValidated:
        if (self.capture == "video") != (self.video is not None):
            raise ValueError('a "video" capture carries its video, and only a video capture does')
        if self.video is not None and (self.images or self.poses_key):
            raise ValueError("a video capture carries no images and no poses")
        return self


class StageStarted(Envelope):
    type: Literal["StageStarted"] = "StageStarted"
    stage: Stage
    worker: str = ""


class ProgressMetrics(BaseModel):
    """The figures a worker reports with its progress; each stage fills the ones it has. A name that
    is not here is refused where the worker reports it (``JobContext.progress``), so producer and
    consumers cannot drift apart on a key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # training (the trainer)
    step: int | None = None
    loss: float | None = None
    psnr: float | None = None
    eval_psnr: float | None = None
    gaussians: int | None = None
    # SfM (colmap): photos of the current step, and how far extraction, matching and mapping got
    images: int | None = None
    extracted: int | None = None
    pairs: int | None = None
    pairs_matched: int | None = None
    registered: int | None = None

    def reported(self) -> dict[str, float]:
        """The figures that were reported, by name."""
        return self.model_dump(exclude_none=True)


class StageProgress(Envelope):
    type: Literal["StageProgress"] = "StageProgress"
    stage: Stage
    fraction: float = Field(ge=0.0, le=1.0)
    eta_seconds: float | None = None
    metrics: ProgressMetrics = ProgressMetrics()


class LogLines(Envelope):
    type: Literal["LogLines"] = "LogLines"
    stage: Stage | None = None
    lines: tuple[str, ...]


class SfmTimings(BaseModel):
    """Seconds of each SfM step; a step that did not run (known poses skip the matching) is None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    capture: float | None = None
    # choosing and writing a video's frames (a video capture only)
    frames: float | None = None
    extraction: float | None = None
    matching: float | None = None
    mapping: float | None = None
    undistortion: float | None = None
    known_poses: float | None = None

    def total(self) -> float:
        return sum(seconds for seconds in self.model_dump().values() if seconds is not None)


class SfmStats(BaseModel):
    """How the SfM went, beside the headline figures of :class:`SfmDone`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean_track_length: float = 0.0
    timings: SfmTimings = SfmTimings()
    blurry_removed: int = 0
    warnings: tuple[str, ...] = ()
    matcher: str = ""
    mapper: str = ""
    # the matcher/mapper combinations tried, in order (fallbacks after a failed one)
    attempts: tuple[str, ...] = ()


class SfmDone(Envelope):
    type: Literal["SfmDone"] = "SfmDone"
    sparse_key: str
    registered_images: int
    total_images: int
    points: int
    reprojection_error: float
    options: JobOptions = JobOptions()
    stats: SfmStats = SfmStats()


class ExportInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str
    key: str
    bytes: int
    psnr: float | None = None


class HomeView(BaseModel):
    """Where a viewer opens the scene: one of the photographer's own cameras, in the scene's frame
    (COLMAP: x right, y down, z forward), looking at the scene's median depth."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov_y_deg: float = Field(gt=0, lt=180)


class TrainingTimings(BaseModel):
    """Seconds of the training stage's parts, as the trainer measures them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    download_seconds: float
    # the optimisation alone
    train_seconds: float
    # training with evaluation, pruning and exports
    train_stage_seconds: float
    upload_seconds: float
    total_seconds: float
    # train_seconds again when a GPU trained; None on a CPU (no GPU time to count)
    gpu_seconds: float | None = None


class TrainingDone(Envelope):
    type: Literal["TrainingDone"] = "TrainingDone"
    exports: tuple[ExportInfo, ...]
    gaussian_count: int
    psnr: float | None = None
    ssim: float | None = None
    timings: TrainingTimings | None = None
    thumbnail_key: str | None = None
    home_view: HomeView | None = None

    @field_validator("timings", mode="before")
    @classmethod
    def _no_timings(cls, value: Any) -> Any:
        # Before the timings were typed, a message without them carried an empty dict.
        return None if value == {} else value


class StageFailed(Envelope):
    type: Literal["StageFailed"] = "StageFailed"
    stage: Stage
    error_type: str
    message: str
    traceback: str = ""
    retryable: bool = False
    # True when no further attempt will follow: the job is FAILED.
    final: bool = True


class CancelRequested(Envelope):
    type: Literal["CancelRequested"] = "CancelRequested"


class JobDeleted(Envelope):
    type: Literal["JobDeleted"] = "JobDeleted"


Event = Annotated[
    Union[
        JobSubmitted,
        ImagesValidated,
        StageStarted,
        StageProgress,
        LogLines,
        SfmDone,
        TrainingDone,
        StageFailed,
        CancelRequested,
        JobDeleted,
    ],
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[type[Envelope], ...] = get_args(get_args(Event)[0])
ROUTING_KEYS: frozenset[str] = frozenset(t.routing_key for t in EVENT_TYPES)

_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def encode(event: Envelope) -> bytes:
    return event.model_dump_json().encode()


def decode(body: bytes | str) -> Envelope:
    """Parse any event; raises ``pydantic.ValidationError`` for a malformed message."""
    return _adapter.validate_json(body)  # type: ignore[return-value]


def retry_of(event: Envelope, attempt: int) -> Envelope:
    """The same work request again, as a new message for a new attempt."""
    return event.model_copy(update={"event_id": uuid.uuid4(), "attempt": attempt, "occurred_at": _now()})
