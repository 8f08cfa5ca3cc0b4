"""The SfM stage: photos of a job in, a sparse model and its statistics out."""

from __future__ import annotations

from photosplat_libs.events import ImagesValidated, SfmDone
from photosplat_libs.worker import JobContext, WorkError


class EngineNotInstalled(WorkError):
    """This build has no SfM engine: no attempt can succeed."""

    retryable = False


async def run_sfm(event: ImagesValidated, ctx: JobContext) -> SfmDone:
    raise EngineNotInstalled("SfM engine not installed yet")
