"""Browser tests: Debian's headless Chromium, driven by Playwright, against a real `photosplat up`.

One server for the whole module set (starting it costs seconds); a fresh browser context (a new
profile: no localStorage, no cookies) for every test. Every page a test opens is watched: a console
error, an uncaught exception or a request to anything but the server fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from photosplat_viewer.assets import vendor_installed
from photosplat_viewer.settings import ViewerSettings

CHROMIUM = os.environ.get("PHOTOSPLAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Server:
    base: str
    data: Path
    admin_token: str
    proc: subprocess.Popen[str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("browser") / "data"
    port = _free_port()
    # Uploads the pages send become real jobs of this server, for the rest of the session: a short
    # training keeps one that gets that far from taking a core from the other tests for minutes.
    env = dict(os.environ, PYTHONUNBUFFERED="1", PHOTOSPLAT_TRAINER_MAX_STEPS="50")
    env.pop("PHOTOSPLAT_STATUS_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "photosplat", "up", "--port", str(port), "--data", str(data), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    assert proc.stdout is not None
    banner = "".join(proc.stdout.readline() for _ in range(3))
    match = re.search(r"admin token: ([A-Za-z0-9_-]+)", banner)
    assert match, banner
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "photosplat up did not come up"
        time.sleep(0.2)
    yield Server(base, data, match.group(1), proc)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Module scope, not session: sync Playwright keeps an event loop running in this thread while it is
# open, which async tests of the next modules could not share.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium when run as root")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra: scripts/setup")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Watched:
    """A page in a fresh context, with what it logged and asked for."""

    page: object
    errors: list[str] = field(default_factory=list)
    # console errors a test provokes on purpose (Chromium logs every 4xx answer as one)
    expected: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


def _local(url: str, base: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return f"{parts.scheme}://{parts.netloc}" == base


@pytest.fixture
def watched(browser, server: Server) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 960, "height": 720}, device_scale_factor=1)
    page = context.new_page()
    w = Watched(page)
    page.on("console", lambda m: w.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: w.errors.append(f"uncaught: {e}"))

    def on_request(request) -> None:
        w.requests.append(request.url)
        if not _local(request.url, server.base):
            w.foreign.append(request.url)

    page.on("request", on_request)
    yield w
    context.close()
    unexpected = [e for e in w.errors if not any(x in e for x in w.expected)]
    assert not unexpected, unexpected
    assert not w.foreign, f"requests left the server: {w.foreign}"


@pytest.fixture
def web_assets() -> None:
    """Skips a test that needs the viewer's npm packages when they are not installed."""
    if not vendor_installed(ViewerSettings().assets_dir):
        pytest.skip("web/node_modules is missing: scripts/setup runs `npm ci --prefix web` (needs npm)")


@dataclass(frozen=True)
class DoneJob:
    job_id: uuid.UUID
    pub_key: str
    token: str


@pytest.fixture
def done_job(server: Server) -> Callable[..., DoneJob]:
    return lambda files, **fields: _add_done_job(server, files, **fields)


def _add_done_job(server: Server, files: dict[str, bytes], **fields: object) -> DoneJob:
    """A finished job (unless ``fields`` say otherwise: status, stage, progress...) as the trainer
    and status would leave it: its exports in the embedded store and its row in the embedded
    database, written through the same adapters `photosplat up` uses. Training a real scene here
    would take minutes and is not what these tests are about."""
    from photosplat_libs import keys, security
    from photosplat_libs.db import Database
    from photosplat_libs.db.models import Job, JobStatus
    from photosplat_libs.store.folder import FolderStore

    job_id, pub_key, token = uuid.uuid4(), security.new_token(), security.new_token()

    async def insert() -> None:
        store = FolderStore.from_url(f"file:{server.data}/objects", public_url=server.base, signing_secret="unused")
        outputs, sizes = {}, {}
        for name, data in files.items():
            fmt = name.rsplit(".", 1)[1]
            outputs[fmt] = keys.output(job_id, name)
            sizes[fmt] = len(data)
            await store.put(outputs[fmt], data)
        db = Database(f"sqlite+aiosqlite:///{server.data}/photosplat.db")
        now = datetime.now(UTC)
        try:
            async with db.transaction() as session:
                finished = dict(status=JobStatus.DONE, stage="export", progress=1.0, finished_at=now)
                session.add(
                    Job(
                        id=job_id,
                        owner_hash=security.hash_token(token),
                        pub_key_hash=security.hash_token(pub_key),
                        pub_key_sealed=security.seal_pub_key(pub_key, token, str(job_id)),
                        created_at=now,
                        started_at=now,
                        outputs=outputs,
                        file_sizes=sizes,
                        **(finished | fields),
                    )
                )
        finally:
            await db.dispose()

    # Sync Playwright runs an event loop in this thread: the adapters get their own thread.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, insert()).result()
    return DoneJob(job_id, pub_key, token)



@pytest.fixture
def edit_job(server: Server) -> Callable[..., None]:
    return lambda job_id, lines=(), **fields: _edit_job(server, job_id, lines, **fields)


def _edit_job(server: Server, job_id: uuid.UUID, lines: tuple[str, ...], **fields: object) -> None:
    """What status's projection writes as a job's events arrive (row fields, log lines), written by
    this process as another status replica would: the server hears of it only from the database."""
    from photosplat_libs.db import Database
    from photosplat_libs.db.models import Job, LogLine

    async def write() -> None:
        db = Database(f"sqlite+aiosqlite:///{server.data}/photosplat.db")
        try:
            async with db.transaction() as session:
                job = await session.get(Job, job_id)
                assert job is not None
                for name, value in fields.items():
                    setattr(job, name, value)
                for line in lines:
                    session.add(LogLine(job_id=job_id, stage=job.stage, line=line, created_at=datetime.now(UTC)))
        finally:
            await db.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result()
