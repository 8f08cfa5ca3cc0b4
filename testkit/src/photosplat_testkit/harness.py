"""Test support shared by the services' test suites (no test framework imported here)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from photosplat_libs.bus import Delivery
from photosplat_libs.events import Envelope

E = TypeVar("E", bound=Envelope)


class EventRecorder:
    """Every event a bus consumer hands it, in order; tests wait for the one they expect."""

    def __init__(self, default_timeout: float = 15.0) -> None:
        self.events: list[Envelope] = []
        self.default_timeout = default_timeout
        self._changed = asyncio.Event()

    async def handler(self, event: Envelope, _delivery: Delivery) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[Envelope], bool], timeout: float | None = None) -> Envelope:
        async with asyncio.timeout(self.default_timeout if timeout is None else timeout):
            while True:
                found = next((e for e in self.events if predicate(e)), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()


class CuttableProxy:
    """A TCP relay to the broker whose connections can be cut, as a network failure would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def url_for(self, amqp_url: str) -> str:
        """``amqp_url`` through this proxy, reconnecting quickly after a cut."""
        parts = urlsplit(amqp_url)
        netloc = f"{parts.username}:{parts.password}@127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc, query="reconnect_interval=0.5").geturl()

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcesses:
    """Services as separate processes (``python -m photosplat_NAME``), each configured only by its
    environment as in deploy/compose.yaml; every wait yields to the event loop, so a
    :class:`CuttableProxy` on the same loop keeps relaying while a test waits."""

    def __init__(
        self, env: dict[str, str], logs: Path, *, python: Sequence[str] = (sys.executable,), cwd: Path | None = None
    ) -> None:
        # Settings every service gets, without their PHOTOSPLAT_NAME_ prefix; ``python`` (with its
        # options) runs each ``-m photosplat_NAME`` in ``cwd``.
        self.env, self.logs, self.python, self.cwd = env, logs, list(python), cwd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._runs: dict[str, int] = {}

    def start(self, name: str, extra: dict[str, str] | None = None, *, label: str | None = None) -> None:
        """Start (or start again) ``name``; each run logs to its own file (see :meth:`log`).
        ``label`` (default ``name``) tells replicas of one service apart in every other method."""
        label = label or name
        prefix = f"PHOTOSPLAT_{name.upper()}_"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.update({prefix + k: v for k, v in self.env.items()})
        env.update(extra or {})
        self._runs[label] = run = self._runs.get(label, 0) + 1
        path = self.logs / f"{label}-{run}.log"
        with open(path, "wb") as log:
            command = [*self.python, "-m", f"photosplat_{name}"]
            self.procs[label] = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=self.cwd)

    def log(self, name: str) -> Path:
        """The log file of ``name``'s latest run."""
        return self.logs / f"{name}-{self._runs[name]}.log"

    def kill(self, name: str) -> None:
        """SIGKILL: no graceful stop, as a crash or an OOM kill."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    async def wait_http(self, name: str, url: str, timeout: float = 60.0) -> None:
        import httpx  # a test dependency, not one of the library's

        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1) as http:
            while time.monotonic() < deadline:
                self.assert_alive(name)
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise AssertionError(f"{name} did not come up:\n{self.tail()}")

    async def wait_log(self, name: str, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first match of ``pattern`` in the log of ``name``'s current run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive(name)
            found = re.search(pattern, self.log(name).read_text(errors="replace"))
            if found:
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"{name} never logged {pattern!r}:\n{self.tail()}")

    def assert_alive(self, name: str) -> None:
        assert self.procs[name].poll() is None, f"{name} exited:\n{self.tail()}"

    async def stop(self, grace: float = 20.0) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + grace
        while any(p.poll() is None for p in self.procs.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)

    def tail(self, chars: int = 2500) -> str:
        logs = sorted(self.logs.glob("*.log"))
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)
