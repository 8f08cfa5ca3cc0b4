"""Running services: one service per process (distributed) or all of them in one (embedded).

The runner owns the lifecycle of the adapters: it starts the bus, declares the topology, prepares the
store and migrates the database before any service starts, and closes them after the last one stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from photosplat_libs.db import migrate
from photosplat_libs.observability import ProbeServer, instrument
from photosplat_libs.observability.logs import configure_logging
from photosplat_libs.service import Deps, Service, deps_from_settings
from photosplat_libs.settings import ServiceSettings
from photosplat_libs.topology import declare_topology

log = logging.getLogger("photosplat")


@asynccontextmanager
async def running(services: Sequence[Service], deps: Deps) -> AsyncIterator[None]:
    await deps.bus.start()
    started: list[Service] = []
    try:
        await declare_topology(deps.bus)
        await deps.store.ensure_ready()
        if deps.db is not None:
            await migrate(deps.db)
        for service in services:
            await service.start()
            started.append(service)
            log.info("service %s started", service.name)
        yield
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        await deps.bus.close()
        if deps.db is not None:
            await deps.db.dispose()


def build_app(services: Sequence[Service], deps: Deps, *, title: str = "PhotoSplat") -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with running(services, deps):
            yield

    # No /docs of FastAPI's (it loads Swagger UI from a CDN): the viewer serves the one API page.
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    instrument(app)
    for service in services:
        if service.router is not None:
            app.include_router(service.router)

    # This app's own description, for the viewer to merge. Added after the services' routes, so a
    # service's own /openapi.json (the viewer's merged one) matches first.
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.add_api_route("/openapi.json", openapi, methods=["GET"], include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def serve(
    services: Sequence[Service],
    deps: Deps,
    *,
    host: str,
    port: int | None,
    log_level: str,
    metrics_port: int | None = None,
) -> None:
    """Serve HTTP when any service has routes (on ``port``, with ``/metrics``), else run the
    consumers until a SIGTERM/SIGINT, with ``/metrics``, ``/healthz`` and ``/readyz`` on
    ``metrics_port`` when one is given."""
    if port is not None and any(s.router is not None for s in services):
        import uvicorn

        app = build_app(services, deps)
        # log_config=None: uvicorn's loggers go through ours (JSON lines too), not its own formatters.
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), log_config=None)
        await uvicorn.Server(config).serve()
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = False
    probes = ProbeServer(host, metrics_port, ready=lambda: started and deps.bus.ready()) if metrics_port else None
    if probes is not None:
        probes.start()  # before the services start: /healthz answers while the trainer warms up
    try:
        async with running(services, deps):
            started = True
            await stop.wait()
    finally:
        if probes is not None:
            probes.stop()


def run_service(
    create: Callable[[Any, Deps], Service],
    settings: ServiceSettings,
    *,
    with_db: bool,
    deps_for: Callable[[Any], Deps] | None = None,
) -> None:
    """The entrypoint of one service in its own process (``python -m photosplat_NAME``)."""
    configure_logging(settings.log_level, settings.log_format)
    deps = deps_for(settings) if deps_for is not None else deps_from_settings(settings, with_db=with_db)
    service = create(settings, deps)
    serving = serve(
        [service],
        deps,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        metrics_port=settings.metrics_port,
    )
    asyncio.run(serving)
