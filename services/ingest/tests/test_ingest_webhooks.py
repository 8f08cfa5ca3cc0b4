"""Registering a webhook when a job is created (multipart, presigned, an API key's default): the
callback and its secret stored with the job; callbacks to internal addresses refused (SSRF) with a
400 naming the field and the rule, before anything is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from photosplat_ingest.api_keys import create_key
from photosplat_ingest.api_keys import main as api_key_cli
from photosplat_libs.db.models import JobWebhook
from photosplat_libs.security import unseal_pub_key
from photosplat_libs.webhooks import secret_of_token

PUBLIC = "https://93.184.216.34/hooks/photosplat"  # an address literal: no DNS needed
NO_LIMITS = {"client_jobs_per_hour": 0, "client_unfinished_jobs": 0, "global_jobs_per_hour": 0}


def declaration(photos: int = 3, **fields: Any) -> dict[str, Any]:
    files = [{"name": f"{i}.jpg", "size": 1000, "content_type": "image/jpeg"} for i in range(photos)]
    return {"files": files, **fields}


async def hook_of(ingest: Any, job_id: str) -> JobWebhook | None:
    async with ingest.db.transaction() as session:
        return (await session.scalars(select(JobWebhook).where(JobWebhook.job_id == uuid.UUID(job_id)))).one_or_none()


async def test_both_flows_register_a_callback_signed_with_the_clients_secret(start_ingest, photo_files) -> None:
    ingest = await start_ingest(**NO_LIMITS)
    async with ingest.client() as http:
        posted = await http.post("/recon/jobs", files=photo_files(), data={"callback_url": PUBLIC})
        token = posted.json()["token"]
        declared = await http.post(
            "/recon/uploads", json=declaration(callback_url=PUBLIC + "?job=2"), headers={"Authorization": f"Bearer {token}"}
        )
        plain = await http.post("/recon/uploads", json=declaration(), headers={"Authorization": f"Bearer {token}"})
    assert posted.status_code == declared.status_code == plain.status_code == 201, declared.text
    body = posted.json()
    # One secret per client: derived from its token, the same for each of its jobs.
    assert body["webhook_secret"] == declared.json()["webhook_secret"] == secret_of_token(token)
    assert (body["callback_url"], declared.json()["callback_url"]) == (PUBLIC, PUBLIC + "?job=2")
    assert "callback_url" not in plain.json() and "webhook_secret" not in plain.json()

    hook = await hook_of(ingest, body["job_id"])
    assert hook is not None and (hook.url, hook.secret) == (PUBLIC, body["webhook_secret"])
    assert hook.status_url == body["status_url"]
    # The viewer link is not kept in clear.
    assert body["viewer_url"] not in hook.viewer_url_sealed
    assert unseal_pub_key(hook.viewer_url_sealed, hook.secret, body["job_id"]) == body["viewer_url"]
    assert await hook_of(ingest, declared.json()["job_id"]) is not None
    assert await hook_of(ingest, plain.json()["job_id"]) is None


# (callback_url, rule, what the message says)
REFUSED = [
    ("http://127.0.0.1:8080/hook", "private_address", "127.0.0.1 is a loopback address"),
    ("http://localhost/hook", "private_address", "loopback address"),
    ("http://10.1.2.3/hook", "private_address", "10.1.2.3 is a private address"),
    ("http://[::1]/hook", "private_address", "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data", "link_local_address", "link-local"),
    ("ftp://93.184.216.34/hook", "scheme", "must be http or https"),
    ("http://user:pw@93.184.216.34/", "credentials", "must not carry credentials"),
    ("http://does-not-exist.invalid/", "unresolvable", "does not resolve"),
]


async def test_a_callback_to_an_internal_address_is_refused(start_ingest, photo_files) -> None:
    ingest = await start_ingest(**NO_LIMITS)
    async with ingest.client() as http:
        for url, rule, says in REFUSED:
            multipart = await http.post("/recon/jobs", files=photo_files(), data={"callback_url": url})
            presigned = await http.post("/recon/uploads", json=declaration(callback_url=url))
            for response in (multipart, presigned):
                assert response.status_code == 400, (url, response.text)
                [error] = response.json()["detail"]["errors"]
                assert error["rule"] == "callback_url"
                message = error["message"]
                assert message.startswith(f"callback_url: refused by rule {rule}: ") and says in message, message
    assert await ingest.jobs() == 0 and await ingest.job_folders() == set()


async def test_an_operator_may_allow_private_addresses_but_never_link_local(start_ingest) -> None:
    ingest = await start_ingest(**NO_LIMITS, webhook_allow_private_addresses=True)
    async with ingest.client() as http:
        loopback = await http.post("/recon/uploads", json=declaration(callback_url="http://127.0.0.1:9/hook"))
        metadata = await http.post("/recon/uploads", json=declaration(callback_url="http://169.254.169.254/"))
    assert loopback.status_code == 201 and metadata.status_code == 400


async def test_an_api_key_signs_with_its_own_secret_and_supplies_a_default_callback(start_ingest) -> None:
    ingest = await start_ingest()
    row, key = await create_key(ingest.db, "partner", callback_url=PUBLIC)
    assert row.webhook_secret and row.webhook_secret.startswith("whsec_")
    async with ingest.client() as http:
        default = await http.post("/recon/uploads", json=declaration(), headers={"X-API-Key": key})
        own = await http.post("/recon/uploads", json=declaration(callback_url=PUBLIC + "/x"), headers={"X-API-Key": key})
    assert default.status_code == own.status_code == 201
    assert (default.json()["callback_url"], own.json()["callback_url"]) == (PUBLIC, PUBLIC + "/x")
    for response in (default, own):
        hook = await hook_of(ingest, response.json()["job_id"])
        assert hook is not None and hook.secret == row.webhook_secret == response.json()["webhook_secret"]


def test_the_api_key_command_checks_the_callback_and_prints_the_webhook_secret(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert api_key_cli(["--database-url", sqlite_url, "create", "lan", "--callback-url", "http://10.0.0.7/"]) == 2
    assert "--callback-url refused by rule private_address" in capsys.readouterr().err
    assert api_key_cli(["--database-url", sqlite_url, "create", "partner", "--callback-url", PUBLIC]) == 0
    out = capsys.readouterr().out
    assert "Webhook secret" in out and "whsec_" in out
