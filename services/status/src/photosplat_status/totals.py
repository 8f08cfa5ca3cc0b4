"""The dashboard's totals over finished jobs: mean time per stage and GPU hours."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The trainer's timing that stands for time on a GPU (training itself; exports run beside it).
GPU_TIMING = "train_seconds"


@dataclass(frozen=True)
class StageTimes:
    mean_seconds: dict[str, float]
    gpu_hours: float


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


def stage_times(stats_of_jobs: Iterable[dict[str, Any]]) -> StageTimes:
    """``stats.sfm.timings`` (summed: that is the SfM stage) and ``stats.timings`` (the trainer's
    per-step seconds) of each job, averaged over the jobs that report them."""
    samples: dict[str, list[float]] = defaultdict(list)
    gpu_seconds = 0.0
    for stats in stats_of_jobs:
        sfm_timings = (stats.get("sfm") or {}).get("timings") or {}
        sfm = [s for s in map(_seconds, sfm_timings.values()) if s is not None]
        if sfm:
            samples["sfm"].append(sum(sfm))
        for step, value in (stats.get("timings") or {}).items():
            if (seconds := _seconds(value)) is not None:
                samples[step].append(seconds)
                if step == GPU_TIMING:
                    gpu_seconds += seconds
    means = {step: sum(values) / len(values) for step, values in samples.items()}
    return StageTimes(mean_seconds=means, gpu_hours=gpu_seconds / 3600)
