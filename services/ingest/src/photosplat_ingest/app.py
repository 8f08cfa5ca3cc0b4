"""Composition root of the ingest service."""

from __future__ import annotations

import secrets

from fastapi import APIRouter

from photosplat_libs.db.outbox import OutboxRelay
from photosplat_libs.service import Deps, deps_from_settings

from photosplat_ingest.api import build_router
from photosplat_ingest.context import IngestContext
from photosplat_ingest.intake import Decoder
from photosplat_ingest.quotas import Quotas
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.sweeper import UploadSweeper


class IngestService:
    name = "ingest"

    def __init__(self, settings: IngestSettings, deps: Deps) -> None:
        if deps.db is None:
            raise ValueError("ingest needs a database: it creates the job rows")
        self.relay = OutboxRelay(deps.db, deps.bus)
        self.decoder = Decoder(settings.decode_concurrency)
        self.sweeper = UploadSweeper(settings, deps.db, deps.store)
        context = IngestContext(
            settings=settings,
            store=deps.store,
            db=deps.db,
            relay=self.relay,
            decoder=self.decoder,
            quotas=Quotas(settings, deps.db),
        )
        self.router = APIRouter()
        self.router.include_router(build_router(context))
        # Beside the API's routes, not among them: a presigned URL is signed itself, no token applies.
        _mount_folder_uploads(self.router, deps, settings)

    async def start(self) -> None:
        self.relay.start()
        self.sweeper.start()

    async def stop(self) -> None:
        await self.sweeper.stop()
        await self.relay.stop()
        self.decoder.close()


def _mount_folder_uploads(router: APIRouter, deps: Deps, settings: IngestSettings) -> None:
    """The folder store has no server of its own: presigned uploads to it land on this service."""
    from photosplat_libs.store.folder import FolderStore

    if isinstance(deps.store, FolderStore):
        from photosplat_libs.store.folder_http import folder_upload_router

        # A video is the largest file a job may bring.
        max_bytes = max(settings.max_file_bytes, settings.max_video_bytes)
        router.include_router(folder_upload_router(deps.store, max_bytes=max_bytes))


def create(settings: IngestSettings, deps: Deps) -> IngestService:
    return IngestService(settings, deps)


def deps_for(settings: IngestSettings) -> Deps:
    """The real adapters for a stand-alone ingest process. The folder store's upload URLs point at
    this service unless ``store_public_url`` says otherwise; without a configured secret a random
    one is enough, since the process that signs them is the one that accepts them."""
    if settings.store_public_url is None and settings.store_url.startswith("file:"):
        settings = settings.model_copy(update={"store_public_url": settings.public_base_url})
    secret = settings.upload_signing_secret or secrets.token_urlsafe(32)
    return deps_from_settings(settings, with_db=True, signing_secret=secret)
