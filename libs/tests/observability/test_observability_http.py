"""The web services' /metrics and latency middleware, through the app every HTTP service runs
(runner.build_app), scraped over its ASGI interface; and one process with a web service and a worker
(as in `photosplat up`), whose /metrics shows the worker's job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from photosplat_libs import topology
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import Envelope, ImageInfo, ImagesValidated, SfmDone, Stage
from photosplat_libs.runner import build_app, running
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from photosplat_libs.worker import JobContext, Worker
from photosplat_testkit.metrics import scraped


class WebService:
    """A stand-in HTTP service with the kinds of routes the real ones have."""

    name = "web"

    def __init__(self) -> None:
        self.router: APIRouter | None = APIRouter()

        @self.router.get("/recon/jobs/{job_id}")
        async def job(job_id: str) -> dict[str, str]:
            if job_id == "missing":
                raise HTTPException(404, "no such job")
            return {"id": job_id}

        @self.router.get("/recon/pub/{key}/{file}")
        async def stream(key: str, file: str) -> StreamingResponse:
            return StreamingResponse(iter([b"a", b"b"]), media_type="application/octet-stream")

        @self.router.post("/boom")
        async def boom() -> None:
            raise RuntimeError("a bug")

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[Deps]:
    store = FolderStore.from_url(f"file:{tmp_path}/objects")
    yield Deps(bus=MemoryBus(), store=store)


async def metrics_of(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_requests_are_counted_by_route_template(deps: Deps) -> None:
    app = build_app([WebService()], deps)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
        before = await metrics_of(client)
        job_id = str(uuid.uuid4())
        assert (await client.get(f"/recon/jobs/{job_id}")).status_code == 200
        assert (await client.get("/recon/jobs/missing")).status_code == 404
        assert (await client.get("/recon/pub/k/scene.splat")).content == b"ab"
        assert (await client.post("/boom")).status_code == 500
        assert (await client.get(f"/nothing/{job_id}")).status_code == 404
        text = await metrics_of(client)

    def delta(name: str, **labels: str) -> float:
        return (scraped(text, name, **labels) or 0) - (scraped(before, name, **labels) or 0)

    route = "/recon/jobs/{job_id}"
    assert delta("photosplat_http_requests_total", method="GET", route=route, status="200") == 1
    assert delta("photosplat_http_requests_total", method="GET", route=route, status="404") == 1
    assert delta("photosplat_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert delta("photosplat_http_requests_total", method="GET", route="/recon/pub/{key}/{file}", status="200") == 1
    assert delta("photosplat_http_requests_total", method="POST", route="/boom", status="500") == 1
    assert delta("photosplat_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    # Ids never become label values (each would be a new time series).
    assert job_id not in text


async def test_one_process_exports_its_workers_metrics_on_the_web_port(deps: Deps) -> None:
    """`photosplat up`: no worker port, the web app's /metrics has the workers' metrics too."""

    async def work(event: Envelope, ctx: JobContext) -> Envelope:
        return SfmDone(
            job_id=event.job_id, sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
        )

    worker = Worker("colmap", Stage.SFM, topology.COLMAP_WORK, work, deps, worker_name="w-up")
    services = [WebService(), worker]
    app = build_app(services, deps)
    image = ImageInfo(key="jobs/x/images/0000.jpg", name="0000.jpg", width=640, height=480, bytes=1000)
    async with running(services, deps):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://up") as client:
            labels = {"stage": "sfm", "outcome": "done"}
            before = scraped(await metrics_of(client), "photosplat_stage_duration_seconds_count", **labels) or 0
            await deps.bus.publish(ImagesValidated(job_id=uuid.uuid4(), images=(image,)))
            for _ in range(100):
                text = await metrics_of(client)
                if (scraped(text, "photosplat_stage_duration_seconds_count", **labels) or 0) > before:
                    break
                await asyncio.sleep(0.05)
            assert scraped(text, "photosplat_stage_duration_seconds_count", **labels) == before + 1
            assert scraped(text, "photosplat_queue_consumers", queue="colmap.work") == 1
