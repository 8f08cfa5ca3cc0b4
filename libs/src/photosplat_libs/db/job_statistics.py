"""What status keeps of a job's figures, as typed models stored in JSON columns of ``jobs``.

The events carry these figures (:mod:`photosplat_libs.events`); status projects them into a
:class:`JobStatistics` (curve, SfM figures, timings, home view, thumbnail: the big one, listings
never load it) and :class:`HeldOutScores` (small: the admin listing shows the PSNR). The status API,
the viewer pages and the admin totals read their attributes, so a key that producer and consumer
spell differently fails where it is written instead of showing nothing.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from photosplat_libs.events import HomeView, ProgressMetrics, SfmStats, Stage, TrainingTimings


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def replaced(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated: a misspelt field name raises instead of being kept.
        (``model_copy(update=...)`` would keep it silently.)"""
        return self.model_validate({**dict(self), **changes})


class CurvePoint(Record):
    step: int
    loss: float | None = None
    psnr: float | None = None


class SfmSummary(SfmStats):
    """``SfmDone``'s headline figures with its statistics."""

    registered_images: int
    total_images: int
    points: int
    reprojection_error: float


class LatestProgress(ProgressMetrics):
    """The newest figures a worker reported, and the stage they belong to."""

    stage: Stage


class JobStatistics(Record):
    # the worker that started the job's current stage
    worker: str | None = None
    latest: LatestProgress | None = None
    # training loss and PSNR by step, thinned to a few hundred points
    curve: tuple[CurvePoint, ...] = ()
    sfm: SfmSummary | None = None
    # the training stage's (the SfM's are in ``sfm.timings``)
    timings: TrainingTimings | None = None
    thumbnail_key: str | None = None
    home_view: HomeView | None = None


class HeldOutScores(Record):
    """How well the finished scene renders the photos held out of training."""

    psnr: float | None = None
    ssim: float | None = None
