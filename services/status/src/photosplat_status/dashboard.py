"""The admin dashboard: one HTML page with every job (a richer one comes later).

A browser logs in by posting the admin token to a form; it gets an HttpOnly, SameSite=Strict
cookie derived from the token (see auth.admin_session_value). Tokens never travel in URLs, where
they would end up in logs and browser history. A script may send the Bearer header instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from photosplat_libs.db import Database
from photosplat_status import repository as repo
from photosplat_status import views
from photosplat_status.auth import ADMIN_COOKIE, admin_session_value, has_admin_session, is_admin_token
from photosplat_status.settings import StatusSettings

SHOWN_JOBS = 500
SESSION_SECONDS = 8 * 3600
# The page needs no script and loads nothing from elsewhere.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Environment(loader=PackageLoader("photosplat_status", "templates"), autoescape=select_autoescape(["html"]))


@dataclass
class Dashboard:
    settings: StatusSettings
    db: Database

    def router(self) -> APIRouter:
        router = APIRouter(tags=["admin"], include_in_schema=False)
        router.add_api_route("/admin", self.page, methods=["GET"])
        router.add_api_route("/admin/login", self.login, methods=["POST"])
        router.add_api_route("/admin/logout", self.logout, methods=["POST"])
        return router

    def _html(self, template: str, code: int = status.HTTP_200_OK, **context: object) -> HTMLResponse:
        body = _templates.get_template(template).render(**context)
        return HTMLResponse(body, status_code=code, headers=HEADERS)

    async def page(self, request: Request) -> Response:
        if self.settings.admin_token is None:
            return self._html("admin_login.html", status.HTTP_403_FORBIDDEN, disabled=True)
        if not has_admin_session(self.settings, request):
            return self._html("admin_login.html", status.HTTP_401_UNAUTHORIZED, disabled=False, failed=False)
        async with self.db.transaction() as session:
            jobs, total = await repo.list_jobs(session, owner_hash=None, status=None, limit=SHOWN_JOBS, offset=0)
            totals = await repo.count_by_status(session)
            rows = [(job, views.summary(job, None)) for job in jobs]
        return self._html("admin.html", rows=rows, total=total, totals=totals)

    async def login(self, request: Request) -> Response:
        if self.settings.admin_token is None:
            return self._html("admin_login.html", status.HTTP_403_FORBIDDEN, disabled=True)
        form = parse_qs((await request.body()).decode(errors="replace"))
        token = (form.get("token") or [""])[0].strip()
        if not is_admin_token(self.settings, token):
            return self._html("admin_login.html", status.HTTP_401_UNAUTHORIZED, disabled=False, failed=True)
        response = RedirectResponse("/admin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
        response.set_cookie(
            ADMIN_COOKIE,
            admin_session_value(self.settings),
            max_age=SESSION_SECONDS,
            path="/admin",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self) -> Response:
        response = RedirectResponse("/admin", status.HTTP_303_SEE_OTHER, headers=HEADERS)
        response.delete_cookie(ADMIN_COOKIE, path="/admin", httponly=True, samesite="strict")
        return response
