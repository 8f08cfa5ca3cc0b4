"""Rate limits on creating jobs, through the HTTP API, on SQLite and on Postgres: per client (owner
token, else address), globally, lifted by API keys, counted in the database across replicas."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import delete, update

from photosplat_ingest.api_keys import create_key, main as api_key_cli, revoke_key
from photosplat_ingest.clients import address_bucket
from photosplat_libs.db.models import Job, QuotaCharge

# Every limit off; each test turns on the ones it checks.
NO_LIMITS = {
    "client_jobs_per_hour": 0,
    "client_unfinished_jobs": 0,
    "client_upload_bytes_per_day": 0,
    "global_jobs_per_hour": 0,
    "global_unfinished_jobs": 0,
    "global_upload_bytes_per_day": 0,
}


async def declare(client: httpx.AsyncClient, size: int = 1000, **headers: str) -> httpx.Response:
    files = [{"name": f"{i}.jpg", "size": size, "content_type": "image/jpeg"} for i in range(3)]
    return await client.post("/recon/uploads", json={"files": files}, headers=headers)


def assert_limited(response: httpx.Response, limit: str, about_seconds: float | None) -> dict:
    assert response.status_code == 429, response.text
    detail = response.json()["detail"]
    assert detail["limit"] == limit and limit.split("_")[0] == detail["scope"]
    retry_after = int(response.headers["retry-after"])
    assert detail["retry_after_seconds"] == retry_after
    if about_seconds is not None:
        assert about_seconds - 60 <= retry_after <= about_seconds
        resets_at = datetime.fromisoformat(detail["resets_at"])
        assert abs((resets_at - datetime.now(timezone.utc)).total_seconds() - retry_after) < 60
    return detail


async def test_jobs_per_hour_per_client_then_429_with_retry_after(start_ingest) -> None:
    ingest = await start_ingest(**{**NO_LIMITS, "client_jobs_per_hour": 2})
    async with ingest.client() as anonymous, ingest.client("10.0.0.2") as neighbour:
        first = await declare(anonymous)
        assert first.status_code == 201 and (await declare(anonymous)).status_code == 201

        refused = await declare(anonymous)

        detail = assert_limited(refused, "client_jobs_per_hour", 3600)
        assert detail["maximum"] == detail["used"] == 2 and "2 new jobs per hour per client" in detail["message"]
        # Another address, or the owner token the first job came with, is another client.
        assert (await declare(neighbour)).status_code == 201
        assert (await declare(anonymous, Authorization=f"Bearer {first.json()['token']}")).status_code == 201
        # Deleting its jobs gives a client nothing back: the charges outlive them.
        async with ingest.db.transaction() as session:
            await session.execute(delete(Job))
        assert (await declare(anonymous)).status_code == 429
        # An hour later the oldest charges have left the window.
        await ingest.backdate(QuotaCharge, timedelta(hours=1))
        assert (await declare(anonymous)).status_code == 201
    assert await ingest.count(QuotaCharge) == 5


async def test_unfinished_jobs_per_client_free_up_when_a_job_ends(start_ingest) -> None:
    ingest = await start_ingest(**{**NO_LIMITS, "client_unfinished_jobs": 1}, unfinished_retry_after_seconds=30)
    async with ingest.client() as http:
        first = await declare(http)
        assert first.status_code == 201

        refused = await declare(http)

        detail = assert_limited(refused, "client_unfinished_jobs", None)
        assert refused.headers["retry-after"] == "30" and detail["resets_at"] is None
        async with ingest.db.transaction() as session:
            await session.execute(update(Job).values(status="DONE"))
        assert (await declare(http)).status_code == 201
        # A declared upload never submitted stops counting when its window closes.
        await ingest.backdate(Job, timedelta(hours=2))
        assert (await declare(http)).status_code == 201


async def test_upload_bytes_per_day_per_client(start_ingest, photo_files) -> None:
    ingest = await start_ingest(**{**NO_LIMITS, "client_upload_bytes_per_day": 150_000})
    async with ingest.client() as http:
        assert (await declare(http, size=30_000)).status_code == 201  # 90 kB of 150

        over = await declare(http, size=30_000)
        alone_too_large = await declare(http, size=60_000)
        # A multipart upload is refused from its declared length, before the photos are read...
        six_photos = [*photo_files(0), *photo_files(3)]  # ~110 kB
        multipart = await http.post("/recon/jobs", files=six_photos)
        # ...and, sent without a length, when the job would be created: nothing is kept.
        request = http.build_request("POST", "/recon/jobs", files=six_photos)
        body = request.read()

        async def chunks():
            yield body

        content_type = {"content-type": request.headers["content-type"]}
        streamed = await http.post("/recon/jobs", content=chunks(), headers=content_type)

    assert_limited(over, "client_upload_bytes_per_day", 24 * 3600)
    assert alone_too_large.status_code == 413 and "retry-after" not in alone_too_large.headers
    assert alone_too_large.json()["detail"]["limit"] == "client_upload_bytes_per_day"
    for response in (multipart, streamed):
        assert_limited(response, "client_upload_bytes_per_day", 24 * 3600)
    assert await ingest.jobs() == 1 and await ingest.job_folders() == set()


async def test_global_limits_count_every_client(start_ingest) -> None:
    ingest = await start_ingest(**{**NO_LIMITS, "global_jobs_per_hour": 2})
    responses = []
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        async with ingest.client(ip) as http:
            responses.append(await declare(http))
    assert [r.status_code for r in responses[:2]] == [201, 201]
    detail = assert_limited(responses[2], "global_jobs_per_hour", 3600)
    assert "for all clients together" in detail["message"]


async def test_an_api_key_lifts_the_limits_until_revoked(start_ingest) -> None:
    ingest = await start_ingest(**{**NO_LIMITS, "client_jobs_per_hour": 1, "global_unfinished_jobs": 2})
    row, key = await create_key(ingest.db, "partner")
    async with ingest.client() as http, ingest.client("10.0.0.9") as other:
        assert (await declare(http)).status_code == 201
        assert (await declare(http)).status_code == 429
        keyed = [await declare(http, **{"X-API-Key": key}) for _ in range(3)]
        assert [r.status_code for r in keyed] == [201, 201, 201]
        # Its jobs still count towards the global numbers.
        assert_limited(await declare(other), "global_unfinished_jobs", None)

        await revoke_key(ingest.db, row.id)
        revoked = await declare(http, **{"X-API-Key": key})
        unknown = await declare(http, **{"X-API-Key": "psk_" + "x" * 43})
    for response in (revoked, unknown):
        assert response.status_code == 401 and "API key" in response.json()["detail"]
    assert await ingest.jobs() == 4


def test_the_api_key_command(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert api_key_cli(["--database-url", sqlite_url, "create", "partner"]) == 0
    key = capsys.readouterr().out.split(": ", 1)[1].split()[0]
    assert key.startswith("psk_") and len(key) > 40
    assert api_key_cli(["--database-url", sqlite_url, "revoke", "1"]) == 0
    assert api_key_cli(["--database-url", sqlite_url, "revoke", "1"]) == 1
    assert api_key_cli(["--database-url", sqlite_url, "list"]) == 0
    listing = capsys.readouterr().out
    assert "partner" in listing and "revoked" in listing and key not in listing


async def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(start_ingest) -> None:
    direct = await start_ingest(**{**NO_LIMITS, "client_jobs_per_hour": 1})
    proxied = await start_ingest(**{**NO_LIMITS, "client_jobs_per_hour": 1}, trusted_proxy_hops=1)
    async with direct.client() as http:
        spoofed = [await declare(http, **{"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(2)]
    assert [r.status_code for r in spoofed] == [201, 429]  # the header of a client is ignored
    async with proxied.client("10.0.0.1") as proxy:
        # The proxy appends the address it saw; what the client wrote before it does not count.
        a1 = await declare(proxy, **{"X-Forwarded-For": "1.1.1.1, 203.0.113.7"})
        a2 = await declare(proxy, **{"X-Forwarded-For": "2.2.2.2, 203.0.113.7"})
        b = await declare(proxy, **{"X-Forwarded-For": "203.0.113.8"})
    assert [r.status_code for r in (a1, a2, b)] == [201, 429, 201]


def test_an_ipv6_client_is_its_64() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("::ffff:192.0.2.1") == "192.0.2.1" and address_bucket("192.0.2.1") == "192.0.2.1"


async def test_replicas_share_the_limits(start_ingest) -> None:
    settings = {**NO_LIMITS, "client_jobs_per_hour": 1, "global_jobs_per_hour": 3}
    one, two = await start_ingest(**settings), await start_ingest(**settings)
    async with one.client() as a, two.client() as b:
        same_client = await asyncio.gather(*(declare(http) for http in (a, b, a, b)))
    assert sorted(r.status_code for r in same_client) == [201, 429, 429, 429]
    clients = [one.client(f"10.1.0.{i}") if i % 2 else two.client(f"10.1.0.{i}") for i in range(4)]
    others = await asyncio.gather(*(declare(http) for http in clients))
    for http in clients:
        await http.aclose()
    assert sorted(r.status_code for r in others) == [201, 201, 429, 429]  # 3 in all
    created = {uuid.UUID(r.json()["job_id"]) for r in (*same_client, *others) if r.status_code == 201}
    assert await one.jobs() == len(created) == 3
