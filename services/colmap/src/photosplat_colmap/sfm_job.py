"""The SfM stage: photos of a job (or the frames chosen from its video) in, a sparse model and its
statistics out. The pipeline works on local folders; this wraps it with the store (download,
upload) and the job's context."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path, PurePosixPath

from photosplat_libs.events import ImageInfo, ImagesValidated, JobOptions, SfmDone, VideoInfo
from photosplat_libs.worker import JobContext

from photosplat_colmap import known_poses, outputs, pipeline
from photosplat_colmap.capture import Photo
from photosplat_colmap.video import FrameChoice, extract_frames

_PARALLEL_DOWNLOADS = 8


async def run_sfm(event: ImagesValidated, ctx: JobContext) -> SfmDone:
    input_dir = ctx.work_dir / "input"
    input_dir.mkdir()
    options = sfm_options(event.options)
    frames: FrameChoice | None = None
    if event.video is not None:
        frames = await _video_frames(ctx, event.video, input_dir, options.max_image_side)
        photos, options = frames.photos, dataclasses.replace(options, video=True)
    else:
        ctx.log(f"downloading {len(event.images)} photos")
        photos = await _download(ctx, event.images, input_dir)
    if event.poses_key:
        poses = await known_poses.fetch(ctx.store, event.poses_key, ctx.work_dir / "poses")
        result = await asyncio.to_thread(known_poses.run, poses, photos, ctx.work_dir / "sfm", ctx.work_dir / "out", options, ctx)
    else:
        result = await asyncio.to_thread(pipeline.run, photos, ctx.work_dir / "sfm", ctx.work_dir / "out", options, ctx)
    if frames is not None:
        result.timings = {"frames": frames.seconds, **result.timings}
    sparse_key = await outputs.upload(ctx.store, ctx.job_id, result)
    return SfmDone(
        job_id=ctx.job_id,
        sparse_key=sparse_key,
        registered_images=result.registered_images,
        total_images=result.total_images,
        points=result.points,
        reprojection_error=result.reprojection_error,
        options=event.options,
        stats=result.stats(),
    )


def sfm_options(options: JobOptions) -> pipeline.SfmOptions:
    if options.original_resolution:
        return pipeline.SfmOptions(max_image_side=None)
    return pipeline.SfmOptions(max_image_side=pipeline.DEFAULT_MAX_SIDE)


async def _video_frames(ctx: JobContext, video: VideoInfo, folder: Path, max_side: int | None) -> FrameChoice:
    """The video downloaded and its frames chosen into ``folder`` (the video itself is not kept)."""
    path = ctx.work_dir / "video.mp4"
    ctx.log(f"downloading the video: {video.width}x{video.height} {video.codec}, {video.duration_seconds:.1f} s")
    await ctx.store.get_file(video.key, str(path))
    choice = await asyncio.to_thread(
        extract_frames, path, folder, max_frames=video.max_frames, max_side=max_side, reporter=ctx
    )
    path.unlink()
    ctx.log(choice.summary())
    return choice


async def _download(ctx: JobContext, images: tuple[ImageInfo, ...], folder: Path) -> list[Photo]:
    limit = asyncio.Semaphore(_PARALLEL_DOWNLOADS)

    async def fetch(info: ImageInfo) -> Photo:
        # Local names come from our own keys (``0007.jpg``), never from the user's file names.
        name = PurePosixPath(info.key).name
        async with limit:
            await ctx.store.get_file(info.key, str(folder / name))
        return Photo(
            path=folder / name,
            name=name,
            focal_length_px=info.focal_length_px,
            camera=info.camera,
            original_name=info.name,
        )

    return list(await asyncio.gather(*(fetch(info) for info in images)))
