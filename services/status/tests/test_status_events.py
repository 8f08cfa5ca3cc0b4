"""The job event stream (GET /recon/jobs/{id}/events) over real HTTP, on PostgreSQL and RabbitMQ:
what it sends and when, resuming with Last-Event-ID on another replica, and who may read it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse
from photosplat_testkit.serving import serving

from photosplat_libs import keys
from photosplat_libs.bus import Bus, create_bus
from photosplat_libs.db import Database
from photosplat_libs.db.job_statistics import CurvePoint
from photosplat_libs.events import ExportInfo, LogLines, Stage, StageFailed, StageProgress, TrainingDone
from photosplat_libs.store import ObjectStore
from photosplat_status.stream_events import Cursor, curve_digest, curve_news

WAIT = 10.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def progress(job_id: uuid.UUID, step: int, fraction: float) -> StageProgress:
    return StageProgress(
        job_id=job_id, stage=Stage.TRAIN, fraction=fraction, eta_seconds=30.0, metrics={"step": step, "loss": 1 / step}
    )


def done(job_id: uuid.UUID) -> TrainingDone:
    export = ExportInfo(format="splat", key=keys.output(job_id, "scene.splat"), bytes=2048)
    return TrainingDone(job_id=job_id, exports=(export,), gaussian_count=1000, psnr=24.0)


async def next_of(events: AsyncIterator[ServerSentEvent], kind: str, seen: list[ServerSentEvent]) -> dict[str, Any]:
    """The data of the next event of ``kind``; every event read on the way goes to ``seen``."""
    while True:
        sse = await asyncio.wait_for(anext(events), WAIT)
        seen.append(sse)
        if sse.event == kind:
            return json.loads(sse.data)


async def rest(events: AsyncIterator[ServerSentEvent]) -> list[ServerSentEvent]:
    """What the stream still sends before it closes."""
    return [sse async for sse in events]


@pytest.fixture
async def rabbit_bus(amqp_url: str, bus_namespace: str) -> AsyncIterator[Bus]:
    bus = create_bus(amqp_url, namespace=bus_namespace)
    await bus.start()
    yield bus
    await bus.close()


async def _app(kit: Any, stack: AsyncExitStack, pg_url: str, bus: Bus, store: ObjectStore, **settings: Any) -> str:
    running = await stack.enter_async_context(kit.running_status(pg_url, bus, store, **settings))
    app = FastAPI()
    app.include_router(running.service.router)
    return await stack.enter_async_context(serving(app))


async def test_a_stream_pushes_progress_log_and_curve_then_the_final_state_and_closes(
    pg_url: str, rabbit_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    # The database is read only every 30 s: what arrives sooner was pushed by the projection.
    async with AsyncExitStack() as stack:
        base = await _app(kit, stack, pg_url, rabbit_bus, folder_store, events_poll_seconds=30.0)
        db = Database(pg_url)
        stack.push_async_callback(db.dispose)
        job = await kit.insert_job(db, stage="train", status="RUNNING")
        url = f"{base}/recon/jobs/{job.id}/events"
        async with httpx.AsyncClient() as http, aconnect_sse(http, "GET", url, headers=bearer(job.token)) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            assert source.response.headers["cache-control"] == "no-cache"
            events, seen = source.aiter_sse(), []
            first = await next_of(events, "state", seen)
            assert (first["status"], first["stage"], first["progress"]) == ("RUNNING", "train", 0.0)

            started = time.monotonic()
            await rabbit_bus.publish(progress(job.id, 100, 0.5))
            state = await next_of(events, "state", seen)
            assert (state["progress"], state["eta_seconds"], state["latest"]["step"]) == (0.5, 30.0, 100)
            curve = await next_of(events, "curve", seen)
            assert curve == {"reset": False, "points": [{"step": 100, "loss": 0.01, "psnr": None}]}
            await rabbit_bus.publish(LogLines(job_id=job.id, stage=Stage.TRAIN, lines=("step 100", "step 200")))
            log = await next_of(events, "log", seen)
            lines = [(line["stage"], line["line"]) for line in log["lines"]]
            assert lines == [("train", "step 100"), ("train", "step 200")]
            assert time.monotonic() - started < 5, "pushed at once, not found by the 30 s poll"

            await rabbit_bus.publish(done(job.id))
            final = await next_of(events, "final", seen)
            assert (final["status"], final["gaussian_count"], final["metrics"]["psnr"]) == ("DONE", 1000, 24.0)
            assert final["viewer_url"].endswith(f"/v/{job.pub_key}")  # the owner's stream, as the status route
            assert await rest(events) == []  # closed after the final event
        # every event carries its id, and no id repeats
        ids = [sse.id for sse in seen if sse.event != "message"]
        assert all(ids) and len(set(ids)) == len(ids)
        assert source.response.is_closed


async def test_a_reconnect_with_last_event_id_on_another_replica_gets_only_later_events(
    pg_url: str, rabbit_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    async with AsyncExitStack() as stack:
        base = await _app(kit, stack, pg_url, rabbit_bus, folder_store)
        # An API replica that projects nothing (its consumers never start): it finds changes by polling.
        replica = await _app(kit, stack, pg_url, rabbit_bus, folder_store, start=False, events_poll_seconds=0.2)
        db = Database(pg_url)
        stack.push_async_callback(db.dispose)
        job = await kit.insert_job(db, stage="train", status="RUNNING")
        path = f"/recon/jobs/{job.id}/events"
        await rabbit_bus.publish(LogLines(job_id=job.id, stage=Stage.TRAIN, lines=("early",)))
        async with httpx.AsyncClient() as http:
            async with aconnect_sse(http, "GET", base + path, headers=bearer(job.token)) as source:
                events, seen = source.aiter_sse(), []
                assert [line["line"] for line in (await next_of(events, "log", seen))["lines"]] == ["early"]
                last_id = seen[-1].id

            await rabbit_bus.publish(progress(job.id, 100, 0.5))
            await rabbit_bus.publish(LogLines(job_id=job.id, stage=Stage.TRAIN, lines=("later",)))
            resumed = {**bearer(job.token), "Last-Event-ID": last_id}
            async with aconnect_sse(http, "GET", replica + path, headers=resumed) as source:
                events, seen = source.aiter_sse(), []
                log = await next_of(events, "log", seen)
                assert [line["line"] for line in log["lines"]] == ["later"]  # not "early" again
                if not any(sse.event == "curve" for sse in seen):
                    await next_of(events, "curve", seen)
                assert "state" in [sse.event for sse in seen]  # the progress it missed
                retried = StageFailed(job_id=job.id, stage=Stage.TRAIN, error_type="X", message="boom", final=False)
                await rabbit_bus.publish(retried)
                await rabbit_bus.publish(done(job.id))
                final = await next_of(events, "final", seen)
                assert final["status"] == "DONE"
                final_id = seen[-1].id

            # A client that already has the final event is told not to come back.
            again = await http.get(replica + path, headers={**bearer(job.token), "Last-Event-ID": final_id})
            assert again.status_code == 204
            # From an older id: what came later (the failure's log line), then the final state again.
            response = await http.get(base + path, headers={**bearer(job.token), "Last-Event-ID": last_id})
            kinds = [sse.event for sse in EventSource(response).iter_sse() if sse.event != "message"]
            assert kinds == ["log", "curve", "final"]


async def test_a_stream_ends_after_its_time_and_resumes_where_it_stopped(
    pg_url: str, rabbit_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    async with AsyncExitStack() as stack:
        base = await _app(kit, stack, pg_url, rabbit_bus, folder_store, events_max_seconds=0.5)
        db = Database(pg_url)
        stack.push_async_callback(db.dispose)
        job = await kit.insert_job(db, stage="train", status="RUNNING")
        url = f"{base}/recon/jobs/{job.id}/events"
        async with httpx.AsyncClient() as http:
            first = await http.get(url, headers=bearer(job.token), timeout=WAIT)
            kinds = [(sse.event, sse.id) for sse in EventSource(first).iter_sse() if sse.event != "message"]
            assert [kind for kind, _ in kinds] == ["state"]  # then it ended, with no final event
            second = await http.get(url, headers={**bearer(job.token), "Last-Event-ID": kinds[-1][1]}, timeout=WAIT)
            assert second.status_code == 200
            assert [sse.event for sse in EventSource(second).iter_sse() if sse.event != "message"] == []


async def test_the_stream_is_authorised_like_the_status_route(
    pg_url: str, rabbit_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    async with AsyncExitStack() as stack:
        base = await _app(kit, stack, pg_url, rabbit_bus, folder_store)
        db = Database(pg_url)
        stack.push_async_callback(db.dispose)
        job = await kit.insert_job(db, stage="export", status="DONE", progress=1.0)
        other = await kit.insert_job(db)
        missing = uuid.uuid4()
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
            for job_id, headers in [
                (job.id, {}),
                (job.id, {"Authorization": "Basic abc"}),
                (job.id, bearer(other.token)),
                (missing, bearer(job.token)),
            ]:
                status = await http.get(f"/recon/jobs/{job_id}/status", headers=headers)
                events = await http.get(f"/recon/jobs/{job_id}/events", headers=headers)
                assert status.status_code in (401, 404)
                assert (events.status_code, events.json()) == (status.status_code, status.json())
            bad = await http.get(f"/recon/jobs/{job.id}/events", headers={**bearer(job.token), "Last-Event-ID": "x"})
            assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]

            # The admin reads any job's stream, without the owner's viewer link.
            admin = await http.get(f"/recon/jobs/{job.id}/events", headers=bearer(kit.admin_token))
            final = [json.loads(sse.data) for sse in EventSource(admin).iter_sse() if sse.event == "final"]
            assert [(f["status"], f["viewer_url"]) for f in final] == [("DONE", None)]


def test_a_cursor_prints_and_parses_back_and_refuses_anything_else() -> None:
    cursor = Cursor(log_id=42, curve_step=300, curve_digest="0a1b", state_digest="ff00")
    assert Cursor.parse(str(cursor)) == cursor and Cursor.parse(str(Cursor())) == Cursor()
    for bad in ("", "1.2.3", "a.1..", "1.1.ZZ.", "1.2.3.4.5", "-5.1.."):
        with pytest.raises(ValueError, match="Last-Event-ID"):
            Cursor.parse(bad)


def test_curve_points_follow_on_or_the_whole_curve_comes_again() -> None:
    curve = tuple(CurvePoint(step=s, loss=1 / s) for s in (100, 200, 300))
    held = Cursor().after_curve(curve[:2])
    news = curve_news(curve, held)
    assert news is not None and (news.reset, [p.step for p in news.points]) == (False, [300])
    assert curve_news(curve, Cursor().after_curve(curve)) is None
    # A restarted training replaced the points from step 200 on: the client's start no longer holds.
    restarted = (curve[0], CurvePoint(step=200, loss=0.4), CurvePoint(step=300, loss=0.2))
    news = curve_news(restarted, Cursor().after_curve(curve))
    assert news is not None and news.reset and news.points == list(restarted)
    assert curve_digest(()) == ""
