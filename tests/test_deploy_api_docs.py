"""/docs and /openapi.json at compose's gateway (deploy/nginx/nginx.conf): a real nginx in front of
the three web services, each its own app and HTTP server as in the distributed mode, the viewer
configured as deploy/compose.yaml configures it. The viewer merges the others' descriptions, and
says which one it could not read."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from photosplat import cli
from photosplat_libs.bus import create_bus
from photosplat_libs.db import Database
from photosplat_libs.runner import build_app
from photosplat_libs.service import Deps
from photosplat_libs.store import create_store
from photosplat_testkit.gateway import free_port, nginx_binary, running_nginx
from photosplat_testkit.serving import serving

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SERVICES = ("ingest", "status", "viewer")


def _app(name: str, root: Path, **settings: Any) -> FastAPI:
    """One service as its own process serves it (nothing is opened until a request needs it)."""
    create, settings_class = cli.SERVICES[name].load()
    urls = {"bus_url": "memory://", "database_url": f"sqlite+aiosqlite:///{root}/db", "store_url": f"file:{root}/o"}
    config = settings_class(**urls, **settings)
    deps = Deps(bus=create_bus("memory://"), store=create_store(config.store_url), db=Database(config.database_url))
    return build_app([create(config, deps)], deps, title=f"PhotoSplat {name}")


def _composes_spec_urls() -> dict[str, str]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return json.loads(compose["services"]["viewer"]["environment"]["PHOTOSPLAT_VIEWER_API_SPECS"])


class Deployment:
    """The gateway's URL and each service's app and HTTP server (one can be stopped)."""

    def __init__(self, gateway: str, apps: dict[str, FastAPI], servers: dict[str, AsyncExitStack]) -> None:
        self.gateway, self.apps, self.servers = gateway, apps, servers

    async def stop(self, name: str) -> None:
        await self.servers[name].aclose()


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed here")
    ports = {name: free_port() for name in SERVICES}
    # Compose's service addresses, pointed at this machine's ports.
    specs = {
        name: url.replace(f"{name}:8000", f"127.0.0.1:{ports[name]}") for name, url in _composes_spec_urls().items()
    }
    apps = {name: _app(name, tmp_path) for name in ("ingest", "status")}
    apps["viewer"] = _app("viewer", tmp_path, api_specs=specs, api_spec_timeout_seconds=2)
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    conf = re.sub(r"^\s*resolver .*$", "", conf, flags=re.MULTILINE)
    port = free_port()
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    for name, backend in ports.items():
        conf = conf.replace(f"{name}:8000", f"127.0.0.1:{backend}")
    servers = {name: AsyncExitStack() for name in apps}
    try:
        for name, app in apps.items():
            await servers[name].enter_async_context(serving(app, ports[name]))
        (tmp_path / "gateway").mkdir()
        with running_nginx(nginx, conf, port, tmp_path / "gateway") as gateway:
            yield Deployment(gateway, apps, servers)
    finally:
        for server in servers.values():
            await server.aclose()


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, methods in spec["paths"].items() for method in methods}


async def test_the_gateway_serves_every_services_routes_in_one_description(deployment: Deployment) -> None:
    async with httpx.AsyncClient(base_url=deployment.gateway, timeout=10) as client:
        merged = (await client.get("/openapi.json")).json()
        page = await client.get("/docs")
    assert "x-photosplat-missing" not in merged and "x-photosplat-conflicts" not in merged
    for name, app in deployment.apps.items():
        own = _operations(app.openapi())
        assert own and own <= _operations(merged), name
    assert page.status_code == 200 and "<title>PhotoSplat API</title>" in page.text


async def test_a_service_that_is_down_is_named_and_the_others_still_shown(deployment: Deployment) -> None:
    await deployment.stop("status")
    async with httpx.AsyncClient(base_url=deployment.gateway, timeout=10) as client:
        merged = (await client.get("/openapi.json")).json()
    assert set(merged["x-photosplat-missing"]) == {"status"}
    assert "**Incomplete**" in merged["info"]["description"]
    assert _operations(deployment.apps["ingest"].openapi()) <= _operations(merged)
    assert not _operations(deployment.apps["status"].openapi()) & _operations(merged)
