"""The dashboard's totals over finished jobs: mean time per stage (labelled for people) and GPU hours
(counted only where a GPU trained)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The trainer reports this timing only when it trained on a GPU (a CPU job has none to count).
GPU_TIMING = "gpu_seconds"
# The keys jobs report, as an operator reads them; any other key is shown tidied up.
LABELS = {
    "sfm": "SfM",
    "download_seconds": "trainer download",
    "train_seconds": "training",
    "gpu_seconds": "GPU training",
    "train_stage_seconds": "training stage (with exports)",
    "upload_seconds": "upload of results",
    "total_seconds": "trainer total",
}


def label(key: str) -> str:
    return LABELS.get(key, key.removesuffix("_seconds").replace("_", " "))


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
    means = {label(step): sum(values) / len(values) for step, values in samples.items()}
    return StageTimes(mean_seconds=means, gpu_hours=gpu_seconds / 3600)
