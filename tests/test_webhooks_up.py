"""Webhooks through `photosplat up` as a user runs it (one process: ingest registers the callback,
status's sender posts it) to a real HTTP receiver on 127.0.0.1, which the operator allowed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from photosplat_libs.webhooks import SIGNATURE_HEADER, JobEnded, verify
from photosplat_testkit.harness import free_port
from photosplat_testkit.webhook_receiver import WebhookReceiver


@pytest.fixture
def up(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PHOTOSPLAT_INGEST_WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        PHOTOSPLAT_STATUS_WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
    )
    command = [sys.executable, "-m", "photosplat", "up", "--port", str(port), "--data", str(tmp_path / "data")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "photosplat up did not come up"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def delivered(http: httpx.AsyncClient, route: str, auth: dict[str, str]) -> dict[str, Any]:
    """The webhook view once the attempt is recorded (that follows the receiver's answer)."""
    async with asyncio.timeout(10):
        while True:
            view: dict[str, Any] = (await http.get(route, headers=auth)).json()
            if view["deliveries"] and view["deliveries"][0]["state"] == "DELIVERED":
                return view
            await asyncio.sleep(0.05)


async def test_a_cancelled_job_is_announced_to_its_callback(up: str) -> None:
    declared = [{"name": f"{i}.jpg", "size": 1000, "content_type": "image/jpeg"} for i in range(3)]
    with WebhookReceiver() as receiver:
        async with httpx.AsyncClient(base_url=up, timeout=10) as http:
            refused = await http.post(
                "/recon/uploads", json={"files": declared, "callback_url": "http://169.254.169.254/"}
            )
            created = await http.post("/recon/uploads", json={"files": declared, "callback_url": receiver.url})
            assert created.status_code == 201, created.text
            job = created.json()
            auth = {"Authorization": f"Bearer {job['token']}"}
            assert (await http.post(f"/recon/jobs/{job['job_id']}/cancel", headers=auth)).status_code == 202
            [request] = await receiver.wait_for(1)
            view = await delivered(http, f"/recon/jobs/{job['job_id']}/webhooks", auth)
    assert refused.status_code == 400 and "link_local_address" in refused.text
    assert verify(job["webhook_secret"], request.headers[SIGNATURE_HEADER], request.body)
    notification = JobEnded.model_validate_json(request.body)
    assert (notification.event, notification.status, str(notification.job_id)) == (
        "job.cancelled", "CANCELLED", job["job_id"]
    )  # fmt: skip
    assert notification.status_url == f"{up}/recon/jobs/{job['job_id']}/status"
    [delivery] = view["deliveries"]
    assert view["callback_url"] == receiver.url and delivery["delivery_id"] == str(notification.delivery_id)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
