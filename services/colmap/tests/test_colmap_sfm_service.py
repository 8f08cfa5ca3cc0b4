"""The real SfM work behind the colmap worker, on real RabbitMQ and a real S3 server:
ImagesValidated in, SfmDone (or a helpful StageFailed) out, the model in the store."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pycolmap

import pytest
from photosplat_colmap.app import create
from photosplat_colmap.settings import ColmapSettings
from photosplat_libs import keys, topology
from photosplat_libs.bus import QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, SfmDone, StageFailed, StageProgress
from photosplat_libs.service import Deps, Service
from photosplat_libs.store import ObjectStore, create_store
from photosplat_testkit.synthetic import SyntheticScene, render_scene, transforms_frames
from photosplat_testkit.harness import EventRecorder
from PIL import Image

PROBE = QueueSpec("probe-sfm", ("#",), delivery_limit=100, prefetch=100)


class Harness(EventRecorder):
    def __init__(self, bus: RabbitBus, observer: RabbitBus, store: ObjectStore, service: Service) -> None:
        super().__init__(default_timeout=90.0)
        self.bus, self.observer, self.store, self.service = bus, observer, store, service

    async def submit(self, scene: SyntheticScene, names: list[str] | None = None, with_poses: bool = False) -> uuid.UUID:
        job_id = uuid.uuid4()
        infos = []
        for index, (name, pixels) in enumerate(zip(names or scene.names, scene.images, strict=True)):
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
            key = keys.image(job_id, index, ".jpg")
            await self.store.put(key, buffer.getvalue(), "image/jpeg")
            infos.append(
                ImageInfo(
                    key=key,
                    name=name,
                    width=scene.width,
                    height=scene.height,
                    bytes=len(buffer.getvalue()),
                    focal_length_px=scene.focal_35mm / 36 * scene.width,
                    camera="PhotoSplat Synthetic camera",
                )
            )
        poses_key = None
        if with_poses:
            frames = transforms_frames(scene, [f"./images/{Path(n).stem}" for n in names or scene.names])
            doc = {"fl_x": float(scene.K[0, 0]), "fl_y": float(scene.K[1, 1]), "frames": frames}
            poses_key = keys.poses(job_id)
            await self.store.put(poses_key, json.dumps(doc).encode(), "application/json")
        await self.observer.publish(ImagesValidated(job_id=job_id, images=tuple(infos), poses_key=poses_key))
        return job_id


@pytest.fixture
async def harness(amqp_url: str, bus_namespace: str, s3_url: str) -> AsyncIterator[Harness]:
    observer = RabbitBus(amqp_url, namespace=bus_namespace)
    await observer.start()
    await topology.declare_topology(observer)
    bus = RabbitBus(amqp_url, namespace=bus_namespace)
    await bus.start()
    store = create_store(s3_url)
    service = create(
        ColmapSettings(worker_name="sfm-test", bus_url=amqp_url, store_url=s3_url), Deps(bus=bus, store=store)
    )
    h = Harness(bus, observer, store, service)
    await observer.consume(PROBE, h.handler)
    await service.start()
    yield h
    await service.stop()
    await bus.close()
    await observer.close()


def of_job(job_id: uuid.UUID, kind: type[Envelope]) -> Callable[[Envelope], bool]:
    return lambda e: isinstance(e, kind) and e.job_id == job_id


async def test_images_validated_in_sfm_done_out_with_the_model_in_the_store(harness: Harness) -> None:
    scene = render_scene(n_views=24, seed=0)
    job_id = await harness.submit(scene)

    done = await harness.wait_for(of_job(job_id, SfmDone))

    assert isinstance(done, SfmDone)
    assert done.sparse_key == f"jobs/{job_id}/sfm/undistorted/"
    assert (done.registered_images, done.total_images) == (24, 24)
    assert done.points > 300 and 0 < done.reprojection_error < 1.0
    assert done.stats.mean_track_length > 2 and done.stats.blurry_removed == 0
    timings = done.stats.timings
    assert None not in (timings.extraction, timings.matching, timings.mapping) and timings.known_poses is None
    stored = {info.key for info in await harness.store.list(f"jobs/{job_id}/sfm/")}
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        assert f"{done.sparse_key}sparse/{name}" in stored
        assert f"jobs/{job_id}/sfm/sparse/{name}" in stored
    assert sum(k.startswith(f"{done.sparse_key}images/") for k in stored) == 24
    progress = [e for e in harness.events if isinstance(e, StageProgress) and e.job_id == job_id]
    assert progress and progress[-1].fraction == pytest.approx(1.0)


async def test_unrelated_photos_fail_once_with_a_message_for_the_photographer(harness: Harness) -> None:
    views = [render_scene(n_views=1, seed=200 + i, n_points=10) for i in range(6)]
    scene = views[0]
    scene.images = [v.images[0] for v in views]
    names = [f"holiday_{i}.jpg" for i in range(6)]
    job_id = await harness.submit(scene, names)

    failed = await harness.wait_for(of_job(job_id, StageFailed))

    assert isinstance(failed, StageFailed)
    assert failed.final and not failed.retryable and failed.error_type == "UserError"
    assert "overlap" in failed.message and "Traceback" not in failed.message
    assert not any(of_job(job_id, SfmDone)(e) for e in harness.events)


async def test_photos_with_their_cameras_skip_sfm_and_keep_those_poses(harness: Harness, tmp_path: Path) -> None:
    scene = render_scene(n_views=8, seed=1)
    names = [f"IMG_{i:04d}.jpg" for i in range(8)]
    job_id = await harness.submit(scene, names, with_poses=True)

    done = await harness.wait_for(of_job(job_id, SfmDone))

    assert isinstance(done, SfmDone)
    assert (done.registered_images, done.total_images, done.points) == (8, 8, 0)
    assert done.stats.mapper == "known poses" and done.stats.timings.known_poses is not None
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        (sparse / name).write_bytes(await harness.store.get(f"{done.sparse_key}sparse/{name}"))
    model = pycolmap.Reconstruction(str(sparse))
    by_index = {int(Path(i.name).stem): i for i in model.images.values()}
    assert sorted(by_index) == list(range(8))
    for index, image in by_index.items():
        assert np.allclose(np.asarray(image.cam_from_world().matrix()), scene.cams_from_world[index], atol=1e-5)
