"""Composition root of the colmap worker."""

from __future__ import annotations

from photosplat_libs import topology
from photosplat_libs.events import ImagesValidated, Stage
from photosplat_libs.service import Deps, Service
from photosplat_libs.worker import Worker, WorkFn, default_worker_name, expecting

from photosplat_colmap.settings import ColmapSettings
from photosplat_colmap.sfm_job import run_sfm


def create(settings: ColmapSettings, deps: Deps, work: WorkFn | None = None) -> Service:
    """``work`` replaces the SfM engine (tests drive the consumer with a small one)."""
    return Worker(
        "colmap",
        Stage.SFM,
        topology.COLMAP_WORK,
        work or expecting(ImagesValidated, run_sfm),
        deps,
        worker_name=settings.worker_name or default_worker_name(),
        heartbeat_seconds=settings.heartbeat_seconds,
        work_root=settings.work_dir,
    )
