"""Admin dashboard sessions: random, stored hashed, ended by logout, refused once expired."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from photosplat_libs import security
from photosplat_libs.db.models import AdminSession, JobStatus

COOKIE = "photosplat_admin"


@pytest.fixture
async def status(either_database: str, memory_bus: Any, folder_store: Any, kit: Any) -> Any:
    async with kit.running_status(either_database, memory_bus, folder_store, admin_session_seconds=3600) as running:
        yield running


async def log_in(status: Any, kit: Any) -> str:
    response = await status.client.post("/admin/login", data={"token": kit.admin_token})
    assert response.status_code == 303
    assert "Max-Age=3600" in response.headers["set-cookie"]
    return response.cookies[COOKIE]


def browser(status: Any, session_id: str) -> httpx.AsyncClient:
    """A second client that presents exactly this cookie (and keeps no other)."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=status.app), base_url=str(status.client.base_url))
    client.cookies.set(COOKIE, session_id, domain="status.test", path="/admin")
    return client


def form_token(page: str) -> str:
    match = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
    assert match, "the page has no action form"
    return match.group(1)


async def stored_hashes(status: Any) -> list[str]:
    async with status.db.transaction() as session:
        return list((await session.scalars(select(AdminSession.id_hash))).all())


async def test_each_login_is_a_new_random_session_kept_only_as_a_hash(status: Any, kit: Any) -> None:
    first, second = await log_in(status, kit), await log_in(status, kit)
    assert first != second and len(first) >= 22 and kit.admin_token not in first
    assert sorted(await stored_hashes(status)) == sorted([security.hash_token(first), security.hash_token(second)])
    async with browser(status, first) as a, browser(status, second) as b:
        assert "PhotoSplat jobs" in (await a.get("/admin")).text
        assert "PhotoSplat jobs" in (await b.get("/admin")).text


async def test_logout_ends_the_session_for_good(status: Any, kit: Any) -> None:
    job = await kit.insert_job(status.db, status=JobStatus.RUNNING, stage="train")
    session_id = await log_in(status, kit)
    async with browser(status, session_id) as replay:
        token = form_token((await replay.get("/admin")).text)

        logout = await status.client.post("/admin/logout")
        assert logout.status_code == 303 and f'{COOKIE}=""' in logout.headers["set-cookie"]
        assert await stored_hashes(status) == []

        # the same cookie, presented again after logout (a copy an attacker kept): refused
        page = await replay.get("/admin")
        assert 'name="token"' in page.text and "<table" not in page.text
        cancel = await replay.post(f"/admin/jobs/{job.id}/cancel", data={"form_token": token})
        assert cancel.status_code == 401
    assert (await kit.load_job(status.db, job.id)).status == JobStatus.RUNNING


async def test_an_expired_session_is_refused_and_removed(status: Any, kit: Any) -> None:
    session_id = await log_in(status, kit)
    async with status.db.transaction() as session:
        await session.execute(update(AdminSession).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    async with browser(status, session_id) as expired:
        assert 'name="token"' in (await expired.get("/admin")).text
    assert await stored_hashes(status) == []


async def test_logging_in_clears_expired_sessions_of_others(status: Any, kit: Any) -> None:
    stale = await log_in(status, kit)
    async with status.db.transaction() as session:
        await session.execute(update(AdminSession).values(expires_at=datetime.now(timezone.utc) - timedelta(hours=1)))
    fresh = await log_in(status, kit)
    assert await stored_hashes(status) == [security.hash_token(fresh)]
    assert stale != fresh


async def test_the_form_token_belongs_to_its_session(status: Any, kit: Any) -> None:
    job = await kit.insert_job(status.db, status=JobStatus.RUNNING, stage="train")
    first, second = await log_in(status, kit), await log_in(status, kit)
    async with browser(status, first) as a, browser(status, second) as b:
        token_of_first = form_token((await a.get("/admin")).text)
        assert token_of_first != form_token((await b.get("/admin")).text)
        forged = await b.post(f"/admin/jobs/{job.id}/cancel", data={"form_token": token_of_first})
        assert forged.status_code == 403
        cancelled = await a.post(f"/admin/jobs/{job.id}/cancel", data={"form_token": token_of_first})
        assert cancelled.status_code == 303
    assert (await kit.load_job(status.db, job.id)).status == JobStatus.CANCELLED
