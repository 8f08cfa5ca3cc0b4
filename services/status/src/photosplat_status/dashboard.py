"""The admin dashboard: every job, filtered by status and searched, with totals, each job's error
log and cancel / delete buttons.

A browser logs in by posting the admin token to a form; it gets an HttpOnly, SameSite=Strict
cookie holding a random session id that the database knows (see admin_sessions): logout deletes
it, and it expires. Tokens never travel in URLs, where they would end up in logs and browser
history. A script may send the Bearer header instead. The cancel and delete forms also carry a
token bound to the session (a second line of defence against cross-site requests besides
SameSite=Strict). The page runs no script.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from photosplat_libs import security
from photosplat_libs.bus import Bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import TERMINAL, Job, JobStatus
from photosplat_libs.db.outbox import OutboxRelay
from photosplat_libs.store import ObjectStore
from photosplat_status import admin_sessions, jobstate, lifecycle, responses, totals
from photosplat_status import repository as repo
from photosplat_status.admin_sessions import COOKIE
from photosplat_status.auth import bearer_token, is_admin_token
from photosplat_status.settings import StatusSettings

SHOWN_JOBS = 500
MAX_QUERY_CHARS = 200
# The page needs no script and loads nothing from elsewhere.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Environment(loader=PackageLoader("photosplat_status", "templates"), autoescape=select_autoescape(["html"]))


def _matches(job: Job, query: str) -> bool:
    """Search over what an admin has at hand: a job id (or part of it), a stage, an error text."""
    haystack = " ".join([str(job.id), job.stage, job.status, job.error_stage or "", job.error_message or ""])
    return query.lower() in haystack.lower()


def _form(body: bytes) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}


@dataclass
class Dashboard:
    settings: StatusSettings
    db: Database
    store: ObjectStore
    bus: Bus
    relay: OutboxRelay

    def router(self) -> APIRouter:
        router = APIRouter(tags=["admin"], include_in_schema=False)
        router.add_api_route("/admin", self.page, methods=["GET"])
        router.add_api_route("/admin/login", self.login, methods=["POST"])
        router.add_api_route("/admin/logout", self.logout, methods=["POST"])
        router.add_api_route("/admin/jobs/{job_id}/cancel", self.cancel, methods=["POST"])
        router.add_api_route("/admin/jobs/{job_id}/delete", self.delete, methods=["POST"])
        return router

    def _html(self, template: str, code: int = status.HTTP_200_OK, **context: object) -> HTMLResponse:
        body = _templates.get_template(template).render(**context)
        return HTMLResponse(body, status_code=code, headers=HEADERS)

    async def _admin_secret(self, request: Request) -> str | None:
        """What the caller proves to be the admin with: the admin token in a script's Bearer
        header, or the id of a live dashboard session in the cookie."""
        token = bearer_token(request)
        if token is not None and is_admin_token(self.settings, token):
            return token
        session_id = request.cookies.get(COOKIE, "")
        if not security.looks_like_token(session_id):
            return None
        async with self.db.transaction() as session:
            live = await admin_sessions.is_live(session, session_id, datetime.now(timezone.utc))
        return session_id if live else None

    async def _access(self, request: Request, code: int = status.HTTP_200_OK) -> str | Response:
        """The caller's admin secret, or the login form to answer instead (``code``: 200 for a page a
        browser asked for, where no HTTP auth challenge is involved; 401 for an action)."""
        if self.settings.admin_token is None:
            return self._html("admin_login.html", status.HTTP_403_FORBIDDEN, disabled=True)
        secret = await self._admin_secret(request)
        if secret is None:
            return self._html("admin_login.html", code, disabled=False, failed=False)
        return secret

    async def page(self, request: Request) -> Response:
        access = await self._access(request)
        if isinstance(access, Response):
            return access
        wanted = (request.query_params.get("status") or "").upper()
        status_filter = wanted if wanted in JobStatus.__members__ else None
        query = (request.query_params.get("q") or "").strip()[:MAX_QUERY_CHARS]
        async with self.db.transaction() as session:
            jobs, matching = await repo.list_jobs(
                session, owner_hash=None, status=status_filter, limit=SHOWN_JOBS, offset=0
            )
            if query:
                jobs = [job for job in jobs if _matches(job, query)]
                matching = len(jobs)
            counts = await repo.count_by_status(session)
            times = totals.stage_times(await repo.all_job_timings(session))
            errors = await repo.errors_of_jobs(session, [job.id for job in jobs])
            rows = [(job, responses.summary(job, None), errors[job.id]) for job in jobs]
        return self._html(
            "admin.html",
            rows=rows,
            matching=matching,
            counts=counts,
            total=sum(counts.values()),
            times=times,
            statuses=list(JobStatus.__members__),
            terminal=TERMINAL,
            status_filter=status_filter or "",
            query=query,
            notice=request.query_params.get("notice", "")[:200],
            form_token=admin_sessions.form_token(access),
        )

    async def _refused_action(self, request: Request) -> Response | None:
        access = await self._access(request, status.HTTP_401_UNAUTHORIZED)
        if isinstance(access, Response):
            return access
        sent = _form(await request.body()).get("form_token", "")
        if not security.same(sent, admin_sessions.form_token(access)):
            return self._html("admin_login.html", status.HTTP_403_FORBIDDEN, disabled=False, failed=False)
        return None

    def _back(self, notice: str) -> Response:
        return RedirectResponse(f"/admin?{urlencode({'notice': notice})}", status.HTTP_303_SEE_OTHER, headers=HEADERS)

    async def cancel(self, request: Request, job_id: uuid.UUID) -> Response:
        if refused := await self._refused_action(request):
            return refused
        async with self.db.transaction() as session:
            job = await repo.lock_job(session, job_id)
            if job is None:
                return self._back(f"job {job_id} does not exist")
            if jobstate.is_terminal(job):
                return self._back(f"job {job_id} already ended ({job.status})")
            await lifecycle.cancel(session, self.store, job, datetime.now(timezone.utc))
        self.relay.notify()
        return self._back(f"job {job_id} cancelled")

    async def delete(self, request: Request, job_id: uuid.UUID) -> Response:
        if refused := await self._refused_action(request):
            return refused
        async with self.db.transaction() as session:
            if await repo.lock_job(session, job_id) is None:
                return self._back(f"job {job_id} does not exist")
            await lifecycle.delete_objects_and_rows(session, self.store, job_id)
        await lifecycle.announce_deleted(self.bus, job_id)
        return self._back(f"job {job_id} deleted")

    async def login(self, request: Request) -> Response:
        if self.settings.admin_token is None:
            return self._html("admin_login.html", status.HTTP_403_FORBIDDEN, disabled=True)
        token = _form(await request.body()).get("token", "").strip()
        if not is_admin_token(self.settings, token):
            return self._html("admin_login.html", status.HTTP_401_UNAUTHORIZED, disabled=False, failed=True)
        lifetime = timedelta(seconds=self.settings.admin_session_seconds)
        async with self.db.transaction() as session:
            session_id = await admin_sessions.open_session(session, datetime.now(timezone.utc), lifetime)
        response = RedirectResponse("/admin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
        response.set_cookie(
            COOKIE,
            session_id,
            max_age=self.settings.admin_session_seconds,
            path="/admin",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        """Ends the session of the cookie, wherever it was copied to. No form token: a forged
        logout could only log the admin out, and SameSite=Strict already keeps it from happening."""
        session_id = request.cookies.get(COOKIE, "")
        if security.looks_like_token(session_id):
            async with self.db.transaction() as session:
                await admin_sessions.close_session(session, session_id)
        response = RedirectResponse("/admin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
        response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
        return response
