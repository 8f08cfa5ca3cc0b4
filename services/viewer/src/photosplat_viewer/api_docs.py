"""``/openapi.json`` and ``/docs``: one description of every service's routes, and the page that
shows it (docs/architecture.md §1, "API description").

In ``photosplat up`` every route is in this one app, so its own description is the whole API. In a
deployment the viewer serves it at the gateway: it merges its own description with those of the
services named in ``settings.api_specs`` (their internal ``/openapi.json``), fetched when asked,
and says which ones it could not read. The viewer, because it already serves the front-end packages
from ``web/node_modules`` (Swagger UI is one: nothing is loaded from a CDN) and is the gateway's
catch-all; the API services keep only their own description, for it to read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader

from photosplat_viewer import assets
from photosplat_viewer.openapi_merge import Spec, merge
from photosplat_viewer.settings import ViewerSettings

TITLE = "PhotoSplat API"
SWAGGER_FOLDER = "swagger-ui-dist/"
SWAGGER_ENTRY = SWAGGER_FOLDER + "swagger-ui-bundle.js"
# Swagger UI styles its elements inline and draws icons from data: URLs; it runs no eval, and every
# script and request stays on this origin ("Try it out" calls the API here).
DOCS_CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
_templates = Environment(loader=PackageLoader("photosplat_viewer", "templates"), autoescape=True)


class ApiDescription:
    """This app's description merged with the other services'. A complete merge of theirs is kept
    for ``cache_seconds`` (the gateway's /openapi.json is public: each read must not fan out); a
    partial one is not, so a reload after the missing service is back shows it."""

    def __init__(self, specs: Mapping[str, str], timeout: float, cache_seconds: float) -> None:
        self.specs, self.timeout, self.cache_seconds = dict(specs), timeout, cache_seconds
        self._fetched: tuple[float, list[tuple[str, Spec]]] | None = None

    async def document(self, own: Spec) -> Spec:
        if not self.specs:
            return merge([("this server", own)], title=TITLE)
        fetched, missing = await self._others()
        return merge([("viewer", own), *fetched], title=TITLE, missing=missing)

    async def _others(self) -> tuple[list[tuple[str, Spec]], dict[str, str]]:
        if self._fetched is not None and self._fetched[0] > time.monotonic():
            return self._fetched[1], {}
        async with httpx.AsyncClient(timeout=self.timeout, trust_env=False) as client:
            results = await asyncio.gather(*(_fetch(client, url) for url in self.specs.values()))
        fetched = [(name, r) for name, r in zip(self.specs, results) if isinstance(r, dict)]
        missing = {name: f"{url}: {r}" for (name, url), r in zip(self.specs.items(), results) if isinstance(r, str)}
        if not missing:
            self._fetched = (time.monotonic() + self.cache_seconds, fetched)
        return fetched, missing


async def _fetch(client: httpx.AsyncClient, url: str) -> Spec | str:
    """The document at ``url``, or why there is none."""
    try:
        response = await client.get(url)
        response.raise_for_status()
        spec = response.json()
    except httpx.HTTPStatusError as exc:
        return f"answered {exc.response.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        return f"{type(exc).__name__} {exc}".strip()
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        return "not an OpenAPI document"
    return spec


def docs_page(assets_dir: Path | None) -> HTMLResponse:
    installed = assets_dir is not None and (assets_dir / SWAGGER_ENTRY).is_file()
    html = _templates.get_template("api_docs.html").render(
        installed=installed, swagger=assets.VENDOR_PREFIX + SWAGGER_FOLDER, title=TITLE
    )
    headers = {"Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return HTMLResponse(html, headers=headers)


def router(settings: ViewerSettings) -> APIRouter:
    description = ApiDescription(settings.api_specs, settings.api_spec_timeout_seconds, cache_seconds=30)
    routes = APIRouter()

    async def openapi(request: Request) -> Response:
        # request.app: the app serving this route, every service's in `photosplat up`.
        return JSONResponse(await description.document(request.app.openapi()))

    async def docs() -> Response:
        return docs_page(settings.assets_dir)

    routes.add_api_route("/openapi.json", openapi, methods=["GET"], include_in_schema=False)
    routes.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    return routes
