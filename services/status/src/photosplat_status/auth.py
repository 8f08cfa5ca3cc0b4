"""Who is calling: the owner of a job (its client token) or the admin (DESIGN §6)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from photosplat_libs import security
from photosplat_libs.db.models import Job
from photosplat_status.settings import StatusSettings

ADMIN_COOKIE = "photosplat_admin"


@dataclass(frozen=True)
class Caller:
    token: str
    admin: bool

    @property
    def owner_hash(self) -> str:
        return security.hash_token(self.token)

    def may_see(self, job: Job) -> bool:
        return self.admin or security.same(job.owner_hash, self.owner_hash)


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def is_admin_token(settings: StatusSettings, token: str | None) -> bool:
    return (
        settings.admin_token is not None
        and token is not None
        and security.same(token, settings.admin_token.get_secret_value())
    )


def caller_of(settings: StatusSettings, request: Request) -> Caller:
    token = bearer_token(request)
    if token is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send your client token as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(token=token, admin=is_admin_token(settings, token))


def _derived(settings: StatusSettings, purpose: bytes) -> str:
    assert settings.admin_token is not None
    key = settings.admin_token.get_secret_value().encode()
    return hmac.new(key, purpose, hashlib.sha256).hexdigest()


def admin_session_value(settings: StatusSettings) -> str:
    """The dashboard cookie: derived from the admin token, so the cookie opens the dashboard only
    and does not reveal the token that the API accepts."""
    return _derived(settings, b"photosplat-admin-dashboard")


def admin_form_token(settings: StatusSettings) -> str:
    """The token the dashboard's forms carry: a cross-site page cannot know it."""
    return _derived(settings, b"photosplat-admin-form")


def has_admin_session(settings: StatusSettings, request: Request) -> bool:
    if settings.admin_token is None:
        return False
    if is_admin_token(settings, bearer_token(request)):
        return True
    cookie = request.cookies.get(ADMIN_COOKIE)
    return cookie is not None and security.same(cookie, admin_session_value(settings))
