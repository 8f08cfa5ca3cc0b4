"""Composition root of the viewer: the public scene page and its files. It only reads the database
(status owns the rows) and the object store (the trainer wrote the exports)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from photosplat_libs.db import Database
from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.service import Deps
from photosplat_libs.store import ObjectStore
from photosplat_viewer import api_docs, assets, pages, streaming
from photosplat_viewer.repository import job_by_pub_key
from photosplat_viewer.settings import ViewerSettings


# The scene file route's answers, for its OpenAPI description: the body is the file itself.
_FILE_BODY = {"schema": {"type": "string", "format": "binary"}}
_FILE_TYPES = {media_type: _FILE_BODY for media_type in ("application/octet-stream", "image/*", "application/json")}
SCENE_FILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "The whole file.", "content": _FILE_TYPES},
    206: {"description": "The requested byte range (Range header).", "content": _FILE_TYPES},
    304: {"description": "Not modified (If-None-Match)."},
    404: {
        "description": "No finished scene has this key, or it has no such file.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    416: {"description": "The requested range lies outside the file."},
}


@dataclass
class ViewerService:
    name: str
    router: APIRouter

    async def start(self) -> None:
        """Nothing to consume: the viewer answers HTTP requests only."""

    async def stop(self) -> None:
        """Nothing of its own to release: the runner closes the adapters."""


async def _load_job(db: Database, pub_key: str) -> Job | None:
    # A plain session without a transaction block: the viewer never commits, and the session's
    # implicit transaction is rolled back when it closes. The row is fully loaded, so it can be
    # used after the session is gone (while a file streams, no connection is held).
    async with db.sessions() as session:
        return await job_by_pub_key(session, pub_key)


def create(settings: ViewerSettings, deps: Deps) -> ViewerService:
    if deps.db is None:
        raise ValueError("the viewer reads jobs from the database: Deps.db is required")
    router = APIRouter()
    _add_pages(router, settings, deps.db)
    _add_files(router, settings, deps.db, deps.store)
    _add_health(router, deps.db)
    router.include_router(api_docs.router(settings))
    return ViewerService(name="viewer", router=router)


def _add_pages(router: APIRouter, settings: ViewerSettings, db: Database) -> None:
    """The HTML pages: upload, the owner's job page, the public scene page and its downloads."""
    viewer_installed = assets.vendor_installed(settings.assets_dir)
    # Presigned uploads go to this origin in embedded mode, else to the store's public origin.
    upload_origins = tuple(
        o for o in (assets.origin_of(u) for u in (settings.store_public_url, *settings.upload_origins)) if o
    )

    async def upload_page() -> Response:
        return pages.upload_page(upload_origins)

    async def owner_job_page(job_id: str) -> Response:
        # The page is a shell: its script asks the status API with the owner's token.
        try:
            return pages.owner_job_page(str(uuid.UUID(job_id)))
        except ValueError:
            return pages.missing_page()

    async def scene_page(pub_key: str) -> Response:
        job = await _load_job(db, pub_key)
        if job is None:
            return pages.missing_page()
        return pages.job_page(job, pub_key, settings.public_base_url, viewer_installed=viewer_installed)

    async def scene_manifest(pub_key: str) -> Response:
        """The downloads of a finished scene, for the owner's job page."""
        job = await _load_job(db, pub_key)
        if job is None or job.status != JobStatus.DONE:
            return JSONResponse({"detail": "not found"}, status_code=404, headers=pages.PRIVATE_HEADERS)
        body = {"files": pages.file_list(job, pub_key)}
        return JSONResponse(body, headers={**pages.PRIVATE_HEADERS, "Cache-Control": "no-store"})

    router.add_api_route("/", upload_page, methods=["GET"], include_in_schema=False)
    router.add_api_route("/jobs/{job_id}", owner_job_page, methods=["GET"], include_in_schema=False)
    router.add_api_route("/v/{pub_key}", scene_page, methods=["GET"], include_in_schema=False)
    router.add_api_route("/v/{pub_key}/files.json", scene_manifest, methods=["GET"], include_in_schema=False)


def _add_files(router: APIRouter, settings: ViewerSettings, db: Database, store: ObjectStore) -> None:
    """The page's own scripts, the vendored viewer, and the scene files themselves."""

    async def app_file(path: str) -> Response:
        return assets.app_file(path)

    async def vendor_file(path: str) -> Response:
        return assets.vendor_file(settings.assets_dir, path)

    async def scene_file(request: Request, pub_key: str, filename: str) -> Response:
        return await streaming.serve_file(request, store, await _load_job(db, pub_key), filename)

    router.add_api_route(assets.APP_PREFIX + "{path:path}", app_file, methods=["GET"], include_in_schema=False)
    router.add_api_route(assets.VENDOR_PREFIX + "{path:path}", vendor_file, methods=["GET"], include_in_schema=False)
    # One route per method: FastAPI gives a route with two methods one operation id for both.
    for method in ("GET", "HEAD"):
        operation_id = f"{method.lower()}_scene_file"
        router.add_api_route(
            "/recon/pub/{pub_key}/{filename}",
            scene_file,
            methods=[method],
            operation_id=operation_id,
            response_class=Response,
            responses=SCENE_FILE_RESPONSES,
        )


def _add_health(router: APIRouter, db: Database) -> None:
    async def healthz() -> Response:
        try:
            async with db.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means: do not route traffic here
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    router.add_api_route("/healthz", healthz, methods=["GET"], operation_id="viewer_health")
