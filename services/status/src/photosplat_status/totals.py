"""The dashboard's totals over finished jobs: mean time per stage (labelled for people) and GPU hours
(counted only where a GPU trained)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from photosplat_libs.events import SfmTimings, TrainingTimings

# The trainer's timings as an operator reads them (a test holds this to TrainingTimings' fields).
LABELS = {
    "download_seconds": "trainer download",
    "train_seconds": "training",
    "gpu_seconds": "GPU training",
    "train_stage_seconds": "training stage (with exports)",
    "upload_seconds": "upload of results",
    "total_seconds": "trainer total",
}
SFM_LABEL = "SfM"


@dataclass(frozen=True)
class StageTimes:
    mean_seconds: dict[str, float]
    gpu_hours: float


def stage_times(timings_of_jobs: Iterable[tuple[SfmTimings | None, TrainingTimings | None]]) -> StageTimes:
    """The SfM steps of each job (summed: that is the SfM stage) and the trainer's timings, each
    averaged over the jobs that report it. ``gpu_seconds`` is there only when a GPU trained."""
    samples: dict[str, list[float]] = defaultdict(list)
    gpu_seconds = 0.0
    for sfm, training in timings_of_jobs:
        if sfm is not None and sfm.model_dump(exclude_none=True):
            samples[SFM_LABEL].append(sfm.total())
        if training is not None:
            for name, seconds in training.model_dump(exclude_none=True).items():
                samples[LABELS[name]].append(seconds)
            gpu_seconds += training.gpu_seconds or 0.0
    means = {label: sum(values) / len(values) for label, values in samples.items()}
    return StageTimes(mean_seconds=means, gpu_hours=gpu_seconds / 3600)
