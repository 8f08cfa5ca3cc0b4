"""The job API: status, list, errors, cancel, delete (DESIGN §1, §6).

Every route needs ``Authorization: Bearer <token>``: the job owner's client token or the admin
token. A job of another client answers 404, exactly like a job that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import security
from photosplat_libs.bus import Bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import Job, JobStatus
from photosplat_libs.db.outbox import OutboxRelay
from photosplat_libs.store import ObjectStore
from photosplat_status import jobstate, lifecycle, views
from photosplat_status import repository as repo
from photosplat_status.auth import Caller, caller_of
from photosplat_status.settings import StatusSettings

LOG_TAIL_LINES = 10
NOT_FOUND = "job not found"


@dataclass
class JobApi:
    settings: StatusSettings
    db: Database
    store: ObjectStore
    bus: Bus
    relay: OutboxRelay

    def router(self) -> APIRouter:
        router = APIRouter(tags=["jobs"])
        router.add_api_route("/recon/jobs", self.list_jobs, methods=["GET"], response_model=views.JobPage)
        router.add_api_route(
            "/recon/jobs/{job_id}/status", self.job_status, methods=["GET"], response_model=views.JobStatusView
        )
        router.add_api_route(
            "/recon/jobs/{job_id}/errors", self.job_errors, methods=["GET"], response_model=list[views.ErrorView]
        )
        router.add_api_route(
            "/recon/jobs/{job_id}/cancel",
            self.cancel_job,
            methods=["POST"],
            status_code=status.HTTP_202_ACCEPTED,
            response_model=views.CancelView,
        )
        router.add_api_route(
            "/recon/jobs/{job_id}",
            self.delete_job,
            methods=["DELETE"],
            status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response,
        )
        return router

    def _viewer_url(self, job: Job, caller: Caller) -> str | None:
        """Only the owner's token opens the sealed public key; the admin gets no link."""
        if job.status != JobStatus.DONE or caller.admin or not job.pub_key_sealed:
            return None
        pub_key = security.unseal_pub_key(job.pub_key_sealed, caller.token, str(job.id))
        return f"{self.settings.public_base_url}/v/{pub_key}" if pub_key else None

    async def _visible_job(self, session: AsyncSession, caller: Caller, job_id: uuid.UUID, *, lock: bool) -> Job:
        job = await (repo.lock_job(session, job_id) if lock else repo.get_job(session, job_id))
        if job is None or not caller.may_see(job):
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        return job

    async def job_status(self, job_id: uuid.UUID, request: Request) -> views.JobStatusView:
        caller = caller_of(self.settings, request)
        async with self.db.transaction() as session:
            job = await self._visible_job(session, caller, job_id, lock=False)
            tail = await repo.log_tail(session, job.id, LOG_TAIL_LINES)
            return views.status_view(job, self._viewer_url(job, caller), tail)

    async def list_jobs(
        self,
        request: Request,
        status_filter: str | None = Query(default=None, alias="status"),
        limit: int = Query(default=20, ge=1, le=200),
        offset: int = Query(default=0, ge=0),
    ) -> views.JobPage:
        caller = caller_of(self.settings, request)
        if status_filter is not None and status_filter.upper() not in JobStatus.__members__:
            allowed = ", ".join(JobStatus.__members__)
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"unknown status {status_filter!r}; use one of {allowed}")
        async with self.db.transaction() as session:
            jobs, total = await repo.list_jobs(
                session,
                owner_hash=None if caller.admin else caller.owner_hash,
                status=status_filter.upper() if status_filter else None,
                limit=limit,
                offset=offset,
            )
            items = [views.summary(job, self._viewer_url(job, caller)) for job in jobs]
        return views.JobPage(items=items, total=total, limit=limit, offset=offset)

    async def job_errors(self, job_id: uuid.UUID, request: Request) -> list[views.ErrorView]:
        caller = caller_of(self.settings, request)
        async with self.db.transaction() as session:
            job = await self._visible_job(session, caller, job_id, lock=False)
            return [views.error_view(error) for error in await repo.errors_of(session, job.id)]

    async def cancel_job(self, job_id: uuid.UUID, request: Request) -> views.CancelView:
        caller = caller_of(self.settings, request)
        async with self.db.transaction() as session:
            job = await self._visible_job(session, caller, job_id, lock=True)
            if jobstate.is_terminal(job):
                raise HTTPException(
                    status.HTTP_409_CONFLICT, f"job already ended with status {job.status}: nothing to cancel"
                )
            await lifecycle.cancel(session, self.store, job, datetime.now(timezone.utc))
            result = views.CancelView(job_id=job.id, status=job.status)
        self.relay.notify()
        return result

    async def delete_job(self, job_id: uuid.UUID, request: Request) -> Response:
        caller = caller_of(self.settings, request)
        async with self.db.transaction() as session:
            job = await self._visible_job(session, caller, job_id, lock=True)
            await lifecycle.delete_objects_and_rows(session, self.store, job.id)
        await lifecycle.announce_deleted(self.bus, job_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)
