"""Status API benchmark: ``GET /recon/jobs/{id}/status`` against real status processes on Postgres.
Prints a Markdown table per rate: target and achieved req/s, latency p50 / p95 / p99 / max, errors,
and the CPU time the status processes spent per request (steadier than latency on shared cores).

    python services/status/bench/bench_status.py [--rates 200,500] [--duration 10] [--replicas 1]
        [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/test] [--jobs 8] [--connections 32]

It creates a scratch database on the Postgres server of ``--pg`` (dropped at the end), seeds jobs as
a real pipeline leaves them (a 400-point training curve, SfM statistics, log lines, the sealed
viewer key), starts ``python -m photosplat_status`` with its default settings on 127.0.0.1 and fires
an open-loop load at it: request i is due at ``start + i / rate`` whether or not earlier ones have
answered, and its latency counts from that moment, so a server that falls behind shows it in the
tail instead of silently slowing the load down. Traffic goes to 127.0.0.1 only; every run is bounded
(at most 60 s per rate and 30 000 requests).

Two knobs scale it. ``PHOTOSPLAT_STATUS_STATUS_CACHE_SECONDS`` (in the environment of this script;
the status processes inherit it): answers may be that old, so a job polled by many clients costs one
database read per interval (2026-11-30, 2 cores: 0.55 instead of 1.4-1.6 ms of CPU per request).
And ``--replicas N``: N status processes (each one event loop, so one core
at most) on consecutive ports, the load spread over them round-robin as a load balancer would. In a
deployment that is the number of status replicas (or containers) behind the proxy; use about one per
core. Note that the load generator runs on the same machine and takes its share of the cores. The
processes run with the service's default settings, uvicorn's access log included (about a tenth of
a request's CPU; ``PHOTOSPLAT_STATUS_LOG_LEVEL=WARNING`` turns it off where a proxy logs access).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from photosplat_libs import security
from photosplat_libs.db import Database, migrate
from photosplat_libs.db.job_statistics import CurvePoint, HeldOutScores, JobStatistics, LatestProgress, SfmSummary
from photosplat_libs.db.models import Job, JobStatus, LogLine
from photosplat_libs.events import SfmTimings, Stage, TrainingTimings

MAX_SECONDS = 60.0
MAX_REQUESTS = 30_000
MAX_REPLICAS = 8
MAX_CONNECTIONS = 256
BASE_PORT = 18_470
LOG_LINES_PER_JOB = 500


@dataclass
class Seeded:
    job_id: uuid.UUID
    token: str


@dataclass
class Result:
    rate: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    # CPU seconds the status processes spent: a measure that other load on the cores disturbs less
    server_cpu: float = float("nan")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (Linux /proc; NaN elsewhere)."""
    try:
        total = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _realistic_job(job_id: uuid.UUID, token: str, now: datetime, done: bool) -> Job:
    pub_key = security.new_token()
    curve = tuple(CurvePoint(step=s * 10, loss=0.1 + random.random() / 10, psnr=20 + s / 40) for s in range(400))
    sfm = SfmSummary(
        registered_images=48,
        total_images=50,
        points=31_000,
        reprojection_error=0.9,
        mean_track_length=4.2,
        timings=SfmTimings(extraction=12.3, matching=30.1, mapping=45.0, undistortion=5.2),
        warnings=tuple(f"IMG_{i:04d}.jpg is blurry" for i in range(2)),
    )
    timings = TrainingTimings(
        download_seconds=2.0, train_seconds=41.0, train_stage_seconds=44.1, upload_seconds=1.0, total_seconds=47.1
    )
    return Job(
        id=job_id,
        owner_hash=security.hash_token(token),
        pub_key_hash=security.hash_token(pub_key),
        pub_key_sealed=security.seal_pub_key(pub_key, token, str(job_id)),
        status=JobStatus.DONE if done else JobStatus.RUNNING,
        stage="export" if done else "train",
        progress=1.0 if done else 0.4,
        created_at=now - timedelta(minutes=30),
        started_at=now - timedelta(minutes=29),
        finished_at=now if done else None,
        heartbeat_at=now,
        image_count=50,
        registered_image_count=48,
        gaussian_count=400_000 if done else None,
        file_sizes={"ply": 95_000_000, "splat": 12_800_000} if done else {},
        held_out=HeldOutScores(psnr=27.4, ssim=0.87),
        statistics=JobStatistics(
            latest=LatestProgress(stage=Stage.TRAIN, step=3990, psnr=29.9), curve=curve, sfm=sfm, timings=timings
        ),
        options={"preset": "standard"},
    )


async def seed(url: str, jobs: int) -> list[Seeded]:
    db = Database(url)
    try:
        await migrate(db)
        now = datetime.now(timezone.utc)
        seeded = [Seeded(uuid.uuid4(), security.new_token()) for _ in range(jobs)]
        async with db.transaction() as session:
            for i, job in enumerate(seeded):
                session.add(_realistic_job(job.job_id, job.token, now, done=i % 2 == 0))
            await session.flush()
            for job in seeded:
                for n in range(LOG_LINES_PER_JOB):
                    line = f"step {n * 20}: loss 0.1"
                    session.add(LogLine(job_id=job.job_id, stage="train", line=line, created_at=now))
        return seeded
    finally:
        await db.dispose()


def _request_bytes(job: Seeded) -> bytes:
    return (
        f"GET /recon/jobs/{job.job_id}/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {job.token}\r\nAccept: application/json\r\n\r\n"
    ).encode()


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 exchange, read to the end of the body. A hand-written client: httpx
    would spend more CPU per request than the server, on the same cores."""
    writer.write(request)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def fire(
    ports: list[int], jobs: list[Seeded], rate: float, duration: float, connections: int, pids: list[int]
) -> Result:
    count = min(int(rate * duration), MAX_REQUESTS)
    requests = [_request_bytes(job) for job in jobs]
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    result = Result(rate)

    async def connection(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await due.get()) is not None:
                i, due_at = item
                try:
                    ok = await _exchange(reader, writer, requests[i % len(requests)]) == 200
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                if ok:
                    result.latencies.append(time.perf_counter() - due_at)
                else:
                    result.errors += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(connection(ports[c % len(ports)])) for c in range(connections)]
    cpu_before = cpu_seconds(pids)
    start = time.perf_counter()
    for i in range(count):
        due_at = start + i / rate
        if (wait := due_at - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        due.put_nowait((i, due_at))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    result.elapsed = time.perf_counter() - start
    result.server_cpu = cpu_seconds(pids) - cpu_before
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def table(results: list[Result], replicas: int) -> str:
    rows = [
        "| replicas | target req/s | achieved req/s | p50 ms | p95 ms | p99 ms | max ms | errors | server CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ms = [v * 1000 for v in r.latencies]
        cells = [
            f"{replicas}",
            f"{r.rate:.0f}",
            f"{len(ms) / r.elapsed:.0f}",
            *(f"{_percentile(ms, q):.1f}" for q in (0.5, 0.95, 0.99)),
            f"{max(ms, default=float('nan')):.1f}",
            f"{r.errors}",
            f"{r.server_cpu * 1000 / max(1, len(ms) + r.errors):.2f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def start_replicas(url: str, replicas: int, tmp: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(replicas):
        env = {
            **os.environ,
            "PHOTOSPLAT_STATUS_DATABASE_URL": url,
            "PHOTOSPLAT_STATUS_STORE_URL": f"file:{tmp}/objects",
            "PHOTOSPLAT_STATUS_HOST": "127.0.0.1",
            "PHOTOSPLAT_STATUS_PORT": str(BASE_PORT + i),
        }
        with (tmp / f"status-{i}.log").open("wb") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "photosplat_status"], env=env, stdout=log, stderr=log))
    return procs


async def wait_ready(ports: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status = await _exchange(reader, writer, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                writer.close()
                if status == 200:
                    break
            except (OSError, asyncio.IncompleteReadError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the status process on port {port} did not start (see its log)")
            await asyncio.sleep(0.2)


async def _admin(server: str, sql: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    parsed = urlsplit(args.pg.replace("postgresql+asyncpg", "postgresql"))
    name = f"bench_status_{uuid.uuid4().hex[:10]}"
    url = args.pg.rsplit("/", 1)[0] + "/" + name
    await _admin(parsed.geturl(), f'CREATE DATABASE "{name}"')
    procs: list[subprocess.Popen[bytes]] = []
    try:
        jobs = await seed(url, args.jobs)
        ports = [BASE_PORT + i for i in range(args.replicas)]
        with tempfile.TemporaryDirectory() as tmp:
            procs = start_replicas(url, args.replicas, Path(tmp))
            await wait_ready(ports)
            pids = [proc.pid for proc in procs]
            await fire(ports, jobs, 50, 1, args.connections, pids)  # warm-up
            results = []
            for rate in args.rates:
                results.append(await fire(ports, jobs, rate, min(args.duration, MAX_SECONDS), args.connections, pids))
            where = f"{platform.node()}, {os.cpu_count()} cores"
            print(f"GET /recon/jobs/{{id}}/status on {where}, {min(args.duration, MAX_SECONDS):.0f} s per rate\n")
            print(table(results, args.replicas))
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        await _admin(parsed.geturl(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_pg = os.environ.get("PHOTOSPLAT_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pg", default=default_pg)
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=[200.0, 500.0])
    parser.add_argument("--duration", type=float, default=10.0, help=f"seconds per rate (at most {MAX_SECONDS:.0f})")
    parser.add_argument("--replicas", type=int, default=1, help="status processes, about one per core")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the load generator")
    args = parser.parse_args()
    if not (1 <= args.replicas <= MAX_REPLICAS and 1 <= args.connections <= MAX_CONNECTIONS and 1 <= args.jobs <= 100):
        parser.error(f"use 1-{MAX_REPLICAS} replicas, 1-{MAX_CONNECTIONS} connections and 1-100 jobs")
    if any(not 0 < rate <= 5000 for rate in args.rates) or args.duration <= 0:
        parser.error("rates are requests per second, at most 5000, and the duration is positive")
    if urlsplit(args.pg.replace("+asyncpg", "")).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--pg must name a Postgres server on this machine (the benchmark stays on 127.0.0.1)")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
