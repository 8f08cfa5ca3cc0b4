"""Worker processes as they run in production (the runner's signal handling, a scratch root on
disk): a graceful stop on SIGTERM even after pycolmap took the signal over, and the scratch
folders a killed worker left behind removed by the next worker that starts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from photosplat_libs import topology
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.events import Envelope, Stage
from photosplat_libs.service import Deps
from photosplat_libs.store.folder import FolderStore
from photosplat_libs.worker import JobContext, Worker

SCRIPT = Path(__file__).with_name("worker_process.py")
TIMEOUT = 60.0


class WorkerProcess:
    def __init__(self, root: Path, jobs: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(root), jobs],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []

    def wait_for_line(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith(prefix):
                return line.split(" ", 1)[1].strip()
        raise AssertionError(f"no {prefix!r} line; output:\n{''.join(self.output)}")

    def finish(self) -> int:
        rest, _ = self.proc.communicate(timeout=TIMEOUT)
        self.output.append(rest)
        return self.proc.returncode


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock")


@pytest.mark.parametrize(
    ("jobs", "settle"),
    [
        pytest.param("pycolmap,hang", 0.0, id="sigterm-in-the-job-after-pycolmap"),
        pytest.param("pycolmap-then-hang", 1.5, id="sigterm-in-the-job-that-loaded-pycolmap"),
    ],
)
def test_sigterm_stops_gracefully_after_pycolmap_was_loaded(tmp_path: Path, jobs: str, settle: float) -> None:
    worker = WorkerProcess(tmp_path, jobs)
    try:
        work_dir = Path(worker.wait_for_line("READY"))
        assert (work_dir / "partial.bin").exists()
        time.sleep(settle)
        worker.proc.send_signal(signal.SIGTERM)
        returncode = worker.finish()
    finally:
        worker.proc.kill()
    output = "".join(worker.output)
    assert returncode == 0, output
    assert "SIGTERM" not in output and "STOPPED" in output
    assert not work_dir.exists() and files_under(tmp_path / "scratch") == []


async def test_a_starting_worker_removes_what_killed_workers_left_and_keeps_live_ones(tmp_path: Path) -> None:
    killed, alive = WorkerProcess(tmp_path, "hang"), WorkerProcess(tmp_path, "hang")
    try:
        killed_dir = Path(killed.wait_for_line("READY"))
        alive_dir = Path(alive.wait_for_line("READY"))
        killed.proc.send_signal(signal.SIGKILL)
        killed.finish()
        assert killed_dir.exists(), "kill -9 skips every clean-up"

        bus = MemoryBus()
        await bus.start()
        store = FolderStore.from_url(f"file:{tmp_path}/objects")

        async def work(event: Envelope, ctx: JobContext) -> Envelope:
            raise AssertionError("no job is sent")

        worker = Worker(
            "colmap", Stage.SFM, topology.COLMAP_WORK, work, Deps(bus=bus, store=store), worker_name="next",
            work_root=tmp_path / "scratch",
        )
        await worker.start()
        try:
            assert not killed_dir.exists()
            assert (alive_dir / "partial.bin").exists(), "a running worker's job folder stays"
        finally:
            await worker.stop()
            await bus.close()
    finally:
        for proc in (killed, alive):
            proc.proc.kill()
            proc.proc.wait()
