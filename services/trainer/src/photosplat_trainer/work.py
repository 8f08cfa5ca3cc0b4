"""The training stage: an SfM model in, a Gaussian Splatting scene and its exports out."""

from __future__ import annotations

from photosplat_libs.events import SfmDone, TrainingDone
from photosplat_libs.worker import JobContext, WorkError


class EngineNotInstalled(WorkError):
    """This build has no training engine: no attempt can succeed."""

    retryable = False


async def run_training(event: SfmDone, ctx: JobContext) -> TrainingDone:
    raise EngineNotInstalled("training engine not installed yet")
