"""Webhooks of ended jobs, posted to a real HTTP receiver on 127.0.0.1: signed, retried with
back-off after a failure, recorded attempt by attempt in the status API, refused for internal
addresses at delivery, and posted once however many senders run (Postgres)."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import httpx
from sqlalchemy import func, select

from photosplat_libs import keys, security
from photosplat_libs.bus import Bus
from photosplat_libs.db import Database
from photosplat_libs.db.models import JobStatus, JobWebhook, WebhookAttempt, WebhookDelivery
from photosplat_libs.events import ExportInfo, Stage, StageFailed, TrainingDone
from photosplat_libs.store import ObjectStore
from photosplat_libs.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, JobEnded, secret_of_token, verify
from photosplat_status.projection import project
from photosplat_status.settings import StatusSettings
from photosplat_status.webhooks.posting import Claimed, pinned_request
from photosplat_status.webhooks.sender import WebhookSender
from photosplat_testkit.webhook_receiver import Received, WebhookReceiver

# Retries within a tenth of a second, a receiver on loopback.
FAST: dict[str, Any] = {
    "webhook_poll_seconds": 0.02,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.1,
    "webhook_allow_private_addresses": True,
}
BASE = "http://photosplat.test"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_callback(db: Database, job: Any, url: str) -> str:
    """The callback row as ingest writes it; returns the secret."""
    secret = secret_of_token(job.token)
    async with db.transaction() as session:
        session.add(
            JobWebhook(
                job_id=job.id,
                url=url,
                secret=secret,
                status_url=f"{BASE}/recon/jobs/{job.id}/status",
                viewer_url_sealed=security.seal_pub_key(f"{BASE}/v/{job.pub_key}", secret, str(job.id)),
                created_at=datetime.now(timezone.utc),
            )
        )
    return secret


async def count(db: Database, model: type[Any]) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


def training_done(job_id: uuid.UUID) -> TrainingDone:
    ply = ExportInfo(format="ply", key=keys.output(job_id, "scene.ply"), bytes=1024)
    return TrainingDone(job_id=job_id, exports=(ply,), gaussian_count=1000)


def verified(request: Received, secret: str) -> JobEnded:
    assert verify(secret, request.headers[SIGNATURE_HEADER], request.body)
    notification = JobEnded.model_validate_json(request.body)
    assert request.headers[DELIVERY_HEADER] == str(notification.delivery_id)
    return notification


async def test_a_done_job_is_announced_signed_and_retried_after_a_500(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    with WebhookReceiver(answers=[500, 200]) as receiver:
        async with kit.running_status(sqlite_url, memory_bus, folder_store, **FAST) as status:
            job = await kit.insert_job(status.db, stage="train", status=JobStatus.RUNNING)
            secret = await add_callback(status.db, job, receiver.url)
            await project(status.db, status.store, training_done(job.id))
            first, second = await receiver.wait_for(2)

            async def delivered() -> bool:
                answer = await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))
                return answer.json()["deliveries"][0]["state"] == "DELIVERED"

            await kit.eventually(delivered)
            view = (await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))).json()
            other = await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(security.new_token()))
            admin = await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(kit.admin_token))

    notification = verified(second, secret)
    assert verified(first, secret) == notification  # the same body, signed again
    assert not verify("whsec_another", second.headers[SIGNATURE_HEADER], second.body)
    assert not verify(secret, second.headers[SIGNATURE_HEADER], second.body.replace(b"DONE", b"FAIL"))
    assert (notification.event, notification.status, notification.job_id) == ("job.done", "DONE", job.id)
    assert notification.viewer_url == f"{BASE}/v/{job.pub_key}"
    assert notification.status_url == f"{BASE}/recon/jobs/{job.id}/status"
    assert notification.error is None and notification.finished_at is not None
    assert first.headers["Content-Type"] == "application/json" and second.path == "/hook"

    assert view["callback_url"] == receiver.url
    [delivery] = view["deliveries"]
    assert (delivery["event"], delivery["attempts"], delivery["next_attempt_at"]) == ("job.done", 2, None)
    assert delivery["delivery_id"] == str(notification.delivery_id) and delivery["delivered_at"]
    log = delivery["attempt_log"]
    assert [(a["number"], a["status_code"], a["error"]) for a in log] == [(1, 500, "HTTP 500"), (2, 200, None)]
    assert other.status_code == 404 and admin.json() == view


async def test_a_failed_job_carries_its_error_and_gives_up_after_the_last_attempt(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    with WebhookReceiver(answers=[503]) as receiver:
        async with kit.running_status(sqlite_url, memory_bus, folder_store, webhook_max_attempts=3, **FAST) as status:
            job = await kit.insert_job(status.db, stage="sfm", status=JobStatus.RUNNING)
            secret = await add_callback(status.db, job, receiver.url)
            failure = StageFailed(job_id=job.id, stage=Stage.SFM, error_type="UserError", message="too few matches")
            await project(status.db, status.store, failure)
            requests = await receiver.wait_for(3)

            async def gave_up() -> bool:
                answer = await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))
                return answer.json()["deliveries"][0]["state"] == "FAILED"

            await kit.eventually(gave_up)
            await asyncio.sleep(0.3)  # no fourth attempt comes
    notification = verified(requests[-1], secret)
    assert (notification.event, notification.error, notification.error_stage) == ("job.failed", "too few matches", "sfm")
    assert notification.viewer_url is None
    assert len(receiver.received) == 3


async def test_cancelling_announces_it_and_a_job_without_callback_gets_nothing(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    with WebhookReceiver() as receiver:
        async with kit.running_status(sqlite_url, memory_bus, folder_store, **FAST) as status:
            job = await kit.insert_job(status.db, stage="train", status=JobStatus.RUNNING)
            secret = await add_callback(status.db, job, receiver.url)
            silent = await kit.insert_job(status.db, stage="train", status=JobStatus.RUNNING)
            for each in (job, silent):
                answer = await status.client.post(f"/recon/jobs/{each.id}/cancel", headers=bearer(each.token))
                assert answer.status_code == 202
            [request] = await receiver.wait_for(1)
            view = await status.client.get(f"/recon/jobs/{silent.id}/webhooks", headers=bearer(silent.token))
            deliveries = await count(status.db, WebhookDelivery)
            assert (await status.client.delete(f"/recon/jobs/{job.id}", headers=bearer(job.token))).status_code == 204
            left = [await count(status.db, model) for model in (JobWebhook, WebhookDelivery, WebhookAttempt)]
    assert verified(request, secret).event == "job.cancelled"
    assert view.json() == {"callback_url": None, "deliveries": []}
    assert deliveries == 1
    assert left == [0, 0, 0]  # a deleted job's webhook rows go with it


async def test_recovery_giving_up_on_a_job_announces_its_failure(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    """Every way a job ends notifies: here recovery at start (the in-memory bus lost its queues)
    fails a job that never got a work request."""
    with WebhookReceiver() as receiver:
        async with kit.running_status(sqlite_url, memory_bus, folder_store, start=False, **FAST) as status:
            job = await kit.insert_job(status.db, stage="validate", status=JobStatus.PENDING)
            secret = await add_callback(status.db, job, receiver.url)
            await status.service.start()
            [request] = await receiver.wait_for(1)
    notification = verified(request, secret)
    assert (notification.event, notification.error_stage) == ("job.failed", "validate")
    assert notification.error is not None and "interrupted" in notification.error


async def test_an_internal_address_is_refused_at_delivery(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    """Registration checked the name; at delivery it may resolve elsewhere (DNS rebinding): the
    address is checked again, and nothing is sent to an internal one."""
    settings = {**FAST, "webhook_allow_private_addresses": False, "webhook_max_attempts": 2}
    with WebhookReceiver() as receiver:
        async with kit.running_status(sqlite_url, memory_bus, folder_store, **settings) as status:
            job = await kit.insert_job(status.db, stage="train", status=JobStatus.RUNNING)
            await add_callback(status.db, job, receiver.url.replace("127.0.0.1", "localhost"))
            await project(status.db, status.store, training_done(job.id))

            async def gave_up() -> bool:
                answer = await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))
                return answer.json()["deliveries"][0]["state"] == "FAILED"

            await kit.eventually(gave_up)
            view = (await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))).json()
    errors = [a["error"] for a in view["deliveries"][0]["attempt_log"]]
    assert len(errors) == 2
    for error in errors:  # localhost may resolve to ::1 first
        assert error.startswith("refused by rule private_address: localhost resolves to ") and "loopback" in error
    assert receiver.received == []


async def test_a_redirect_is_not_followed(
    sqlite_url: str, memory_bus: Bus, folder_store: ObjectStore, kit: Any
) -> None:
    with WebhookReceiver(answers=[302, 204]) as receiver:
        async with kit.running_status(sqlite_url, memory_bus, folder_store, **FAST) as status:
            job = await kit.insert_job(status.db, stage="train", status=JobStatus.RUNNING)
            await add_callback(status.db, job, receiver.url)
            await project(status.db, status.store, training_done(job.id))
            await receiver.wait_for(2)

            async def delivered() -> bool:
                answer = await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))
                return answer.json()["deliveries"][0]["state"] == "DELIVERED"

            await kit.eventually(delivered)
            view = (await status.client.get(f"/recon/jobs/{job.id}/webhooks", headers=bearer(job.token))).json()
    first, second = view["deliveries"][0]["attempt_log"]
    assert first["status_code"] == 302 and "redirects are not followed" in first["error"]
    assert second["status_code"] == 204
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]


async def test_two_senders_on_postgres_post_each_delivery_once(
    pg_url: str, folder_store: ObjectStore, kit: Any
) -> None:
    """Two status replicas' senders at once, on deliveries written before either started (state is
    in the database, so it also survives a restart): each delivery reaches the receiver once."""
    settings = StatusSettings(database_url=pg_url, **{**FAST, "webhook_batch": 3})
    dbs = [Database(pg_url) for _ in range(2)]
    senders = [WebhookSender(settings, db) for db in dbs]
    try:
        with WebhookReceiver(delay=0.05) as receiver:
            jobs = [await kit.insert_job(dbs[0], stage="train", status=JobStatus.RUNNING) for _ in range(8)]
            for job in jobs:
                await add_callback(dbs[0], job, receiver.url)
                await project(dbs[0], folder_store, training_done(job.id))
            while sum(await asyncio.gather(*(s.run_once() for s in senders))):
                pass
            await asyncio.sleep(0.2)
            ids = [r.headers[DELIVERY_HEADER] for r in receiver.received]
        async with dbs[0].transaction() as session:
            states = (await session.scalars(select(WebhookDelivery.state))).all()
    finally:
        for sender, db in zip(senders, dbs, strict=True):
            await sender.stop()
            await db.dispose()
    assert len(ids) == len(set(ids)) == 8
    assert states == ["DELIVERED"] * 8


async def test_retry_delays_grow_with_jitter_up_to_the_cap(sqlite_url: str) -> None:
    settings = StatusSettings(database_url=sqlite_url, webhook_retry_base_seconds=10, webhook_retry_max_seconds=100)
    db = Database(sqlite_url)
    sender = WebhookSender(settings, db)
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (30, 100)]:
        delays = [sender.retry_delay(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1
    await db.dispose()


async def test_the_checked_address_is_the_one_connected_to() -> None:
    """The request goes to the address just checked (no second lookup by the HTTP client), yet
    names the host in Host and, over TLS, in SNI and the certificate check."""
    claimed = Claimed(str(uuid.uuid4()), "job.done", "{}", "https://hooks.example.com:8443/in?x=1", "whsec_s")
    async with httpx.AsyncClient() as client:
        tls = pinned_request(client, claimed, ipaddress.ip_address("2606:2800:220:1::1"), "hooks.example.com")
        plain = pinned_request(
            client, replace(claimed, url="http://hooks.example.com/in"), ipaddress.ip_address("93.184.216.34"), "x"
        )
    assert str(tls.url) == "https://[2606:2800:220:1::1]:8443/in?x=1"
    assert tls.headers["Host"] == "hooks.example.com:8443"
    assert tls.extensions["sni_hostname"] == "hooks.example.com"
    assert verify("whsec_s", tls.headers[SIGNATURE_HEADER], tls.content)
    assert str(plain.url) == "http://93.184.216.34/in" and plain.headers["Host"] == "hooks.example.com"
    assert "sni_hostname" not in plain.extensions
