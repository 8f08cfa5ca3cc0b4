"""Faults on the real RabbitMQ, Postgres and S3 server while jobs run across service processes.

Ingest, status, colmap and trainer run as separate processes (configured by their environment, as
in deploy/compose.yaml) and reach the broker through a proxy whose connections the test can cut.
Two small jobs with known cameras (no SfM cost) train on the CPU with frequent checkpoints while:

- the trainer is killed (SIGKILL) once it has stored a checkpoint and reported progress, and a new
  one started: the job resumes from that checkpoint without using up an attempt;
- the status process is killed and started again while the new trainer publishes;
- every broker connection is cut once while the new trainer is mid-job.

Then every job is DONE on its first attempt with no error recorded, the trainer produced one
result per job (one TrainingDone event id, projected once), status applied every event any service
published (a probe queue beside status's, not behind the proxy, saw them all), and each job's
exports are stored and its checkpoint is gone.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from photosplat_libs import keys, topology
from photosplat_libs.bus import QueueSpec
from photosplat_libs.bus.rabbit import RabbitBus
from photosplat_libs.db import Database
from photosplat_libs.db.models import ErrorLog, Job, JobStatus, LogLine, ProcessedEvent
from photosplat_libs.events import TrainingDone
from photosplat_libs.store import create_store
from photosplat_testkit.harness import CuttableProxy, EventRecorder, ServiceProcesses, free_port

pytestmark = pytest.mark.slow

JOBS = 2
# The standard preset scaled to this many CPU steps checkpoints every 2 steps.
MAX_STEPS = 12
# From the first upload to the last job's end (the whole test, with start and stop, takes ~15 s more).
# A bound against hanging, not a speed goal: 5-30 s alone on 2 cores, up to 2-3x that beside the other test
# worker on a slow day.
DEADLINE_SECONDS = 240
CHECKPOINT_SAVED = r"job ([0-9a-f-]{36}): checkpoint of step (\d+) saved"
PROBE = QueueSpec("chaos-probe", ("#",), delivery_limit=100, prefetch=100)



class Chaos:
    def __init__(self, procs: ServiceProcesses, proxy: CuttableProxy, db: Database, published: EventRecorder) -> None:
        self.procs, self.proxy, self.db, self.published = procs, proxy, db, published
        self.ports = {"ingest": free_port(), "status": free_port()}
        self.admin = secrets.token_urlsafe(32)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start_status(self) -> None:
        extra = {"PHOTOSPLAT_STATUS_ADMIN_TOKEN": self.admin, "PHOTOSPLAT_STATUS_PORT": str(self.ports["status"])}
        self.procs.start("status", extra)

    def start_trainer(self) -> None:
        # Known cameras, no 3D points: 10k random Gaussians on images of <= 160 px, MAX_STEPS steps.
        # One torch thread: four services share two cores, and an OpenMP thread that has to wait
        # for a core made each step ~3x slower.
        env = {"PHOTOSPLAT_TRAINER_DEVICE": "cpu", "PHOTOSPLAT_TRAINER_MAX_STEPS": str(MAX_STEPS)}
        self.procs.start("trainer", {**env, "OMP_NUM_THREADS": "1"})


@pytest.fixture
async def chaos(
    pg_url: str, amqp_url: str, bus_namespace: str, s3_url: str, s3_server: str, tmp_path: Path
) -> AsyncIterator[Chaos]:
    broker = urlsplit(amqp_url)
    proxy = CuttableProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    await proxy.start()
    probe = RabbitBus(amqp_url, namespace=bus_namespace)
    await probe.start()
    await topology.declare_topology(probe)
    published = EventRecorder()
    await probe.consume(PROBE, published.handler)
    (tmp_path / "logs").mkdir()
    env = {
        "BUS_URL": proxy.url_for(amqp_url),
        "BUS_NAMESPACE": bus_namespace,
        "DATABASE_URL": pg_url,
        "STORE_URL": s3_url,
        "STORE_PUBLIC_URL": s3_server,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        "WORK_DIR": str(tmp_path / "work"),
    }
    procs = ServiceProcesses(env, tmp_path / "logs")
    c = Chaos(procs, proxy, Database(pg_url), published)
    try:
        # All at once: the database is migrated already.
        c.start_status()
        procs.start("ingest", {"PHOTOSPLAT_INGEST_PORT": str(c.ports["ingest"])})
        procs.start("colmap")
        c.start_trainer()
        await procs.wait_http("ingest", c.url("ingest"))
        await procs.wait_http("status", c.url("status"))
        yield c
    finally:
        await procs.stop()
        await proxy.stop()
        await probe.close()
        await c.db.dispose()


def photos_with_cameras() -> list[tuple[str, tuple[str, bytes, str]]]:
    from photosplat_testkit.synthetic import known_poses_upload, render_scene

    return known_poses_upload(render_scene(n_views=8, width=160, height=120, seed=5, n_points=2000))


async def wait_for_progress(c: Chaos, job_id: uuid.UUID, deadline: float) -> None:
    while time.monotonic() < deadline:
        async with c.db.transaction() as session:
            job = await session.get(Job, job_id)
        if job is not None and job.stage == "train" and job.progress > 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no training progress of job {job_id} was reported:\n{c.procs.tail()}")


async def wait_until_ended(c: Chaos, job_ids: list[uuid.UUID], deadline: float) -> dict[uuid.UUID, Job]:
    while time.monotonic() < deadline:
        async with c.db.transaction() as session:
            jobs = {job.id: job for job in (await session.scalars(select(Job).where(Job.id.in_(job_ids)))).all()}
        if len(jobs) == len(job_ids) and all(j.status in (JobStatus.DONE, JobStatus.FAILED) for j in jobs.values()):
            return jobs
        for name in c.procs.procs:
            c.procs.assert_alive(name)
        await asyncio.sleep(1.0)
    raise AssertionError(f"the jobs did not end in time:\n{c.procs.tail()}")


async def wait_until_projected(c: Chaos, job_ids: list[uuid.UUID], deadline: float) -> set[uuid.UUID]:
    """The ids of the events some service published that status has not applied (none, in time)."""
    while True:
        published = {e.event_id for e in c.published.events if e.job_id in job_ids}
        async with c.db.transaction() as session:
            applied = set(
                (await session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.job_id.in_(job_ids)))).all()
            )
        if published <= applied or time.monotonic() > deadline:
            return published - applied
        await asyncio.sleep(0.5)


async def test_jobs_survive_a_killed_trainer_a_restarted_status_and_a_cut_broker(chaos: Chaos, s3_url: str) -> None:
    c = chaos
    deadline = time.monotonic() + DEADLINE_SECONDS
    files = photos_with_cameras()
    job_ids = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(JOBS):
            r = await http.post(f"{c.url('ingest')}/recon/jobs", files=files, data={"preset": "standard"})
            assert r.status_code == 201, r.text
            job_ids.append(uuid.UUID(r.json()["job_id"]))

    # 1. The trainer dies once a checkpoint is stored and its progress reported (which the worker
    # records before it reports it); a new one takes over.
    saved = await c.procs.wait_log("trainer", CHECKPOINT_SAVED, timeout=deadline - time.monotonic())
    killed_job, checkpoint_step = uuid.UUID(saved.group(1)), int(saved.group(2))
    await wait_for_progress(c, killed_job, deadline)
    c.procs.kill("trainer")
    c.start_trainer()

    # 2. Status dies as the new trainer starts publishing, and comes back.
    await c.procs.wait_log("trainer", "service trainer started", timeout=deadline - time.monotonic())
    c.procs.kill("status")
    c.start_status()
    await c.procs.wait_http("status", c.url("status"))

    # 3. Every service loses its broker connection while the new trainer is mid-job.
    await c.procs.wait_log("trainer", CHECKPOINT_SAVED, timeout=deadline - time.monotonic())
    c.proxy.cut()
    cut_trainer_log = c.procs.log("trainer")

    jobs = await wait_until_ended(c, job_ids, deadline)
    unapplied = await wait_until_projected(c, job_ids, deadline)
    took = DEADLINE_SECONDS - (deadline - time.monotonic())
    print(f"chaos: the jobs ended and were projected {took:.0f} s after the first upload")

    for job_id, job in jobs.items():
        assert job.status == JobStatus.DONE, (job_id, job.error_message, c.procs.tail())
        assert job.attempt == 1, (job_id, job.attempt)
    assert unapplied == set(), [e for e in c.published.events if e.event_id in unapplied]
    async with c.db.transaction() as session:
        errors = (await session.scalars(select(ErrorLog).where(ErrorLog.job_id.in_(job_ids)))).all()
        projected_done = (
            await session.scalars(select(ProcessedEvent.job_id).where(ProcessedEvent.type == TrainingDone.__name__))
        ).all()
        killed_job_log = (await session.scalars(select(LogLine.line).where(LogLine.job_id == killed_job))).all()
    assert [(e.job_id, e.error_type, e.message) for e in errors] == []
    # One result per job: a redelivery republishes the stored TrainingDone (same event id) and
    # status applies it once.
    results = {e.event_id: e.job_id for e in c.published.of(TrainingDone)}
    assert sorted(results.values()) == sorted(job_ids) == sorted(projected_done)
    # The kill cost no attempt (the job had got further) and the job went on from its checkpoint.
    assert any("without using up an attempt" in line for line in killed_job_log), killed_job_log
    resumed = [int(line.rsplit(" ", 1)[1]) for line in killed_job_log if line.startswith("resumed from the checkpoint")]
    assert resumed and min(resumed) >= checkpoint_step > 0, (checkpoint_step, killed_job_log)
    # The cut took a delivery from under the running job: the broker handed it out again.
    assert "will be redelivered" in cut_trainer_log.read_text(), c.procs.tail()

    store = create_store(s3_url)
    for job_id, job in jobs.items():
        stored = {o.key for o in await store.list(f"jobs/{job_id}/")}
        outputs = {k for k in stored if k.startswith(keys.output(job_id, ""))}
        assert set(job.outputs.values()) <= outputs, (job.outputs, outputs)
        assert keys.train_checkpoint(job_id) not in stored
