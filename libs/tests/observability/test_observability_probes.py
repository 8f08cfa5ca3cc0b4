"""A worker's metrics port, as a worker process serves it (runner.serve with ``metrics_port``) on a
real RabbitMQ connection: /metrics with its queue and stage metrics, /healthz that fails when the
event loop is stuck, /readyz that follows the bus."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from photosplat_libs import topology
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, SfmDone, Stage
from photosplat_libs.observability import probes
from photosplat_libs.runner import serve
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from photosplat_libs.worker import JobContext, Worker
from photosplat_testkit.metrics import scraped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def work(event: Envelope, ctx: JobContext) -> Envelope:
    return SfmDone(
        job_id=event.job_id, sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
    )


class WorkerProcess:
    """A colmap worker served as its own process serves it, on a task of this test's loop."""

    def __init__(self, deps: Deps, work_root: Path) -> None:
        self.deps, self.port = deps, free_port()
        name = "w-probe"
        worker = Worker("colmap", Stage.SFM, topology.COLMAP_WORK, work, deps, worker_name=name, work_root=work_root)
        self.task = asyncio.create_task(
            serve([worker], deps, host="127.0.0.1", port=None, log_level="INFO", metrics_port=self.port)
        )
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    async def until(self, path: str, status: int) -> httpx.Response:
        for _ in range(200):
            try:
                response = await self.client.get(path)
                if response.status_code == status:
                    return response
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path} never answered {status}")


@pytest.fixture
async def process(amqp_url: str, bus_namespace: str, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    store = FolderStore.from_url(f"file:{tmp_path}/objects")
    process = WorkerProcess(Deps(bus=RabbitBus(amqp_url, namespace=bus_namespace), store=store), tmp_path / "scratch")
    yield process
    await process.client.aclose()
    process.task.cancel()
    await asyncio.gather(process.task, return_exceptions=True)


async def test_metrics_health_and_readiness_on_rabbitmq(process: WorkerProcess) -> None:
    await process.until("/readyz", 200)
    assert (await process.client.get("/healthz")).status_code == 200
    text = (await process.until("/metrics", 200)).text
    assert scraped(text, "photosplat_queue_consumers", queue="colmap.work") == 1

    labels = {"stage": "sfm", "outcome": "done"}
    before = scraped(text, "photosplat_stage_duration_seconds_count", **labels) or 0
    image = ImageInfo(key="jobs/x/images/0000.jpg", name="0000.jpg", width=640, height=480, bytes=1000)
    await process.deps.bus.publish(ImagesValidated(job_id=uuid.uuid4(), images=(image,)))
    for _ in range(100):
        text = (await process.client.get("/metrics")).text
        if (scraped(text, "photosplat_stage_duration_seconds_count", **labels) or 0) > before:
            break
        await asyncio.sleep(0.05)
    assert scraped(text, "photosplat_stage_duration_seconds_count", **labels) == before + 1

    # The connection gone, the worker consumes nothing: not ready, though its process lives.
    await process.deps.bus.close()
    assert (await process.client.get("/readyz")).status_code == 503
    assert (await process.client.get("/healthz")).status_code == 200
    assert (await process.client.get("/other")).status_code == 404


async def test_health_fails_while_the_event_loop_is_stuck(
    process: WorkerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    await process.until("/healthz", 200)
    monkeypatch.setattr(probes, "LOOP_TIMEOUT_SECONDS", 0.3)
    answers: list[int] = []
    url = f"http://127.0.0.1:{process.port}"

    def ask() -> None:
        answers.extend(httpx.get(url + path).status_code for path in ("/healthz", "/metrics"))

    probe = threading.Thread(target=ask)
    probe.start()
    time.sleep(1.0)  # blocks the loop, as a handler that never awaits would
    await asyncio.to_thread(probe.join, 10)
    # The loop did not answer in time; /metrics is served beside the loop and still answers.
    assert answers == [503, 200]
