"""What the SfM stage takes and gives: its options, its result and the reporter it talks to.

Shared by the pipeline, the known-poses path and the uploads (:mod:`photosplat_colmap.outputs`), so that
none of them has to import another for its types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from photosplat_libs.events import SfmStats, SfmTimings

DEFAULT_MAX_SIDE = 1600

Matcher = Literal["auto", "exhaustive", "sequential", "vocabtree"]
Mapper = Literal["incremental", "global"]


class Reporter(Protocol):
    """What the pipeline tells its caller; :class:`photosplat_libs.worker.JobContext` is one."""

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None: ...

    def log(self, *lines: str) -> None: ...

    def check_cancelled(self) -> None: ...


@dataclass(frozen=True)
class SfmOptions:
    # Longer side of the working images; None keeps the original resolution.
    max_image_side: int | None = DEFAULT_MAX_SIDE
    matcher: Matcher = "auto"
    mapper: Mapper = "incremental"
    # A COLMAP vocabulary tree file; retrieval matching is only possible with one (no download).
    vocab_tree: Path | None = None
    # -1: every CPU this process may use.
    num_threads: int = -1
    # SIFT keypoints per image (COLMAP keeps up to two orientations each), with or without CUDA:
    # matching grows with the square of the count and mapping with the points it yields, and
    # 4096 still gives hundreds of inliers per overlapping pair at 1600 px.
    max_num_features: int = 4096
    # SIFT's first octave upsampled for images under SMALL_IMAGE_SIDE (None: so); False never, True always.
    upsample_small_images: bool | None = None
    # The photos are frames of one video, in order: matched sequentially (matcher "auto").
    video: bool = False
    # SIFT extraction and matching on a GPU where pycolmap's CUDA build sees one (devices.py);
    # False keeps them on the CPU even there.
    use_gpu: bool = True


@dataclass
class SfmResult:
    sparse_dir: Path  # the raw model (binary COLMAP, at working resolution)
    undistorted_dir: Path  # images/ + sparse/ with PINHOLE cameras: what training reads
    registered_images: int
    total_images: int
    points: int
    reprojection_error: float
    mean_track_length: float
    timings: dict[str, float] = field(default_factory=dict)
    blurry_removed: int = 0
    warnings: list[str] = field(default_factory=list)
    matcher: str = ""
    mapper: str = ""
    attempts: list[str] = field(default_factory=list)

    def stats(self) -> SfmStats:
        return SfmStats(
            mean_track_length=round(self.mean_track_length, 3),
            timings=SfmTimings(**{k: round(v, 2) for k, v in self.timings.items()}),
            blurry_removed=self.blurry_removed,
            warnings=tuple(self.warnings),
            matcher=self.matcher,
            mapper=self.mapper,
            attempts=tuple(self.attempts),
        )
