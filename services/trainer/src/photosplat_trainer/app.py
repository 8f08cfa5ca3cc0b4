"""Composition root of the trainer worker."""

from __future__ import annotations

import logging

from photosplat_libs import topology
from photosplat_libs.events import SfmDone, Stage
from photosplat_libs.service import Deps, Service
from photosplat_libs.worker import Worker, WorkFn, default_worker_name, expecting

from photosplat_trainer.backends import check_backend
from photosplat_trainer.settings import TrainerSettings
from photosplat_trainer.training_job import training_work
from photosplat_trainer.warmup import warm_up

log = logging.getLogger(__name__)


def create(settings: TrainerSettings, deps: Deps, work: WorkFn | None = None) -> Service:
    """``work`` replaces the training engine (tests drive the consumer with a small one)."""
    if work is None:
        backend = check_backend(settings.device)
        if settings.gpu_memory_gib is not None and backend == "cuda":
            from photosplat_trainer.backends.cuda import limit_gpu_memory

            limit_gpu_memory(settings.gpu_memory_gib)
        if settings.warm_up and backend == "cuda":
            log.info("trainer warmed up its GPU kernels in %.1f s", warm_up(device=settings.device))
    return Worker(
        "trainer",
        Stage.TRAIN,
        topology.TRAINER_WORK,
        work or expecting(SfmDone, training_work(settings)),
        deps,
        worker_name=settings.worker_name or default_worker_name(),
        heartbeat_seconds=settings.heartbeat_seconds,
        work_root=settings.work_dir,
    )
