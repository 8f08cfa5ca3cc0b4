"""HTTP edge of ingest: one router of every route, each flow in its own module of :mod:`.routes`.

- ``POST /recon/jobs``: multipart photos in, a validated job out (201) — :mod:`.routes.multipart`;
- ``POST /recon/uploads``: declare files, get presigned PUT URLs (201) — :mod:`.routes.presigned`;
- ``POST /recon/jobs/{job_id}/submit``: validate what was uploaded and start the job (200) —
  :mod:`.routes.submit`.

Each route parses its request, owns its database session and maps failures to 4xx. Creating a job
is rate limited per client and globally (429 with Retry-After, see quotas.py); all three take an
``Idempotency-Key`` (idempotency.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Security

from photosplat_ingest.context import IngestContext
from photosplat_ingest.routes import multipart, presigned, submit
from photosplat_ingest.routes.common import CLIENT_TOKEN


def build_router(ctx: IngestContext) -> APIRouter:
    router = APIRouter(dependencies=[Security(CLIENT_TOKEN)])
    for flow in (multipart, presigned, submit):
        router.include_router(flow.router(ctx))
    return router
