"""Schemathesis over the OpenAPI of every web service (ingest, status, viewer): no input a schema
allows (or nearly allows) may answer a server error, and documented answers match their schemas.

Each service runs as its own app, as in the distributed mode (one process per service), on the
embedded adapters: one SQLite database and one store folder shared by the three, an in-memory bus
each. The database holds jobs of a known client before the fuzzing starts; the hooks below send
each case as that client, another one, the admin or nobody, often swap generated job ids and
public keys for the seeded ones and put real photos in job requests, so the fuzzing reaches past
401, 404 and the photo validation.

The schemas are taken at import from apps built on placeholder settings (building an app opens
nothing), so pytest lists one test per operation; each case is sent to the live app of the
module's fixture. (Schemathesis's fixture-loaded schemas fail on pytest 9.2: they set the removed
``Node._nodeid``.)

Bounded and deterministic: a fixed number of examples per operation, derandomized.
"""
from __future__ import annotations

import asyncio
import io
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from photosplat import cli
from photosplat_libs import keys, security
from photosplat_libs.bus import create_bus
from photosplat_libs.db import Database
from photosplat_libs.db.engine import migrate_blocking
from photosplat_libs.db.models import ErrorLog, Job, JobStatus
from photosplat_libs.runner import build_app
from photosplat_libs.service import Deps, deps_from_settings
from photosplat_libs.store import create_store
from photosplat_libs.store.folder import FolderStore

ADMIN_TOKEN = "adm-" + "Qf7Zt2Wm9Kx4Rb6Np3Lv8Hs5"
# Fixed, so the generated cases are the same on every run.
OWNER_TOKEN = "fuzz-owner-" + "T7kQ2mX9pL4vR8nW3cZ6hB1"
OTHER_TOKEN = "fuzz-other-" + "J5dF8sA2gK7xM4qP9tV3yN6"
FILENAMES = ("scene.ply", "scene.splat")
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
FUZZ = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# (owner, status, stage) of each seeded job. The last one is only the viewer's (its id is never
# fuzzed, so the status fuzzing cannot delete the scene the viewer fuzzing reads).
JOBS = (
    (OWNER_TOKEN, JobStatus.DONE, "export"),
    (OWNER_TOKEN, JobStatus.RUNNING, "train"),
    (OWNER_TOKEN, JobStatus.PENDING, "upload"),
    (OTHER_TOKEN, JobStatus.FAILED, "sfm"),
    (OWNER_TOKEN, JobStatus.DONE, "export"),
)
JOB_IDS = tuple(uuid.uuid5(uuid.NAMESPACE_URL, f"photosplat-fuzz-{i}") for i in range(len(JOBS)))
PUB_KEYS = tuple(f"fuzz-pub-key-{i}-" + "Hq3Wz8Lr5Tn1Vb7Xc" for i in range(len(JOBS)))


def _job(job_id: uuid.UUID, pub_key: str, owner: str, status: JobStatus, stage: str) -> Job:
    outputs = {"ply": keys.output(job_id, FILENAMES[0]), "splat": keys.output(job_id, FILENAMES[1])}
    # A declared upload that never arrived: submitting it answers which file is missing.
    uploads = [{"name": "a.jpg", "key": keys.incoming(job_id, 0, ".jpg"), "size": 1000}]
    return Job(
        id=job_id,
        owner_hash=security.hash_token(owner),
        pub_key_hash=security.hash_token(pub_key),
        pub_key_sealed=security.seal_pub_key(pub_key, owner, str(job_id)),
        status=status,
        stage=stage,
        created_at=datetime.now(UTC),
        image_count=3,
        outputs=outputs if status is JobStatus.DONE else {},
        uploads=uploads if stage == "upload" else [],
    )


async def _seed(database_url: str, store_url: str) -> None:
    """Jobs as ingest, status and the trainer leave them, with the exports of the finished ones."""
    store = create_store(store_url)
    await store.ensure_ready()
    db = Database(database_url)
    try:
        for job_id, pub_key, (owner, status, stage) in zip(JOB_IDS, PUB_KEYS, JOBS, strict=True):
            job = _job(job_id, pub_key, owner, status, stage)
            for key in job.outputs.values():
                await store.put(key, b"ply\nformat binary_little_endian 1.0\nend_header\n" + bytes(range(256)))
            async with db.transaction() as session:
                session.add(job)
                await session.flush()  # the error row refers to the job row
                if status is JobStatus.FAILED:
                    failure = {"error_type": "RuntimeError", "message": "the sfm stage failed"}
                    session.add(ErrorLog(job_id=job_id, stage=stage, created_at=job.created_at, **failure))
    finally:
        await db.dispose()


def _apps(database_url: str, store_url: str) -> dict[str, FastAPI]:
    """Each service through its own composition root and the runner's app, as its process serves it."""
    from photosplat_ingest.app import create as create_ingest, deps_for as ingest_deps
    from photosplat_ingest.settings import IngestSettings
    from photosplat_status.app import create as create_status
    from photosplat_status.settings import StatusSettings
    from photosplat_viewer.app import create as create_viewer
    from photosplat_viewer.settings import ViewerSettings

    common: dict[str, Any] = {"database_url": database_url, "store_url": store_url, "bus_url": "memory://"}
    ingest = IngestSettings(**common, public_base_url="http://testserver", upload_signing_secret="s" * 43)
    # A running job's event stream stays open for events_max_seconds: each case reads it to the end.
    status = StatusSettings(**common, admin_token=ADMIN_TOKEN, events_max_seconds=0.3)
    viewer = ViewerSettings(**common)
    apps = {}
    for name, create, config, deps in [
        ("ingest", create_ingest, ingest, ingest_deps(ingest)),
        ("status", create_status, status, deps_from_settings(status, with_db=True)),
        ("viewer", create_viewer, viewer, deps_from_settings(viewer, with_db=True)),
    ]:
        apps[name] = build_app([create(config, deps)], deps, title=f"PhotoSplat {name}")
    return apps


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    """The three services on one fresh database and store folder, seeded."""
    root = tmp_path_factory.mktemp("fuzz")
    database_url, store_url = f"sqlite+aiosqlite:///{root}/photosplat.db", f"file:{root}/objects"
    migrate_blocking(database_url)
    asyncio.run(_seed(database_url, store_url))
    yield _apps(database_url, store_url)
    # The lifespans run on schemathesis's event loop thread: stop the services before the folder goes.
    shutdown_lifespans()


KNOWN: dict[str, st.SearchStrategy[str]] = {
    "job_id": st.sampled_from([str(j) for j in JOB_IDS[:-1]]),
    # The viewer's own scene, and a job that is not finished.
    "pub_key": st.sampled_from([PUB_KEYS[-1], PUB_KEYS[1]]),
    "filename": st.sampled_from(FILENAMES),
}


def flatmap_path_parameters(
    _ctx: schemathesis.HookContext, generated: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Often a path parameter names a seeded job instead, so the handlers past the lookup run too."""
    if not generated:
        return st.just(generated)
    values = {k: st.one_of(KNOWN[k], st.just(v)) if k in KNOWN else st.just(v) for k, v in generated.items()}
    return st.fixed_dictionaries(values)


def flatmap_headers(
    _ctx: schemathesis.HookContext, generated: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """A generated API key is never one the operator issued: most cases leave it out, so they get
    past the 401 it earns."""
    if not generated or "X-API-Key" not in generated:
        return st.just(generated)
    without = {k: v for k, v in generated.items() if k != "X-API-Key"}
    return st.sampled_from([without, without, generated])


def _photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=80)
    return out.getvalue()


PHOTOS = [_photo(seed) for seed in range(3)]


def _with_photos(case: schemathesis.Case, real: bool) -> schemathesis.Case:
    if real:
        case.body = {**case.body, "files": PHOTOS}
    return case


def _with_token(case: schemathesis.Case, token: str | None) -> schemathesis.Case:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    if token is not None:
        case.headers["Authorization"] = f"Bearer {token}"
    return case


def flatmap_case(_ctx: schemathesis.HookContext, case: schemathesis.Case) -> st.SearchStrategy[schemathesis.Case]:
    """Each case is sent by the seeded jobs' owner, another client, the admin or nobody. Generated
    bytes are never a photo: half the multipart job requests carry three real ones, so the other
    fields (options, poses) are checked past the photo validation too."""
    strategy = st.sampled_from([OWNER_TOKEN, OWNER_TOKEN, OTHER_TOKEN, ADMIN_TOKEN, None]).map(
        lambda token: _with_token(case, token)
    )
    if (case.method.upper(), case.path) == ("POST", "/recon/jobs") and isinstance(case.body, dict):
        strategy = st.tuples(strategy, st.booleans()).map(lambda drawn: _with_photos(*drawn))
    return strategy


def _schema(app: FastAPI) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(app.openapi())
    for hook in (flatmap_path_parameters, flatmap_headers, flatmap_case):
        schema.hooks.register_hook_with_name(hook, hook.__name__)
    return schema


_shapes = _apps("sqlite+aiosqlite:///unused.db", "file:unused")
ingest_schema, status_schema, viewer_schema = (_schema(_shapes[name]) for name in ("ingest", "status", "viewer"))


@ingest_schema.parametrize()
@FUZZ
def test_ingest_api_fuzz(case: schemathesis.Case, live: dict[str, FastAPI]) -> None:
    case.call_and_validate(app=live["ingest"], checks=CHECKS)


@status_schema.parametrize()
@FUZZ
def test_status_api_fuzz(case: schemathesis.Case, live: dict[str, FastAPI]) -> None:
    case.call_and_validate(app=live["status"], checks=CHECKS)


@viewer_schema.parametrize()
@FUZZ
def test_viewer_api_fuzz(case: schemathesis.Case, live: dict[str, FastAPI]) -> None:
    case.call_and_validate(app=live["viewer"], checks=CHECKS)


def test_the_multipart_job_request_is_described() -> None:
    operation = ingest_schema.raw_schema["paths"]["/recon/jobs"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["files"]
    assert form["properties"]["files"] == {
        "type": "array",
        "items": {"type": "string", "format": "binary"},
        "description": form["properties"]["files"]["description"],
    }
    assert form["properties"]["poses"]["items"] == {"type": "string", "format": "binary"}  # one part per file
    assert form["properties"]["original_resolution"]["type"] == "boolean"
    assert form["properties"]["preset"]["type"] == "string"
    # The token is optional here: a first request gets a new one.
    assert operation["security"] == [{"clientToken": []}, {}]


def test_the_bearer_scheme_is_declared_where_routes_take_a_token() -> None:
    bearer = {"type": "http", "scheme": "bearer"}
    ingest_schemes = ingest_schema.raw_schema["components"]["securitySchemes"]
    status_schemes = status_schema.raw_schema["components"]["securitySchemes"]
    assert {k: ingest_schemes["clientToken"][k] for k in bearer} == bearer
    assert {k: status_schemes["clientOrAdminToken"][k] for k in bearer} == bearer
    submit = ingest_schema.raw_schema["paths"]["/recon/jobs/{job_id}/submit"]["post"]
    assert submit["security"] == [{"clientToken": []}]
    for path, methods in status_schema.raw_schema["paths"].items():
        for method, operation in methods.items():
            assert operation["security"] == [{"clientOrAdminToken": []}], (method, path)


def test_operation_ids_are_distinct_in_one_process_too() -> None:
    """``photosplat up`` serves every service from one app: its schema is the union of theirs."""
    deps = Deps(bus=create_bus("memory://"), store=FolderStore("unused"), db=Database("sqlite+aiosqlite:///unused.db"))
    services = []
    for name in ("ingest", "status", "viewer"):
        create, settings_class = cli.SERVICES[name].load()
        extra = {"admin_token": ADMIN_TOKEN} if name == "status" else {}
        services.append(create(settings_class(**extra), deps))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns about a duplicate operation id
        spec = build_app(services, deps).openapi()
    ids = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids)), sorted(ids)
