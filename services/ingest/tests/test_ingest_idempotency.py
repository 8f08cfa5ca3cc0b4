"""Idempotency-Key on POST /recon/jobs, POST /recon/uploads and submit, through the HTTP API, on
SQLite and on Postgres: a retry gets the first response, not a second job."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import httpx
from sqlalchemy import select

from photosplat_ingest.api_keys import create_key
from photosplat_ingest.sweeper import purge_idempotency_keys
from photosplat_libs.db.models import IdempotencyKey, Job


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def declare(http: httpx.AsyncClient, photos: list[bytes], **headers: str) -> httpx.Response:
    files = [{"name": f"{i}.jpg", "size": len(p), "content_type": "image/jpeg"} for i, p in enumerate(photos)]
    return await http.post("/recon/uploads", json={"files": files}, headers=headers)


async def test_a_retried_multipart_post_returns_the_same_job(start_ingest, photo_files) -> None:
    ingest = await start_ingest()
    idem = key()
    async with ingest.client() as http:
        first = await http.post("/recon/jobs", files=photo_files(), data={"preset": "preview"}, headers=idem)
        # httpx picks a new multipart boundary: the same request in other bytes.
        retry = await http.post("/recon/jobs", files=photo_files(), data={"preset": "preview"}, headers=idem)
        other = await http.post("/recon/jobs", files=photo_files(), data={"preset": "preview"}, headers=key())

    assert first.status_code == retry.status_code == 201, retry.text
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert other.json()["job_id"] != first.json()["job_id"]
    assert await ingest.jobs() == 2 and await ingest.outbox() == 4  # two jobs' events, no more
    assert await ingest.job_folders() == {first.json()["job_id"], other.json()["job_id"]}
    async with ingest.db.transaction() as session:
        stored = (await session.scalars(select(IdempotencyKey))).all()
    # The database keeps neither the keys nor the owner tokens in clear.
    assert len(stored) == 2 and idem["Idempotency-Key"] not in {r.key_hash for r in stored}
    assert all(first.json()["token"] not in r.response_sealed for r in stored)


async def test_the_same_key_for_another_request_is_refused(start_ingest, photo_files) -> None:
    ingest = await start_ingest()
    idem = key()
    async with ingest.client() as http:
        first = await http.post("/recon/jobs", files=photo_files(), headers=idem)
        other_photos = await http.post("/recon/jobs", files=photo_files(10), headers=idem)
        other_option = await http.post("/recon/jobs", files=photo_files(), data={"preset": "preview"}, headers=idem)
        other_endpoint = await declare(http, [b"x" * 1000] * 3, **idem)
        malformed = await http.post("/recon/jobs", files=photo_files(), headers={"Idempotency-Key": "a b"})

    assert first.status_code == 201
    for response in (other_photos, other_option, other_endpoint):
        assert response.status_code == 422, response.text
        assert "Idempotency-Key" in response.json()["detail"] and "different request" in response.json()["detail"]
    assert malformed.status_code == 400 and "Idempotency-Key" in malformed.json()["detail"]
    assert await ingest.jobs() == 1 and await ingest.job_folders() == {first.json()["job_id"]}


async def test_declare_and_submit_can_be_retried(start_ingest, make_photo) -> None:
    ingest = await start_ingest()
    photos = [make_photo(seed=i) for i in range(3)]
    declare_key, submit_key = key(), key()
    async with ingest.client() as http:
        declared = await declare(http, photos, **declare_key)
        again = await declare(http, photos, **declare_key)
        assert declared.status_code == again.status_code == 201 and again.json() == declared.json()
        body = declared.json()
        for upload, photo in zip(body["uploads"], photos, strict=True):
            assert (await http.put(upload["url"], content=photo, headers=upload["headers"])).status_code == 200
        auth = {"Authorization": f"Bearer {body['token']}"}
        submit = f"/recon/jobs/{body['job_id']}/submit"

        submitted = await http.post(submit, headers={**auth, **submit_key})
        retried = await http.post(submit, headers={**auth, **submit_key})
        without_key = await http.post(submit, headers=auth)

    assert submitted.status_code == retried.status_code == 200, retried.text
    assert retried.json() == submitted.json() and submitted.json()["viewer_url"].endswith(body["pub_key"])
    assert without_key.status_code == 409  # as before: a second submit, not a retry
    assert await ingest.jobs() == 1 and await ingest.outbox() == 2


async def test_a_key_belongs_to_its_client(start_ingest) -> None:
    ingest = await start_ingest()
    idem = key()
    async with ingest.client("10.0.0.1") as one, ingest.client("10.0.0.2") as two:
        first, second = await declare(one, [b"x" * 1000] * 3, **idem), await declare(two, [b"x" * 1000] * 3, **idem)
    assert first.status_code == second.status_code == 201
    assert first.json()["job_id"] != second.json()["job_id"] and first.json()["token"] != second.json()["token"]


async def test_a_retry_at_the_limit_still_gets_its_job(start_ingest, photo_files) -> None:
    ingest = await start_ingest(client_jobs_per_hour=1)
    idem = key()
    async with ingest.client() as http:
        first = await http.post("/recon/jobs", files=photo_files(), headers=idem)
        retry = await http.post("/recon/jobs", files=photo_files(), headers=idem)
        new = await http.post("/recon/jobs", files=photo_files(), headers=key())
    assert first.status_code == retry.status_code == 201 and retry.json() == first.json()
    assert new.status_code == 429


async def test_keys_expire(start_ingest) -> None:
    ingest = await start_ingest(idempotency_ttl_seconds=3600)
    idem = key()
    async with ingest.client() as http:
        first = await declare(http, [b"x" * 1000] * 3, **idem)
        async with ingest.db.transaction() as session:
            [record] = (await session.scalars(select(IdempotencyKey))).all()
            assert record.expires_at - record.created_at == timedelta(hours=1)
            record.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
        later = await declare(http, [b"x" * 1000] * 3, **idem)
    assert later.status_code == 201 and later.json()["job_id"] != first.json()["job_id"]
    assert await ingest.count(IdempotencyKey) == 1  # the expired record made way
    assert await purge_idempotency_keys(ingest.db, datetime.now(timezone.utc) + timedelta(hours=2)) == 1


async def test_concurrent_duplicates_make_one_job(start_ingest, photo_files, make_photo) -> None:
    one, two = await start_ingest(), await start_ingest()  # two replicas on one database
    _, api_key = await create_key(one.db, "partner")
    for extra in ({}, {"X-API-Key": api_key}):  # a limited client, then an unlimited one
        idem = key()
        async with one.client(**extra) as a, two.client(**extra) as b:
            responses = await asyncio.gather(
                *(http.post("/recon/jobs", files=photo_files(), headers=idem) for http in (a, b, a, b))
            )
        assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
        assert len({r.json()["job_id"] for r in responses}) == 1
        assert sum("idempotent-replayed" in r.headers for r in responses) == 3
    assert await one.jobs() == 2 and await one.outbox() == 4 and len(await one.job_folders()) == 2

    photos = [make_photo(seed=i) for i in range(3)]
    async with one.client() as a, two.client() as b:
        body = (await declare(a, photos)).json()
        for upload, photo in zip(body["uploads"], photos, strict=True):
            await a.put(upload["url"], content=photo, headers=upload["headers"])
        headers = {"Authorization": f"Bearer {body['token']}", **key()}
        submits = await asyncio.gather(
            *(http.post(f"/recon/jobs/{body['job_id']}/submit", headers=headers) for http in (a, b, a, b))
        )
    assert [r.status_code for r in submits] == [200] * 4, [r.text for r in submits]
    assert all(r.json() == submits[0].json() for r in submits)
    async with one.db.transaction() as session:
        job = await session.get(Job, uuid.UUID(body["job_id"]))
    assert job is not None and job.stage == "sfm" and await one.outbox() == 6
