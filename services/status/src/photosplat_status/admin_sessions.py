"""Admin dashboard sessions: a random id in the browser's cookie, its hash and expiry in the
database, so that every status replica knows it and logout (or expiry) ends it for good.

The dashboard's forms carry a token derived from the session id: a cross-site page cannot know it,
and it dies with the session.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from photosplat_libs import security
from photosplat_status import repository as repo

COOKIE = "photosplat_admin"


async def open_session(session: AsyncSession, now: datetime, lifetime: timedelta) -> str:
    """A new session id (256 bits from ``secrets``). Expired sessions are removed here: logins are
    rare, so this keeps the table small without a sweeper."""
    await repo.delete_expired_admin_sessions(session, now)
    session_id = security.new_token()
    repo.add_admin_session(session, security.hash_token(session_id), now, now + lifetime)
    return session_id


async def is_live(session: AsyncSession, session_id: str, now: datetime) -> bool:
    id_hash = security.hash_token(session_id)
    expires_at = await repo.admin_session_expiry(session, id_hash)
    if expires_at is not None and expires_at <= now:
        await repo.delete_admin_session(session, id_hash)
        return False
    return expires_at is not None


async def close_session(session: AsyncSession, session_id: str) -> None:
    await repo.delete_admin_session(session, security.hash_token(session_id))


def form_token(secret: str) -> str:
    """The token of the dashboard's forms, keyed by the session id (or, for a script, the admin
    token): bound to that session, and no use to anyone who does not hold it."""
    return hmac.new(secret.encode(), b"photosplat-admin-form", hashlib.sha256).hexdigest()
