"""deploy/docker/worker-alive.py, the health check of the worker containers (compose), against the
/healthz of a real metrics port, and without one against the lock a real worker's scratch folder
holds (photosplat_libs.scratch, as Worker.start opens it), in another process as in a container."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from photosplat_libs.observability import ProbeServer

PROBE = Path(__file__).resolve().parent.parent / "deploy" / "docker" / "worker-alive.py"


def probe(service: str, work_dir: Path | None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSPLAT_")}
    if work_dir is not None:
        env[f"PHOTOSPLAT_{service.upper()}_WORK_DIR"] = str(work_dir)
    return subprocess.run([sys.executable, str(PROBE), service], env=env, timeout=30).returncode


@contextmanager
def worker_scratch(work_dir: Path, service: str) -> Iterator[subprocess.Popen[str]]:
    """A process that opens the scratch folder exactly as a starting worker does, then waits."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from photosplat_libs.scratch import ScratchRoot
        ScratchRoot(Path({str(work_dir)!r}), {service!r}).open()
        print("open", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_alive_while_a_worker_holds_its_scratch_folder(tmp_path: Path) -> None:
    with worker_scratch(tmp_path, "colmap"):
        assert probe("colmap", tmp_path) == 0
        # Another service's folder does not count, nor does another work folder.
        assert probe("trainer", tmp_path) == 1
        assert probe("colmap", tmp_path / "elsewhere") == 1


def test_dead_once_the_worker_is_killed(tmp_path: Path) -> None:
    with worker_scratch(tmp_path, "trainer") as worker:
        assert probe("trainer", tmp_path) == 0
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        # Its folder is still there (kill -9 skips every clean-up), but nobody holds the lock.
        assert list((tmp_path / "photosplat-trainer").glob("proc-*"))
        assert probe("trainer", tmp_path) == 1


def test_dead_before_any_worker_started(tmp_path: Path) -> None:
    assert probe("colmap", tmp_path) == 1
    assert subprocess.run([sys.executable, str(PROBE)], capture_output=True, timeout=30).returncode == 2


async def test_with_a_metrics_port_it_asks_the_workers_healthz(tmp_path: Path) -> None:
    """As compose configures the workers: the check asks /healthz of the worker's metrics port (served
    by photosplat_libs.observability.ProbeServer, as runner.serve starts it), not the scratch lock."""
    def probe_port(port: int) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOSPLAT_")}
        env |= {"PHOTOSPLAT_COLMAP_METRICS_PORT": str(port), "PHOTOSPLAT_COLMAP_HOST": "0.0.0.0"}
        return subprocess.run([sys.executable, str(PROBE), "colmap"], env=env, timeout=30).returncode

    server = ProbeServer("127.0.0.1", 0, ready=lambda: False)
    server.start()
    try:
        # /healthz answers from the thread while this loop turns (readiness does not matter).
        assert await asyncio.to_thread(probe_port, server.port) == 0
    finally:
        server.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert await asyncio.to_thread(probe_port, closed) == 1
