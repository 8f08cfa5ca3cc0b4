"""`wait` follows the job's event stream, resuming it with Last-Event-ID, and polls a server
without one."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
from photosplat_client import JobState, JobStatus, PhotoSplatClient, SubmitOptions, submit_photos
from photosplat_client.progress import UploadProgress


def test_wait_follows_the_event_stream_and_resumes_it_with_last_event_id(server: str, photos: Path) -> None:
    sent: list[httpx.Request] = []
    owner: dict[str, str] = {}

    def on_request(request: httpx.Request) -> None:
        sent.append(request)
        # Once a stream was resumed, the job is cancelled (quicker than training it to the end).
        if request.url.path.endswith("/events") and "last-event-id" in request.headers and not owner.get("done"):
            owner["done"] = "yes"
            auth = {"Authorization": f"Bearer {owner['token']}"}
            httpx.post(f"{server}/recon/jobs/{owner['job']}/cancel", headers=auth)

    http = httpx.Client(timeout=60, event_hooks={"request": [on_request]})
    with PhotoSplatClient(server, http=http) as client:
        result = submit_photos(
            client, photos, options=SubmitOptions(preset="preview"), progress=UploadProgress(io.StringIO(), live=False)
        )
        owner |= {"job": str(result.job_id), "token": result.token}
        sent.clear()
        seen: list[JobStatus] = []
        final = client.wait(result.job_id, timeout=120, on_status=seen.append)

    # Cancelled, unless training won the race.
    assert final.status in (JobState.CANCELLED, JobState.DONE) and seen[-1].status == final.status
    streams = [r for r in sent if r.url.path.endswith("/events")]
    polls = [r for r in sent if r.url.path.endswith("/status")]
    # The server ends each stream after a second (conftest): a later one resumes from the last id.
    assert len(streams) >= 2 and "last-event-id" not in streams[0].headers
    assert all(r.headers["last-event-id"].count(".") == 3 for r in streams[1:])
    assert len(polls) == 1  # only the whole answer of the ended job


def test_wait_polls_a_server_without_the_event_stream() -> None:
    job_id = "6d1c1f6e-8a53-4b7a-9d1e-0f3b0b0d6a11"
    answers = iter(["RUNNING", "RUNNING", "DONE"])
    asked: list[str] = []

    def older_server(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"detail": "Not Found"})
        state = next(answers)
        body = {"job_id": job_id, "status": state, "stage": "train", "progress": 1.0 if state == "DONE" else 0.5}
        body |= {"overall_progress": 0.5, "created_at": "2026-01-01T00:00:00Z", "image_count": 3}
        return httpx.Response(200, content=json.dumps(body))

    http = httpx.Client(transport=httpx.MockTransport(older_server))
    with PhotoSplatClient("http://old.test", "t" * 43, http=http) as client:
        final = client.wait(job_id, interval=0.01, timeout=10)
    assert final.status == JobState.DONE
    assert asked == [f"/recon/jobs/{job_id}/events"] + [f"/recon/jobs/{job_id}/status"] * 3


def test_wait_resumes_a_dropped_stream_from_the_last_event_id() -> None:
    job_id = "6d1c1f6e-8a53-4b7a-9d1e-0f3b0b0d6a12"
    state = {"job_id": job_id, "stage": "train", "progress": 0.5, "overall_progress": 0.6}
    state |= {"created_at": "2026-01-01T00:00:00Z", "image_count": 3}
    resumed_from: list[str | None] = []

    def frames(*events: tuple[str, str, dict[str, object]], drop: bool) -> Iterator[bytes]:
        yield b"retry: 10\n\n"
        for kind, event_id, data in events:
            yield f"event: {kind}\ndata: {json.dumps(data)}\nid: {event_id}\n\n".encode()
        if drop:
            raise httpx.ReadError("connection reset")

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={**state, "status": "DONE", "log_tail": ["done"]})
        resumed_from.append(request.headers.get("last-event-id"))
        if len(resumed_from) == 1:
            content = frames(("state", "1.-1..aa", {**state, "status": "RUNNING"}), drop=True)
        else:
            content = frames(("final", "2.-1..bb", {**state, "status": "DONE"}), drop=False)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)

    seen: list[JobStatus] = []
    http = httpx.Client(transport=httpx.MockTransport(server))
    with PhotoSplatClient("http://s.test", "t" * 43, http=http) as client:
        final = client.wait(job_id, timeout=10, on_status=seen.append)
    assert resumed_from == [None, "1.-1..aa"]
    assert [s.status for s in seen] == [JobState.RUNNING, JobState.DONE]
    assert final.status == JobState.DONE and final.log_tail == ["done"]
