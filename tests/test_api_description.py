"""The one API description of `photosplat up` (every service in one app), checked against the
services' real answers: every service's routes in it, distinct operation ids, the Bearer scheme on
exactly the routes that refuse a request without a token, multipart bodies described, and 4xx
answers that validate against the error model the description names."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from PIL import Image

from photosplat import cli
from photosplat_libs.api_errors import ApiError
from photosplat_libs.bus.memory import MemoryBus
from photosplat_libs.db import Database
from photosplat_libs.runner import build_app, running
from photosplat_libs.service import Deps, Service
from photosplat_libs.store.folder import FolderStore

ADMIN_TOKEN = "adm-" + "Vq8Rt3Lp6Zw2Kn9Xb4Mh7Jc"
MAX_REQUEST_BYTES = 200_000
SERVICES = ("ingest", "status", "viewer")
ERROR_REF = "#/components/schemas/ApiError"
# 422 of a malformed parameter where a route declares nothing else: FastAPI's own model.
VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=85)
    return out.getvalue()


def _services(data: Path) -> tuple[list[Service], Deps]:
    """The web services as `photosplat up` builds them: one database, store and bus."""
    deps = Deps(
        bus=MemoryBus(),
        store=FolderStore.from_url(f"file:{data}/objects", public_url="http://up", signing_secret="s" * 43),
        db=Database(f"sqlite+aiosqlite:///{data}/photosplat.db"),
    )
    extra: dict[str, dict[str, Any]] = {
        "status": {"admin_token": ADMIN_TOKEN},
        "ingest": {"max_request_bytes": MAX_REQUEST_BYTES, "store_public_url": "http://up"},
    }
    services = []
    for name in SERVICES:
        create, settings_class = cli.SERVICES[name].load()
        settings = settings_class(bus_url="memory://", database_url=str(deps.db.engine.url), **extra.get(name, {}))
        services.append(create(settings, deps))
    return services, deps


@pytest.fixture
async def up(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, list[Service], Deps]]:
    services, deps = _services(tmp_path)
    app = build_app(services, deps)
    async with running(services, deps):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://up", timeout=30) as client:
            yield client, services, deps


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, methods in spec["paths"].items() for method, op in methods.items()}


async def test_the_description_has_every_services_routes_once(up: Any) -> None:
    client, services, deps = up
    merged = (await client.get("/openapi.json")).json()
    operations = _operations(merged)
    for service in services:
        own = _operations(build_app([service], deps).openapi())
        assert own, service.name
        assert set(own) <= set(operations), service.name
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
    assert "x-photosplat-missing" not in merged and "x-photosplat-conflicts" not in merged
    stream = operations[("get", "/recon/jobs/{job_id}/events")]["responses"]["200"]["content"]
    assert list(stream) == ["text/event-stream"]


def _url(path: str) -> str:
    values = {"job_id": str(uuid.uuid4()), "pub_key": "k" * 22, "filename": "scene.ply", "key": "jobs/x/a.jpg"}
    return path.format(**values)


async def test_bearer_security_is_declared_on_exactly_the_routes_that_need_a_token(up: Any) -> None:
    client, _, _ = up
    merged = (await client.get("/openapi.json")).json()
    schemes = merged["components"]["securitySchemes"]
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    for (method, path), op in _operations(merged).items():
        security = op.get("security", [])
        required = bool(security) and {} not in security
        answer = await client.request(method.upper(), _url(path))
        # Without a token: a route that declares it required refuses; one that refuses declares it.
        assert (answer.status_code == 401) == required, (method, path, answer.status_code, security)
        assert all(set(r) <= set(schemes) for r in security), (method, path)


async def test_multipart_bodies_are_described(up: Any) -> None:
    client, _, _ = up
    operations = _operations((await client.get("/openapi.json")).json())
    multipart = {
        k: op for k, op in operations.items() if "multipart/form-data" in op.get("requestBody", {}).get("content", {})
    }
    assert set(multipart) == {("post", "/recon/jobs")}
    form = multipart[("post", "/recon/jobs")]["requestBody"]["content"]["multipart/form-data"]["schema"]
    for field in ("files", "poses"):
        assert form["properties"][field]["items"] == {"type": "string", "format": "binary"}
    upload = operations[("put", "/store/upload/{key}")]["requestBody"]["content"]
    assert upload["*/*"]["schema"] == {"type": "string", "format": "binary"}


async def test_4xx_answers_name_the_error_model(up: Any) -> None:
    client, _, _ = up
    for (method, path), op in _operations((await client.get("/openapi.json")).json()).items():
        for code, response in op["responses"].items():
            if not code.startswith("4") or "application/json" not in response.get("content", {}):
                continue
            ref = response["content"]["application/json"]["schema"].get("$ref")
            assert ref == ERROR_REF or (code == "422" and ref == VALIDATION_REF), (method, path, code, ref)


async def test_real_refusals_validate_against_the_described_error_bodies(up: Any) -> None:
    client, _, _ = up
    spec = (await client.get("/openapi.json")).json()
    token = {"Authorization": "Bearer " + "t" * 43}
    photos = [("files", (f"p{i}.jpg", _photo(i), "image/jpeg")) for i in range(2)]
    cut = [("files", ("cut.jpg", _photo(9)[:900], "image/jpeg"))]
    big = [("files", (f"b{i}.jpg", bytes(MAX_REQUEST_BYTES // 2), "image/jpeg")) for i in range(3)]
    job = f"/recon/jobs/{uuid.uuid4()}"
    cases = [
        ("post", "/recon/jobs", {"files": photos + cut}, 400),
        ("post", "/recon/jobs", {"files": big}, 413),
        ("post", "/recon/uploads", {"json": {"files": "none"}}, 422),
        ("post", f"{job}/submit", {"headers": token}, 404),
        ("get", f"{job}/status", {}, 401),
        ("get", f"{job}/status", {"headers": token}, 404),
        ("get", "/recon/jobs?status=bogus", {"headers": token}, 400),
        ("get", "/recon/jobs?limit=0", {"headers": token}, 422),
        ("put", "/store/upload/jobs/x/a.jpg?expires=1&signature=x", {"content": b"x"}, 403),
    ]
    for method, url, kwargs, expected in cases:
        answer = await client.request(method.upper(), url, **kwargs)
        assert answer.status_code == expected, (url, answer.text)
        template = _template(spec, method, url.split("?")[0])
        schema = spec["paths"][template][method]["responses"][str(expected)]["content"]["application/json"]["schema"]
        jsonschema.validate(answer.json(), {**schema, "components": spec["components"]})
        if schema.get("$ref") == ERROR_REF:
            ApiError.model_validate(answer.json())
    rejected = ApiError.model_validate((await client.post("/recon/jobs", files=photos + cut)).json())
    assert not isinstance(rejected.detail, str | list)
    assert any(e.file == "cut.jpg" and e.rule for e in rejected.detail.errors)


def _template(spec: dict[str, Any], method: str, url: str) -> str:
    parts = url.strip("/").split("/")
    for template, methods in spec["paths"].items():
        pieces = template.strip("/").split("/")
        if method in methods and (
            len(pieces) == len(parts) and all(p == q or p.startswith("{") for p, q in zip(pieces, parts))
            or (pieces[-1] == "{key}" and url.startswith("/" + "/".join(pieces[:-1])))
        ):
            return template
    raise AssertionError(f"{method} {url} is not described")
