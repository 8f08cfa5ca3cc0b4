"""Who is calling: the owner of a job (its client token) or the admin (docs/architecture.md §6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status
from sqlalchemy import Row

from photosplat_libs import security
from photosplat_libs.db.models import Job, JobStatus
from photosplat_status.settings import StatusSettings


@dataclass(frozen=True)
class Caller:
    token: str
    admin: bool

    @property
    def owner_hash(self) -> str:
        return security.hash_token(self.token)

    def may_see(self, job: Job | Row[Any]) -> bool:
        return self.admin or security.same(job.owner_hash, self.owner_hash)

    def viewer_url(self, job: Job | Row[Any], public_base_url: str) -> str | None:
        """Only the owner's token opens the sealed public key; the admin gets no link."""
        if job.status != JobStatus.DONE or self.admin or not job.pub_key_sealed:
            return None
        pub_key = security.unseal_pub_key(job.pub_key_sealed, self.token, str(job.id))
        return f"{public_base_url}/v/{pub_key}" if pub_key else None


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
