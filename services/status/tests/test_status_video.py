"""A video capture in the projection: the job has no photos until the colmap stage has chosen its
frames, then it counts those (on Postgres)."""

from __future__ import annotations

from typing import Any

from photosplat_libs import keys
from photosplat_libs.db import Database
from photosplat_libs.events import ImagesValidated, SfmDone, VideoInfo
from photosplat_libs.store import ObjectStore
from photosplat_status.projection import project


async def test_a_video_job_counts_the_frames_sfm_chose(pg_url: str, folder_store: ObjectStore, kit: Any) -> None:
    db = Database(pg_url)
    job = await kit.insert_job(db)
    video = VideoInfo(
        key=keys.video(job.id), name="walk.mp4", bytes=1000, codec="h264", width=1920, height=1080,
        duration_seconds=12.0,
    )

    await project(db, folder_store, ImagesValidated(job_id=job.id, images=(), capture="video", video=video))
    queued = await kit.load_job(db, job.id)
    done = SfmDone(
        job_id=job.id, sparse_key="s/", registered_images=28, total_images=30, points=900, reprojection_error=0.5
    )
    await project(db, folder_store, done)
    placed = await kit.load_job(db, job.id)
    await db.dispose()

    assert (queued.stage, queued.image_count) == ("sfm", 0)
    assert (placed.image_count, placed.registered_image_count) == (30, 28)
