"""`photosplat up` as a user runs it: one process, in-memory bus, SQLite and a local folder."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image


def photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


class Embedded:
    def __init__(self, data: Path) -> None:
        self.data = data
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.admin_token = ""

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PHOTOSPLAT_STATUS_ADMIN_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "photosplat", "up", "--port", str(self.port), "--data", str(self.data)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline() + self.proc.stdout.readline() + self.proc.stdout.readline()
        match = re.search(r"admin token: ([A-Za-z0-9_-]+)", banner)
        assert match, banner
        self.admin_token = match.group(1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("photosplat up did not come up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    e = Embedded(tmp_path / "data")
    e.start()
    yield e
    e.stop()


def test_up_serves_the_whole_api(embedded: Embedded) -> None:
    http = httpx.Client(base_url=embedded.base, timeout=30)
    files = [("files", (f"p{i}.jpg", photo(i), "image/jpeg")) for i in range(3)]
    r = http.post("/recon/jobs", files=files, data={"original_resolution": "false"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert uuid.UUID(job["job_id"]).version == 4
    assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", job["pub_key"])
    auth = {"Authorization": f"Bearer {job['token']}"}

    cut = [("files", ("cut.jpg", photo(5)[:1500], "image/jpeg"))] + files
    r = http.post("/recon/jobs", files=cut)
    assert r.status_code == 400 and "cut.jpg" in r.text

    # S3-style direct upload against the embedded store
    photos = [photo(20 + i) for i in range(3)]
    declared = [{"name": f"d{i}.jpg", "size": len(p), "content_type": "image/jpeg"} for i, p in enumerate(photos)]
    r = http.post("/recon/uploads", json={"files": declared}, headers=auth)
    assert r.status_code == 201, r.text
    upload = r.json()
    assert upload["token"] == job["token"]  # the same client keeps one token
    for slot, body in zip(upload["uploads"], photos):
        assert slot["url"].startswith(embedded.base)
        assert httpx.put(slot["url"], content=body, headers=slot["headers"]).status_code == 200
    r = http.post(f"/recon/jobs/{upload['job_id']}/submit", headers=auth)
    assert r.status_code == 200, r.text

    status = http.get(f"/recon/jobs/{job['job_id']}/status", headers=auth)
    assert status.status_code == 200 and status.json()["image_count"] == 3
    assert http.get(f"/recon/jobs/{job['job_id']}/status").status_code == 401
    assert http.post(f"/recon/jobs/{job['job_id']}/cancel").status_code == 401
    listing = http.get("/recon/jobs", headers=auth).json()
    assert {item["job_id"] for item in listing["items"]} == {job["job_id"], upload["job_id"]}
    admin = http.get("/admin", headers={"Authorization": f"Bearer {embedded.admin_token}"})
    assert admin.status_code == 200 and job["job_id"] in admin.text
    assert "PhotoSplat jobs" not in http.get("/admin").text  # the login form only
    # One process, one registry: the web port's /metrics has the workers' metrics too.
    metrics = http.get("/metrics").text
    assert 'photosplat_http_requests_total{method="POST",route="/recon/jobs",status="201"}' in metrics
    assert 'photosplat_queue_consumers{queue="trainer.work"}' in metrics

    # the jobs survive a restart of the process
    embedded.stop()
    embedded.start()
    http = httpx.Client(base_url=embedded.base, timeout=30)
    assert http.get(f"/recon/jobs/{job['job_id']}/status", headers=auth).status_code == 200

    r = http.delete(f"/recon/jobs/{job['job_id']}", headers=auth)
    assert r.status_code == 204
    assert not (embedded.data / "objects" / "jobs" / job["job_id"]).exists()
    assert http.get(f"/recon/jobs/{job['job_id']}/status", headers=auth).status_code == 404
    assert http.get(f"/v/{job['pub_key']}").status_code == 404


def test_photos_with_known_cameras_go_through_without_sfm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from photosplat_testkit.synthetic import known_poses_upload, render_scene

    upload = known_poses_upload(render_scene(n_views=10, width=160, height=120, seed=7))

    monkeypatch.setenv("PHOTOSPLAT_TRAINER_MAX_STEPS", "60")  # the process inherits it: a short CPU run
    embedded = Embedded(tmp_path / "data")
    try:
        embedded.start()
        http = httpx.Client(base_url=embedded.base, timeout=30)
        r = http.post("/recon/jobs", files=upload)
        assert r.status_code == 201, r.text
        job = r.json()
        auth = {"Authorization": f"Bearer {job['token']}"}
        deadline = time.monotonic() + 300
        status: dict = {}
        seen: list[str] = []  # every line the job page showed while polling (the tail moves on)
        while time.monotonic() < deadline:
            status = http.get(f"/recon/jobs/{job['job_id']}/status", headers=auth).json()
            seen += [str(line) for line in status.get("log_tail", [])]
            if status["status"] in ("DONE", "FAILED"):
                break
            time.sleep(1)
        assert status["status"] == "DONE", status
        assert status["stats"]["sfm"]["mapper"] == "known poses", status["stats"]
        assert status["stats"]["sfm"]["registered_images"] == 10
        logs = " ".join(seen)
        assert "no 3D points came with the cameras" in logs, logs
        assert http.get(f"/v/{job['pub_key']}").status_code == 200
    finally:
        embedded.stop()
