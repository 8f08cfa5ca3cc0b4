"""Photos with their cameras, from upload to the SfM stage's model, on real RabbitMQ, Postgres and S3:
a COLMAP text model as the poses (multipart or presigned), and poses through the presigned flow.
Ingest and the colmap worker run their production code; the colmap stage skips SfM and its model
must hold the uploaded cameras (and points)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pycolmap
import pytest
from fastapi import FastAPI
from photosplat_testkit.colmap_text import Field, colmap_text_model, model_uploads, photo_uploads
from photosplat_testkit.harness import EventRecorder
from photosplat_testkit.poses import pose_errors, poses_of
from photosplat_testkit.synthetic import SyntheticScene, known_poses_upload, render_scene

from photosplat_colmap.app import create as create_colmap
from photosplat_colmap.settings import ColmapSettings
from photosplat_ingest.app import create as create_ingest
from photosplat_ingest.settings import IngestSettings
from photosplat_libs.bus import QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.events import ImagesValidated, SfmDone, StageFailed
from photosplat_libs.runner import running
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore, create_store
from photosplat_libs.topology import declare_topology

BASE = "http://ingest.test"
PROBE = QueueSpec("probe-known-poses", ("#",), delivery_limit=100, prefetch=100)


@dataclass
class Stack:
    http: httpx.AsyncClient
    store: ObjectStore
    events: EventRecorder

    async def sfm_of(self, job_id: str) -> SfmDone:
        """The job's SfmDone (a StageFailed fails the test with its message)."""
        ended = await self.events.wait_for(lambda e: str(e.job_id) == job_id and isinstance(e, SfmDone | StageFailed))
        assert isinstance(ended, SfmDone), ended
        return ended

    async def model(self, done: SfmDone, folder: Path) -> pycolmap.Reconstruction:
        folder.mkdir()
        for name in ("cameras.bin", "images.bin", "points3D.bin"):
            (folder / name).write_bytes(await self.store.get(f"{done.sparse_key}sparse/{name}"))
        return pycolmap.Reconstruction(str(folder))


@pytest.fixture
async def stack(pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str) -> AsyncIterator[Stack]:
    events = EventRecorder(default_timeout=120.0)
    observer = RabbitBus(amqp_url, namespace=bus_namespace)
    await observer.start()
    await declare_topology(observer)
    await observer.consume(PROBE, events.handler)
    # Each service with its own connections, as separate processes would have.
    ingest_deps = Deps(bus=RabbitBus(amqp_url, namespace=bus_namespace), store=create_store(s3_url), db=Database(pg_url))
    colmap_deps = Deps(bus=RabbitBus(amqp_url, namespace=bus_namespace), store=create_store(s3_url))
    ingest = create_ingest(IngestSettings(public_base_url=BASE), ingest_deps)
    colmap = create_colmap(
        ColmapSettings(worker_name="known-poses-test", bus_url=amqp_url, store_url=s3_url), colmap_deps
    )
    async with AsyncExitStack() as exits:
        await exits.enter_async_context(running([ingest], ingest_deps))
        await exits.enter_async_context(running([colmap], colmap_deps))
        app = FastAPI()
        assert ingest.router is not None
        app.include_router(ingest.router)
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, timeout=60)
        exits.push_async_callback(http.aclose)
        yield Stack(http, create_store(s3_url), events)
    await observer.close()


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return render_scene(n_views=6, width=160, height=120, n_points=1500, seed=6)


def _truth(scene: SyntheticScene) -> dict[str, np.ndarray]:
    return dict(zip(scene.names, scene.cams_from_world, strict=True))


def _renamed(model: pycolmap.Reconstruction, validated: ImagesValidated) -> dict[str, np.ndarray]:
    """The model's poses by the names the photos were uploaded under (the stage's copies are 0000.jpg...)."""
    original = {Path(info.key).name: info.name for info in validated.images}
    return {original[name]: pose for name, pose in poses_of(model).items()}


async def test_a_colmap_model_uploaded_with_the_photos_gives_the_stage_its_cameras_and_points(
    stack: Stack, scene: SyntheticScene, tmp_path: Path
) -> None:
    written = colmap_text_model(scene)
    response = await stack.http.post("/recon/jobs", files=photo_uploads(scene) + model_uploads(written))
    assert response.status_code == 201, response.text
    job_id = response.json()["job_id"]

    done = await stack.sfm_of(job_id)

    validated = next(e for e in stack.events.of(ImagesValidated) if str(e.job_id) == job_id)
    assert validated.poses_key == f"jobs/{job_id}/poses/"
    assert (done.registered_images, done.total_images) == (6, 6) and done.stats.mapper == "known poses"
    points = written["points3D.txt"].count(b"\n") - 3  # after its 3 comment lines, one line per point
    assert done.points == points > 500
    model = await stack.model(done, tmp_path / "sparse")
    errors = pose_errors(_renamed(model, validated), _truth(scene))
    assert errors.rotation_deg.max() < 1e-3 and errors.position.max() < 1e-6, errors.summary()
    true_points = {tuple(np.round(p, 5)) for p in scene.points}
    assert all(tuple(np.round(p.xyz, 5)) in true_points for p in model.points3D.values())


Upload = Callable[[SyntheticScene], tuple[list[Field], list[Field]]]


def _transforms(scene: SyntheticScene) -> tuple[list[Field], list[Field]]:
    fields = known_poses_upload(scene)
    return [f for f in fields if f[0] == "files"], [f for f in fields if f[0] == "poses"]


def _colmap_model(scene: SyntheticScene) -> tuple[list[Field], list[Field]]:
    model = colmap_text_model(scene)
    return photo_uploads(scene), model_uploads({k: v for k, v in model.items() if k != "points3D.txt"})


@pytest.mark.parametrize("upload", [_transforms, _colmap_model], ids=["transforms.json", "colmap-model"])
async def test_poses_declared_and_put_through_presigned_urls_skip_sfm(
    stack: Stack, scene: SyntheticScene, upload: Upload, tmp_path: Path
) -> None:
    photos, poses = upload(scene)
    declared = await stack.http.post(
        "/recon/uploads",
        json={
            "files": [{"name": name, "size": len(data)} for _, (name, data, _) in photos],
            "poses": [{"name": name, "size": len(data)} for _, (name, data, _) in poses],
        },
    )
    assert declared.status_code == 201, declared.text
    body = declared.json()
    slots = body["uploads"]
    assert [s["name"] for s in slots] == [name for _, (name, _, _) in photos + poses]
    async with httpx.AsyncClient() as s3:
        for slot, (_, (_, data, _)) in zip(slots, photos + poses, strict=True):
            put = await s3.put(slot["url"], content=data, headers=slot["headers"])
            assert put.status_code == 200, put.text

    submitted = await stack.http.post(body["submit_url"].removeprefix(BASE), headers={"Authorization": f"Bearer {body['token']}"})
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["image_count"] == len(photos)

    done = await stack.sfm_of(body["job_id"])
    assert (done.registered_images, done.total_images, done.points) == (6, 6, 0)
    assert done.stats.mapper == "known poses"
    validated = next(e for e in stack.events.of(ImagesValidated) if str(e.job_id) == body["job_id"])
    model = await stack.model(done, tmp_path / "sparse")
    truth = dict(zip([name for _, (name, _, _) in photos], scene.cams_from_world, strict=True))
    errors = pose_errors(_renamed(model, validated), truth)
    assert errors.rotation_deg.max() < 1e-3 and errors.position.max() < 1e-4, errors.summary()
    assert await stack.store.list(f"jobs/{body['job_id']}/incoming/") == []


async def test_a_presigned_model_with_a_bad_file_is_refused_at_submit_and_can_be_sent_again(
    stack: Stack, scene: SyntheticScene
) -> None:
    photos, poses = _colmap_model(scene)
    good = {name: data for _, (name, data, _) in poses}
    broken = {**good, "cameras.txt": good["cameras.txt"].replace(b" PINHOLE ", b" PINHOLX ")}
    declared = await stack.http.post(
        "/recon/uploads",
        json={
            "files": [{"name": name, "size": len(data)} for _, (name, data, _) in photos],
            "poses": [{"name": name, "size": len(data)} for name, data in good.items()],
        },
    )
    assert declared.status_code == 201, declared.text
    body = declared.json()
    auth = {"Authorization": f"Bearer {body['token']}"}
    photo_slots, poses_slots = body["uploads"][: len(photos)], body["uploads"][len(photos) :]
    async with httpx.AsyncClient() as s3:
        for slot, data in zip(photo_slots + poses_slots, [d for _, (_, d, _) in photos] + list(broken.values()), strict=True):
            assert (await s3.put(slot["url"], content=data, headers=slot["headers"])).status_code == 200

    refused = await stack.http.post(f"/recon/jobs/{body['job_id']}/submit", headers=auth)

    assert refused.status_code == 400, refused.text
    [error] = refused.json()["detail"]["errors"]
    assert (error["file"], error["rule"]) == ("cameras.txt", "poses") and "'PINHOLX'" in error["message"]
    # The photos wait for the next submit; the poses files are deleted, to be sent again.
    assert len(await stack.store.list(f"jobs/{body['job_id']}/incoming/")) == len(photos)
    assert not any(isinstance(e, ImagesValidated) and str(e.job_id) == body["job_id"] for e in stack.events.events)
    async with httpx.AsyncClient() as s3:
        for slot, data in zip(poses_slots, good.values(), strict=True):
            assert (await s3.put(slot["url"], content=data, headers=slot["headers"])).status_code == 200
    accepted = await stack.http.post(f"/recon/jobs/{body['job_id']}/submit", headers=auth)
    assert accepted.status_code == 200, accepted.text
    assert (await stack.sfm_of(body["job_id"])).registered_images == 6
