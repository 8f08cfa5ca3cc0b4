"""The training stage: an SfM model in, a Gaussian Splatting scene and its exports out.

``run_training`` downloads the undistorted SfM folder, trains in a thread (resuming from the job's
checkpoint in the store when an earlier delivery died), prunes floaters, writes the exports with
their round-trip PSNR, a thumbnail and the resolved configuration, uploads them under
``jobs/{id}/output/`` and returns ``TrainingDone``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from photosplat_libs import keys
from photosplat_libs.events import ExportInfo, JobOptions, SfmDone, TrainingDone, TrainingTimings
from photosplat_libs.store import ObjectNotFound, ObjectStore
from photosplat_libs.worker import JobContext, WorkError

from photosplat_trainer.settings import TrainerSettings

if TYPE_CHECKING:  # the training modules (loop, pipeline, exports) load where they are used, with the first job
    from photosplat_trainer.pipeline import TrainOutputs
    from photosplat_trainer.train import Callbacks


def training_work(settings: TrainerSettings) -> Callable[[SfmDone, JobContext], Awaitable[TrainingDone]]:
    return functools.partial(run_training, settings=settings)


async def run_training(event: SfmDone, ctx: JobContext, settings: TrainerSettings) -> TrainingDone:
    started = time.monotonic()
    scene_dir = ctx.work_dir / "scene"
    await download_prefix(ctx.store, event.sparse_key, scene_dir)
    downloaded = time.monotonic()
    checkpoint_key = keys.train_checkpoint(ctx.job_id)
    resume = await _earlier_checkpoint(ctx, checkpoint_key)

    from photosplat_trainer.pipeline import run_pipeline

    outputs = await asyncio.to_thread(
        run_pipeline,
        scene_dir,
        ctx.work_dir / "output",
        preset_name=event.options.preset,
        overrides=options_overrides(event.options),
        device=settings.device,
        max_steps=settings.max_steps,
        callbacks=_callbacks(ctx, checkpoint_key, asyncio.get_running_loop()),
        work_dir=ctx.work_dir,
        resume=resume,
    )
    trained = time.monotonic()
    exports, thumbnail_key = await _upload(ctx, outputs)
    # The scene is safely stored: the checkpoint is no longer needed.
    await ctx.store.delete(checkpoint_key)
    uploaded = time.monotonic()

    timings = TrainingTimings(
        download_seconds=downloaded - started,
        train_seconds=outputs.result.train_seconds,
        train_stage_seconds=trained - downloaded,
        upload_seconds=uploaded - trained,
        total_seconds=uploaded - started,
        gpu_seconds=outputs.result.train_seconds if outputs.backend == "cuda" else None,
    )
    ctx.log(
        f"trained {len(outputs.gaussians)} Gaussians: held-out PSNR {_fmt(outputs.psnr)} dB, "
        f"SSIM {_fmt(outputs.ssim, 4)} in {timings.total_seconds:.0f} s"
    )
    return TrainingDone(
        job_id=ctx.job_id,
        attempt=ctx.attempt,
        exports=exports,
        gaussian_count=len(outputs.gaussians),
        psnr=outputs.psnr,
        ssim=outputs.ssim,
        timings=timings,
        thumbnail_key=thumbnail_key,
        home_view=outputs.home_view,
    )


async def _earlier_checkpoint(ctx: JobContext, checkpoint_key: str) -> Path | None:
    """The checkpoint an earlier delivery of this job left in the store, downloaded; None if there is none."""
    resume = ctx.work_dir / "resume.pt"
    try:
        await ctx.store.get_file(checkpoint_key, str(resume))
    except ObjectNotFound:
        return None
    ctx.log("found a checkpoint of an earlier attempt: resuming from it")
    return resume


def _callbacks(ctx: JobContext, checkpoint_key: str, loop: asyncio.AbstractEventLoop) -> Callbacks:
    """The training loop's hooks, which run on the training thread, wired to the job's context."""
    from photosplat_trainer.train import Callbacks, Progress

    def upload_checkpoint(path: Path, step: int) -> None:
        # The upload goes through the event loop and is awaited here, so the next checkpoint
        # cannot overwrite the file while it is being sent.
        future = asyncio.run_coroutine_threadsafe(ctx.store.put_file(checkpoint_key, str(path)), loop)
        future.result()
        ctx.log(f"checkpoint of step {step} saved")

    def on_progress(p: Progress) -> None:
        metrics = {"step": p.step, "loss": p.loss, "psnr": p.psnr, "gaussians": p.gaussians}
        if p.eval_psnr is not None:
            metrics["eval_psnr"] = p.eval_psnr
        ctx.progress(p.step / p.steps, p.eta_seconds, **metrics)

    return Callbacks(
        progress=on_progress, log=ctx.log, check_cancelled=ctx.check_cancelled, checkpoint=upload_checkpoint
    )


async def _upload(ctx: JobContext, outputs: TrainOutputs) -> tuple[tuple[ExportInfo, ...], str]:
    """The exports, the thumbnail, the configuration and the metrics under the job's output; returns
    the exports' descriptions and the thumbnail's key."""
    exports = []
    for item in outputs.exports:
        key = keys.output(ctx.job_id, item.path.name)
        await ctx.store.put_file(key, str(item.path))  # scene files are binary: the default type
        exports.append(ExportInfo(format=item.format, key=key, bytes=item.bytes, psnr=item.psnr))
    thumbnail_key = keys.output(ctx.job_id, outputs.thumbnail.name)
    await ctx.store.put_file(thumbnail_key, str(outputs.thumbnail), "image/png")
    for extra in (outputs.config_path, outputs.metrics_path):
        await ctx.store.put_file(keys.output(ctx.job_id, extra.name), str(extra), "application/json")
    return tuple(exports), thumbnail_key


def options_overrides(options: JobOptions) -> dict[str, object]:
    return {"max_image_side": None} if options.original_resolution else {}


async def download_prefix(store: ObjectStore, prefix: str, dest: Path) -> None:
    """Every object under ``prefix`` to the same relative path under ``dest``."""
    base = prefix if prefix.endswith("/") else prefix + "/"
    objects = await store.list(base)
    if not objects:
        raise WorkError(f"the SfM output {base!r} is missing from the store")
    for obj in objects:
        rel = PurePosixPath(obj.key[len(base) :])
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise WorkError(f"refusing the object key {obj.key!r}", retryable=False)
        target = dest.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        await store.get_file(obj.key, str(target))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"

