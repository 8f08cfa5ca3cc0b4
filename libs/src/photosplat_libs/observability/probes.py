"""The metrics port of a process without an HTTP API (the workers): ``/metrics``, ``/healthz`` and
``/readyz``, served from a thread by the standard library's WSGI server (the one prometheus_client's
``start_http_server`` uses), beside the event loop rather than on it:

- ``/metrics`` answers even while the loop is blocked, which is when it matters most;
- ``/healthz`` (liveness) asks the loop to run a no-op and waits ``LOOP_TIMEOUT_SECONDS``: 200 when it
  did, 503 when the loop is stuck (a live process whose loop does not turn consumes nothing);
- ``/readyz`` (readiness) is 200 once every service started and the bus is connected and consuming.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, make_wsgi_app

log = logging.getLogger(__name__)

LOOP_TIMEOUT_SECONDS = 3.0
# What the port serves (deploy/k8s's probes name these; tests/test_deploy_k8s.py checks them).
PATHS = ("/metrics", "/healthz", "/readyz")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # A restarted worker must get its port back at once.
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Probes every few seconds are not worth a log line each."""


class ProbeServer:
    """Serves the three routes on ``host:port`` until :meth:`stop`. ``ready`` is called from the
    server's thread: it must only read state (no awaiting)."""

    def __init__(self, host: str, port: int, ready: Callable[[], bool]) -> None:
        self._host, self._port, self._ready = host, port, ready
        self._metrics = make_wsgi_app(REGISTRY)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the system's choice for 0)."""
        return self._server.server_port if self._server is not None else self._port

    def start(self) -> None:
        """Call from the event loop whose responsiveness /healthz reports."""
        self._loop = asyncio.get_running_loop()
        self._server = make_server(self._host, self._port, self._app, _Server, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="photosplat-probes", daemon=True)
        self._thread.start()
        log.info("metrics, /healthz and /readyz on %s:%d", self._host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._server = self._thread = None

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            return _plain(start_response, self._loop_turns(), "alive", "event loop not responding")
        if path == "/readyz":
            return _plain(start_response, self._is_ready(), "ready", "not consuming")
        return _plain(start_response, None, "", "not found")

    def _loop_turns(self) -> bool:
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=LOOP_TIMEOUT_SECONDS)
        except Exception:
            return False
        return True

    def _is_ready(self) -> bool:
        try:
            return bool(self._ready()) and self._loop_turns()
        except Exception:
            log.warning("readiness check failed", exc_info=True)
            return False


def _plain(start_response: StartResponse, ok: bool | None, good: str, bad: str) -> list[bytes]:
    status = "200 OK" if ok else ("404 Not Found" if ok is None else "503 Service Unavailable")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [((good if ok else bad) + "\n").encode()]
