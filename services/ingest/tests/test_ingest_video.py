"""A video instead of photos, on the real adapters (Postgres, an S3 server, RabbitMQ): accepted
through both flows with only its video track kept, or refused with a 4xx naming the file and the
rule, leaving no row and no object. The videos are real, encoded by PyAV (photosplat_testkit.video)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from photosplat_ingest.app import create
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.validation import FileRejected, Limits, Rule, check_video
from photosplat_libs.bus import Delivery, QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job
from photosplat_libs.events import Envelope, ImagesValidated, JobSubmitted
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore, create_store
from photosplat_libs.topology import declare_topology
from photosplat_testkit.video import noise_frames, write_video

BASE = "http://ingest.test"
GPS = {"location": "+48.8577+002.2950/"}


@dataclass
class Stack:
    client: httpx.AsyncClient
    db: Database
    store: ObjectStore
    events: asyncio.Queue[Envelope]

    async def validated(self) -> ImagesValidated:
        while not isinstance(event := await asyncio.wait_for(self.events.get(), 10), ImagesValidated):
            pass
        return event

    async def nothing_kept(self) -> bool:
        async with self.db.transaction() as session:
            jobs = await session.scalar(select(func.count()).select_from(Job))
        return jobs == 0 and await self.store.list("jobs/") == []


@pytest.fixture
async def stack(pg_url: str, s3_url: str, amqp_url: str, bus_namespace: str) -> AsyncIterator[Stack]:
    bus, store, db = RabbitBus(amqp_url, namespace=bus_namespace), create_store(s3_url), Database(pg_url)
    await bus.start()
    await declare_topology(bus)
    events: asyncio.Queue[Envelope] = asyncio.Queue()

    async def collect(event: Envelope, _delivery: Delivery) -> None:
        events.put_nowait(event)

    await bus.consume(QueueSpec("test.video", (JobSubmitted.routing_key, ImagesValidated.routing_key)), collect)
    service = create(IngestSettings(public_base_url=BASE), Deps(bus=bus, store=store, db=db))
    app = FastAPI()
    assert service.router is not None
    app.include_router(service.router)
    await service.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Stack(client, db, store, events)
    await service.stop()
    await bus.close()
    await db.dispose()


def _video(
    tmp_path: Path, name: str = "walk.mp4", frames: int = 25, size: tuple[int, int] = (320, 240), **options: Any
) -> bytes:
    """A real video of noise frames (10 fps: 25 frames are 2.5 s), as bytes; black frames when
    large (noise would take long to encode)."""
    width, height = size
    large = width * height > 640 * 480
    pixels = [np.zeros((height, width, 3), np.uint8)] * frames if large else noise_frames(frames, width, height)
    return write_video(pixels, tmp_path / name, **options).read_bytes()


async def test_a_video_becomes_a_job_whose_stored_video_has_no_sound_and_no_location(
    stack: Stack, tmp_path: Path
) -> None:
    video = _video(tmp_path, "IMG_0042.MOV", container="mov", metadata=GPS, audio=True, rotation=-90)

    response = await stack.client.post("/recon/jobs", files=[("files", ("IMG_0042.MOV", video, "video/quicktime"))])

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["capture"], body["image_count"]) == ("video", 0)
    validated = await stack.validated()
    assert validated.capture == "video" and validated.images == () and validated.video is not None
    info = validated.video
    assert (info.name, info.codec, info.key) == ("IMG_0042.MOV", "h264", f"jobs/{body['job_id']}/video/source.mp4")
    # Stored 320x240 with a portrait phone's rotation: what the viewer of the video sees.
    assert (info.width, info.height, info.duration_seconds, info.frame_rate) == (240, 320, 2.5, 10.0)
    assert info.max_frames == IngestSettings().max_files
    stored = tmp_path / "stored.mp4"
    await stack.store.get_file(info.key, str(stored))
    assert info.bytes == stored.stat().st_size
    with av.open(str(stored)) as container:
        assert [s.type for s in container.streams] == ["video"]
        assert "location" not in container.metadata and container.streams.video[0].frames == 25
        assert next(container.decode(video=0)).rotation == -90
    async with stack.db.transaction() as session:
        job = await session.get(Job, uuid.UUID(body["job_id"]))
    assert job is not None and (job.stage, job.image_count) == ("sfm", 0)


@pytest.mark.parametrize(
    ("name", "options", "rule", "says"),
    [
        ("clip.mp4", {"codec": "mpeg4"}, "codec", "'mpeg4' is not accepted"),
        ("clip.mov", {"codec": "mjpeg", "container": "mov"}, "codec", "'mjpeg' is not accepted"),
        ("short.mp4", {"frames": 15}, "duration", "1.5 s is shorter than the minimum of 2 s"),
        ("huge.mp4", {"frames": 2, "fps": 1, "size": (4096, 2304)}, "max_pixels", "4096x2304"),
        ("tiny.mp4", {"size": (320, 160)}, "min_side", "smaller than 240 pixels"),
    ],
    ids=["mpeg4", "mjpeg", "too-short", "too-large", "too-small"],
)
async def test_a_video_outside_the_rules_is_refused_naming_the_rule(
    stack: Stack, tmp_path: Path, name: str, options: dict, rule: str, says: str
) -> None:
    video = _video(tmp_path, name, **options)

    response = await stack.client.post("/recon/jobs", files=[("files", (name, video, "video/mp4"))])

    assert response.status_code == 400, response.text
    [error] = response.json()["detail"]["errors"]
    assert (error["file"], error["rule"]) == (name, rule) and says in error["message"], error
    assert await stack.nothing_kept()


async def test_a_file_named_mp4_that_is_no_video_is_refused_by_its_content(stack: Stack, make_photo) -> None:
    response = await stack.client.post("/recon/jobs", files=[("files", ("walk.mp4", make_photo(), "video/mp4"))])

    assert response.status_code == 400
    assert response.json()["detail"]["errors"] == [
        {"file": "walk.mp4", "rule": "format", "message": "not an MP4 or MOV video"}
    ]
    assert await stack.nothing_kept()


async def test_a_video_comes_alone(stack: Stack, tmp_path: Path, make_photo) -> None:
    video = _video(tmp_path)
    photos = [("files", (f"{i}.jpg", make_photo(seed=i), "image/jpeg")) for i in range(3)]

    part = ("files", ("walk.mp4", video, "video/mp4"))
    poses = ("poses", ("transforms.json", b"{}", "application/json"))

    with_photos = await stack.client.post("/recon/jobs", files=[part, *photos])
    two = await stack.client.post("/recon/jobs", files=[("files", (n, video, "video/mp4")) for n in ("a.mp4", "b.mp4")])
    with_poses = await stack.client.post("/recon/jobs", files=[part, poses])

    for refused, count in ((with_photos, 4), (two, 2)):
        assert refused.status_code == 400
        [error] = refused.json()["detail"]["errors"]
        assert error["rule"] == "video"
        assert f"a video comes alone: send one video, or photos ({count} files" in error["message"]
    assert with_poses.status_code == 400 and with_poses.json()["detail"]["errors"][0]["rule"] == "video"
    assert await stack.nothing_kept()


async def test_a_video_through_a_presigned_url_is_checked_at_submit(stack: Stack, tmp_path: Path) -> None:
    wrong, right = _video(tmp_path, "a.mp4", codec="mpeg4"), _video(tmp_path, "b.mp4")
    declared = await stack.client.post("/recon/uploads", json={"files": [{"name": "walk.mp4", "size": len(wrong)}]})
    assert declared.status_code == 201, declared.text
    body = declared.json()
    [slot] = body["uploads"]
    assert slot["headers"] == {"Content-Type": "video/mp4"}
    auth = {"Authorization": f"Bearer {body['token']}"}
    async with httpx.AsyncClient() as s3:
        assert (await s3.put(slot["url"], content=wrong, headers=slot["headers"])).status_code == 200
        refused = await stack.client.post(f"/recon/jobs/{body['job_id']}/submit", headers=auth)
        # Refused and deleted; the client declares the right one and submits that.
        assert refused.status_code == 400 and refused.json()["detail"]["errors"][0]["rule"] == "codec"
        assert await stack.store.list(f"jobs/{body['job_id']}/") == []
        again = await stack.client.post(
            "/recon/uploads", json={"files": [{"name": "walk.mp4", "size": len(right)}]}, headers=auth
        )
        body = again.json()
        [slot] = body["uploads"]
        assert (await s3.put(slot["url"], content=right, headers=slot["headers"])).status_code == 200
    submitted = await stack.client.post(f"/recon/jobs/{body['job_id']}/submit", headers=auth)

    assert submitted.status_code == 200, submitted.text
    assert (submitted.json()["capture"], submitted.json()["image_count"]) == ("video", 0)
    validated = await stack.validated()
    assert validated.video is not None and validated.video.duration_seconds == 2.5
    assert [o.key for o in await stack.store.list(f"jobs/{body['job_id']}/")] == [validated.video.key]


async def test_a_declared_video_comes_alone_too(stack: Stack) -> None:
    declared = await stack.client.post(
        "/recon/uploads", json={"files": [{"name": "walk.mp4", "size": 10}, {"name": "0.jpg", "size": 10}]}
    )
    too_big = await stack.client.post("/recon/uploads", json={"files": [{"name": "walk.mp4", "size": 3 * 2**30}]})

    assert declared.status_code == 400 and declared.json()["detail"]["errors"][0]["rule"] == "video"
    assert too_big.status_code == 400 and too_big.json()["detail"]["errors"][0]["rule"] == "max_bytes"
    assert await stack.nothing_kept()


def test_a_video_cut_short_in_transfer_is_corrupt(tmp_path: Path) -> None:
    # The index first (as phones and "faststart" write it): the container opens, packets are missing.
    whole = write_video(noise_frames(30), tmp_path / "whole.mp4", container_options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(FileRejected) as refused:
        check_video(cut, tmp_path / "out.mp4", Limits())

    assert refused.value.rule is Rule.CORRUPT and "cut short" in refused.value.message


@pytest.mark.parametrize("codec", ["libx265", "libvpx-vp9"])
def test_hevc_and_vp9_are_accepted(tmp_path: Path, codec: str) -> None:
    # Black frames, 2 a second: these encoders are slow on noise.
    source = write_video([np.zeros((240, 320, 3), np.uint8)] * 5, tmp_path / "in.mp4", codec=codec, fps=2)

    checked = check_video(source, tmp_path / "out.mp4", Limits())

    assert checked.codec == {"libx265": "hevc", "libvpx-vp9": "vp9"}[codec] and checked.duration_seconds == 2.5
