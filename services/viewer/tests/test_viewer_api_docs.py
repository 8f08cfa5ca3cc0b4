"""The merged API description (/openapi.json) and its page (/docs), served by the viewer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from photosplat_libs.bus import create_bus
from photosplat_libs.db import Database
from photosplat_libs.runner import build_app
from photosplat_libs.service import Deps
from photosplat_libs.store import create_store
from photosplat_testkit.harness import free_port
from photosplat_testkit.serving import serving
from photosplat_viewer import api_docs
from photosplat_viewer.app import create
from photosplat_viewer.openapi_merge import CONFLICTS_KEY, MISSING_KEY, merge, operation_ids
from photosplat_viewer.settings import ViewerSettings


def _spec(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    info = {"title": "t", "version": "1"}
    return {"openapi": "3.1.0", "info": info, "paths": paths, "components": {"schemas": schemas or {}}}


def _op(operation_id: str, ref: str | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}} if ref else {}
    return {"operationId": operation_id, "responses": {"200": {"description": "ok", "content": content}}}


def test_paths_of_several_services_are_merged_per_method() -> None:
    shared = {"type": "object", "properties": {"detail": {"type": "string"}}}
    ingest = _spec({"/recon/jobs": {"post": _op("create_job", "Err")}}, {"Err": shared})
    status_paths = {"/recon/jobs": {"get": _op("list_jobs", "Err")}, "/recon/jobs/{id}": {"delete": _op("d")}}
    status = _spec(status_paths, {"Err": shared})
    merged = merge([("ingest", ingest), ("status", status)], title="API")
    assert set(merged["paths"]["/recon/jobs"]) == {"post", "get"}
    assert merged["components"]["schemas"] == {"Err": shared}
    assert sorted(operation_ids(merged)) == ["create_job", "d", "list_jobs"]
    assert MISSING_KEY not in merged and CONFLICTS_KEY not in merged
    assert "ingest, status" in merged["info"]["description"]


def test_a_schema_two_services_define_otherwise_is_renamed_with_its_references() -> None:
    a = _spec({"/a": {"get": _op("a", "Item")}}, {"Item": {"type": "string"}})
    b = _spec({"/b": {"get": _op("b", "Item")}}, {"Item": {"type": "integer"}})
    merged = merge([("one", a), ("two", b)], title="API")
    schemas = merged["components"]["schemas"]
    assert schemas == {"Item": {"type": "string"}, "Item_two": {"type": "integer"}}
    def ref(path: str) -> str:
        return merged["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]

    assert (ref("/a"), ref("/b")) == ("#/components/schemas/Item", "#/components/schemas/Item_two")


def test_what_cannot_be_merged_and_what_is_missing_is_said() -> None:
    a = _spec({"/x": {"get": _op("same")}})
    b = _spec({"/x": {"get": _op("other")}, "/y": {"get": _op("same")}})
    missing = {"status": "http://status/openapi.json: ConnectError"}
    merged = merge([("one", a), ("two", b)], title="API", missing=missing)
    assert merged["paths"]["/x"]["get"]["operationId"] == "same"  # the first service's stays
    assert any("GET /x of two" in c for c in merged[CONFLICTS_KEY])
    assert any("'same' is used twice" in c for c in merged[CONFLICTS_KEY])
    assert merged[MISSING_KEY] == missing
    description = merged["info"]["description"]
    assert "**Incomplete**" in description and "status: http://status" in description


def _viewer_app(tmp_path: Path, **settings: Any) -> FastAPI:
    urls = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/unused.db", "store_url": f"file:{tmp_path}/objects"}
    config = ViewerSettings(**urls, **settings)
    deps = Deps(bus=create_bus("memory://"), store=create_store(config.store_url), db=Database(config.database_url))
    return build_app([create(config, deps)], deps)


@asynccontextmanager
async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://viewer") as client:
        yield client


def _fake_swagger(root: Path) -> Path:
    (root / "swagger-ui-dist").mkdir(parents=True)
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        (root / "swagger-ui-dist" / name).write_text("/* swagger */")
    return root


async def test_the_docs_page_loads_only_files_of_this_origin(tmp_path: Path) -> None:
    async with _client(_viewer_app(tmp_path, assets_dir=_fake_swagger(tmp_path / "node_modules"))) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert {"/static/vendor/swagger-ui-dist/swagger-ui-bundle.js", "/static/app/api_docs.js"} <= set(urls)
        assert all(u.startswith("/") or u.startswith("data:") for u in urls), urls
        assert "script-src 'self';" in page.headers["content-security-policy"]
        for url in urls:
            if not url.startswith("data:"):
                assert (await client.get(url)).status_code == 200, url
        # FastAPI's own pages, which load Swagger UI and ReDoc from a CDN, are not served.
        assert (await client.get("/redoc")).status_code == 404


async def test_without_the_npm_packages_the_page_says_so(tmp_path: Path) -> None:
    async with _client(_viewer_app(tmp_path, assets_dir=None)) as client:
        page = await client.get("/docs")
        assert page.status_code == 200 and "swagger-ui-dist" in page.text and "are not installed" in page.text
        assert "<script" not in page.text and 'href="/openapi.json"' in page.text
        assert (await client.get("/openapi.json")).json()["paths"]["/healthz"]["get"]["operationId"] == "viewer_health"


async def test_the_description_of_a_service_that_is_down_is_named_missing(tmp_path: Path) -> None:
    other = FastAPI(openapi_url="/openapi.json")
    other.add_api_route("/other", lambda: {}, methods=["GET"], operation_id="other_route")
    down = f"http://127.0.0.1:{free_port()}/openapi.json"
    async with serving(other) as base:
        specs = {"other": f"{base}/openapi.json", "status": down}
        async with _client(_viewer_app(tmp_path, api_specs=specs, api_spec_timeout_seconds=2)) as client:
            merged = (await client.get("/openapi.json")).json()
    assert {"/healthz", "/other"} <= set(merged["paths"])
    assert set(merged[MISSING_KEY]) == {"status"} and down in merged[MISSING_KEY]["status"]
    assert "**Incomplete**" in merged["info"]["description"]


async def test_a_complete_merge_is_kept_a_while_a_partial_one_is_not() -> None:
    other = FastAPI(openapi_url="/openapi.json")
    other.add_api_route("/other", lambda: {}, methods=["GET"], operation_id="other_route")
    port = free_port()
    description = api_docs.ApiDescription({"other": f"http://127.0.0.1:{port}/openapi.json"}, 2, cache_seconds=60)
    own = _spec({"/v": {"get": _op("v")}})
    assert set(await description.document(own)) >= {MISSING_KEY}
    async with serving(other, port):
        # Asked again (the partial one was not kept): now complete, and kept.
        assert "/other" in (await description.document(own))["paths"]
    kept = await description.document(own)
    assert "/other" in kept["paths"] and MISSING_KEY not in kept
