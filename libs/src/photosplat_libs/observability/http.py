"""HTTP latency of the web services and their ``/metrics`` route.

The middleware is plain ASGI (not Starlette's ``BaseHTTPMiddleware``), so streamed responses (scene
files, server-sent events) pass through untouched. It labels a request by the *template* of the
route that served it (``/recon/jobs/{job_id}``), read from the scope after routing, so job ids and
public keys never become label values; a path no route matched counts as ``<unmatched>``. Latency is
the time until the response starts: a download or an event stream held open for minutes would tell
nothing about how fast the service answers.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photosplat_libs.observability.metrics import HTTP_DURATION, HTTP_REQUESTS

UNMATCHED = "<unmatched>"
METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    # A mount (static files) is labelled by its mount point.
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class HttpMetrics:
    """ASGI middleware: counts requests and observes their latency by method and route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"

        def observe() -> None:
            nonlocal observed
            if not observed:
                observed = True
                HTTP_DURATION.labels(method, route_template(scope)).observe(time.perf_counter() - started)

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                observe()
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            # An exception before any response is a 500 (the server answers it outside this middleware).
            observe()
            HTTP_REQUESTS.labels(method, route_template(scope), str(status)).inc()


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def instrument(app: FastAPI) -> None:
    """Add the latency middleware and the ``/metrics`` route (the process's whole registry: in
    `photosplat up` that includes the workers' metrics)."""
    app.add_middleware(HttpMetrics)
    app.add_api_route(METRICS_PATH, metrics_response, methods=["GET"], include_in_schema=False)
