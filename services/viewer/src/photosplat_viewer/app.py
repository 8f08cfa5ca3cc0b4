"""Composition root of the viewer: the public scene page and its files. It only reads the database
(status owns the rows) and the object store (the trainer wrote the exports)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from photosplat_libs.db import Database
from photosplat_libs.db.models import Job
from photosplat_libs.service import Deps
from photosplat_viewer import files, pages
from photosplat_viewer.repository import job_by_pub_key
from photosplat_viewer.settings import ViewerSettings


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
    db, store = deps.db, deps.store
    router = APIRouter()

    async def scene_page(pub_key: str) -> Response:
        job = await _load_job(db, pub_key)
        if job is None:
            return pages.missing_page()
        return pages.job_page(job, pub_key, settings.public_base_url)

    async def scene_file(request: Request, pub_key: str, filename: str) -> Response:
        return await files.serve_file(request, store, await _load_job(db, pub_key), filename)

    async def healthz() -> Response:
        try:
            async with db.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means: do not route traffic here
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        return JSONResponse({"status": "ok"})

    router.add_api_route("/v/{pub_key}", scene_page, methods=["GET"], include_in_schema=False)
    router.add_api_route("/recon/pub/{pub_key}/{filename}", scene_file, methods=["GET", "HEAD"])
    router.add_api_route("/healthz", healthz, methods=["GET"])
    return ViewerService(name="viewer", router=router)
