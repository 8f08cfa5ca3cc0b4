"""The job API: status, list, errors, cancel, delete (docs/architecture.md §1, §6).

Every route needs ``Authorization: Bearer <token>``: the job owner's client token or the admin
token. A job of another client answers 404, exactly like a job that does not exist.

Reads run outside a transaction (autocommit): each is one statement or two independent ones, and a
BEGIN and COMMIT would double the round trips to the database of the API's busiest route.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, Security, status
from fastapi.security import HTTPBearer
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from photosplat_libs.api_errors import error_responses
from photosplat_libs.bus import Bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.db.outbox import OutboxRelay
from photosplat_libs.store import ObjectStore
from photosplat_status import jobstate, lifecycle, responses
from photosplat_status import repository as repo
from photosplat_status.auth import Caller, caller_of
from photosplat_status.settings import StatusSettings

LOG_TAIL_LINES = 10
NOT_FOUND = "job not found"
# Explicit bounds on every integer a client sends: the database driver turns a value past 64 bits
# into an error, not an empty page. The offset bound fits any SQL integer and is far past any listing.
MAX_LIST_LIMIT = 200
MAX_LIST_OFFSET = 2**31 - 1
# Bounds the status cache's memory; expired entries are dropped when it is full.
MAX_CACHED_JOBS = 10_000
# Documents the token in the OpenAPI schema only: auto_error=False never refuses a request, the
# routes check the header themselves (auth.caller_of).
CLIENT_OR_ADMIN_TOKEN = HTTPBearer(
    scheme_name="clientOrAdminToken",
    description="The client token of the job's owner, or the admin token.",
    auto_error=False,
)


# The refusals of the job routes, for the API description; each answers the error body (ApiError).
UNAUTHORIZED = {401: "no Bearer token: send the job owner's client token or the admin token"}
HIDDEN = {404: "no such job, or another client's (the same answer)"}
JOB_REFUSALS = error_responses({**UNAUTHORIZED, **HIDDEN})


@dataclass
class JobApi:
    settings: StatusSettings
    db: Database
    store: ObjectStore
    bus: Bus
    relay: OutboxRelay
    reads: async_sessionmaker[AsyncSession] = field(init=False)
    # job id -> (monotonic expiry, status row, log tail), when settings.status_cache_seconds > 0.
    recent: dict[uuid.UUID, tuple[float, Row[Any], list[Any]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Shares the engine's pool; the isolation level is undone when a connection goes back.
        self.reads = async_sessionmaker(self.db.engine.execution_options(isolation_level="AUTOCOMMIT"))

    def router(self) -> APIRouter:
        router = APIRouter(tags=["jobs"], dependencies=[Security(CLIENT_OR_ADMIN_TOKEN)])
        router.add_api_route(
            "/recon/jobs",
            self.list_jobs,
            methods=["GET"],
            operation_id="list_jobs",
            response_model=responses.JobPage,
            responses=error_responses({400: "an unknown status filter", **UNAUTHORIZED}),
        )
        router.add_api_route(
            "/recon/jobs/{job_id}/status",
            self.job_status,
            methods=["GET"],
            operation_id="get_job_status",
            response_model=responses.JobStatusView,
            responses=JOB_REFUSALS,
        )
        router.add_api_route(
            "/recon/jobs/{job_id}/errors",
            self.job_errors,
            methods=["GET"],
            operation_id="list_job_errors",
            response_model=list[responses.ErrorView],
            responses=JOB_REFUSALS,
        )
        router.add_api_route(
            "/recon/jobs/{job_id}/cancel",
            self.cancel_job,
            methods=["POST"],
            operation_id="cancel_job",
            status_code=status.HTTP_202_ACCEPTED,
            response_model=responses.CancelView,
            responses=error_responses({**UNAUTHORIZED, **HIDDEN, 409: "the job already ended: nothing to cancel"}),
        )
        router.add_api_route(
            "/recon/jobs/{job_id}",
            self.delete_job,
            methods=["DELETE"],
            operation_id="delete_job",
            status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response,
            responses=JOB_REFUSALS,
        )
        return router

    async def _visible_job(self, session: AsyncSession, caller: Caller, job_id: uuid.UUID, *, lock: bool) -> Job:
        job = await (repo.lock_job(session, job_id) if lock else repo.get_job(session, job_id))
        if job is None or not caller.may_see(job):
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        return job

    async def job_status(self, job_id: uuid.UUID, request: Request) -> Response:
        """Answers the JSON itself (documented by ``responses.JobStatusView``), see responses.status_json."""
        caller = caller_of(self.settings, request)
        job, tail = await self._status_of(job_id)
        if job is None or not caller.may_see(job):
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        body = responses.status_json(job, caller.viewer_url(job, self.settings.public_base_url), tail)
        return Response(body, media_type="application/json")

    async def _status_of(self, job_id: uuid.UUID) -> tuple[Row[Any] | None, list[Any]]:
        now, ttl = time.monotonic(), self.settings.status_cache_seconds
        cached = self.recent.get(job_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        async with self.reads() as session:
            job = await repo.status_row(session, job_id)
            tail = await repo.log_tail(session, job.id, LOG_TAIL_LINES) if job is not None else []
        if ttl and job is not None:
            if len(self.recent) >= MAX_CACHED_JOBS:
                self.recent = {k: v for k, v in self.recent.items() if v[0] > now}
            self.recent[job_id] = (now + ttl, job, tail)
        return job, tail

    async def list_jobs(
        self,
        request: Request,
        status_filter: str | None = Query(default=None, alias="status"),
        limit: int = Query(default=20, ge=1, le=MAX_LIST_LIMIT),
        offset: int = Query(default=0, ge=0, le=MAX_LIST_OFFSET),
    ) -> responses.JobPage:
        caller = caller_of(self.settings, request)
        if status_filter is not None and status_filter.upper() not in JobStatus.__members__:
            allowed = ", ".join(JobStatus.__members__)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unknown status {status_filter!r}; use one of {allowed}")
        async with self.reads() as session:
            jobs, total = await repo.list_jobs(
                session,
                owner_hash=None if caller.admin else caller.owner_hash,
                status=status_filter.upper() if status_filter else None,
                limit=limit,
                offset=offset,
            )
            items = [responses.summary(job, caller.viewer_url(job, self.settings.public_base_url)) for job in jobs]
        return responses.JobPage(items=items, total=total, limit=limit, offset=offset)

    async def job_errors(self, job_id: uuid.UUID, request: Request) -> list[responses.ErrorView]:
        caller = caller_of(self.settings, request)
        async with self.reads() as session:
            job = await self._visible_job(session, caller, job_id, lock=False)
            return [responses.error_view(error) for error in await repo.errors_of(session, job.id)]

    async def cancel_job(self, job_id: uuid.UUID, request: Request) -> responses.CancelView:
        caller = caller_of(self.settings, request)
        async with self.db.transaction() as session:
            job = await self._visible_job(session, caller, job_id, lock=True)
            if jobstate.is_terminal(job):
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"job already ended with status {job.status}: nothing to cancel"
                )
            await lifecycle.cancel(session, self.store, job, datetime.now(timezone.utc))
            self.recent.pop(job_id, None)
            result = responses.CancelView(job_id=job.id, status=job.status)
        self.relay.notify()
        return result

    async def delete_job(self, job_id: uuid.UUID, request: Request) -> Response:
        caller = caller_of(self.settings, request)
        async with self.db.transaction() as session:
            job = await self._visible_job(session, caller, job_id, lock=True)
            await lifecycle.delete_objects_and_rows(session, self.store, job.id)
            self.recent.pop(job_id, None)
        await lifecycle.announce_deleted(self.bus, job_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
