"""Trainer scaling on the CPU: the same batch of small training jobs with 1 and with 2 (or more)
trainer replicas, each a separate ``python -m photosplat_trainer`` process on the real RabbitMQ and
an S3 server. Prints a Markdown table per threads policy: replicas, torch threads per replica, jobs,
wall seconds, jobs/hour, the ratio to the policy's first row, mean seconds per job, the trainers'
CPU use and the rest of the machine's (other processes: RabbitMQ, the S3 server, this script, and
whatever else runs; shared machines need it to judge a row), and the load average before the run.

    python services/trainer/bench/bench_scaling.py [--replicas 1 2] [--jobs 8] [--max-steps 200]
        [--size 160x120] [--views 12] [--threads share 1] [--amqp amqp://guest:guest@127.0.0.1:5672/]
        [--s3 http://127.0.0.1:5599]

Each job is a synthetic scene with its true cameras stored as the job's SfM output (no SfM cost) and
an ``SfmDone`` naming it, as the colmap service would publish. Per row: a fresh namespace on the
broker, the replicas started and consuming, one warm-up job per replica (not timed: it pays the
lazy import of the training modules), then all ``--jobs`` published at once and timed until the last
``TrainingDone``. ``--threads share`` gives each replica ``cores // replicas`` torch threads
(OMP_NUM_THREADS), so no row oversubscribes the cores; a number fixes it for every row; a
(replicas, threads) pair that two policies share is measured once. Without
``--s3`` a moto server is started on a free port. Check ``uptime`` first: the machine should be quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from photosplat_libs import topology
from photosplat_libs.bus.rabbit import RabbitBus, delete_namespace
from photosplat_libs.store import ObjectStore, create_store
from photosplat_testkit.harness import EventRecorder, ServiceProcesses, free_port
from photosplat_testkit.trainer_fleet import (
    PROBE,
    BatchResult,
    TrainerFleet,
    run_batch,
    store_training_jobs,
    write_training_scene,
)

BATCH_TIMEOUT_SECONDS = 1800.0


@dataclass
class Row:
    replicas: int
    threads: int
    jobs: int
    seconds: float
    job_seconds: float  # mean TrainingDone.timings.total_seconds
    cpu_share: float  # trainers' CPU seconds / (wall seconds x cores)
    rest_share: float  # the machine's other busy CPU seconds, likewise
    load_before: float
    per_worker: dict[str, int]

    @property
    def jobs_per_hour(self) -> float:
        return self.jobs / self.seconds * 3600


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (Linux /proc; NaN elsewhere)."""
    total = 0.0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat; NaN elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal; guest time is in user


def threads_for(policy: str, replicas: int) -> int:
    return max(1, usable_cores() // replicas) if policy == "share" else int(policy)


async def measure(
    args: argparse.Namespace, replicas: int, threads: int, store_url: str, scene: Path, tmp: Path
) -> Row:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    bus = RabbitBus(args.amqp, namespace=namespace)
    await bus.start()
    await topology.declare_topology(bus)
    recorder = EventRecorder()
    await bus.consume(PROBE, recorder.handler)
    store = create_store(store_url)
    env = {
        "BUS_URL": args.amqp,
        "BUS_NAMESPACE": namespace,
        "STORE_URL": store_url,
        "LOG_LEVEL": "INFO",
        "WORK_DIR": str(tmp / "work"),
    }
    logs = tmp / f"logs-{replicas}x{threads}"
    logs.mkdir()
    procs = ServiceProcesses(env, logs)
    fleet = TrainerFleet(procs, max_steps=args.max_steps)
    try:
        warm_up = await store_training_jobs(store, scene, replicas)
        jobs = await store_training_jobs(store, scene, args.jobs)
        fleet.start(replicas, threads)
        await fleet.wait_consuming(bus, timeout=120)
        warm = await run_batch(bus, recorder, warm_up, fleet, BATCH_TIMEOUT_SECONDS)
        assert len(warm.workers()) == replicas, f"a replica got no warm-up job: {warm.workers()}"
        pids = [procs.procs[name].pid for name in fleet.names]
        load_before, cpu_before, busy_before = os.getloadavg()[0], cpu_seconds(pids), machine_busy_seconds()
        result = await run_batch(bus, recorder, jobs, fleet, BATCH_TIMEOUT_SECONDS)
        cpu, busy = cpu_seconds(pids) - cpu_before, machine_busy_seconds() - busy_before
    finally:
        await procs.stop()
        await bus.close()
        await delete_namespace(args.amqp, namespace)
    return _row(replicas, threads, result, (cpu, busy - cpu), load_before)


def _row(replicas: int, threads: int, result: BatchResult, cpu: tuple[float, float], load_before: float) -> Row:
    capacity = result.seconds * usable_cores()
    job_seconds = statistics.mean(d.timings.total_seconds for d in result.done if d.timings is not None)
    return Row(
        replicas=replicas,
        threads=threads,
        jobs=len(result.done),
        seconds=result.seconds,
        job_seconds=job_seconds,
        cpu_share=cpu[0] / capacity,
        rest_share=cpu[1] / capacity,
        load_before=load_before,
        per_worker=result.workers(),
    )


def table(rows: list[Row]) -> str:
    base = rows[0].jobs_per_hour
    lines = [
        "| replicas | torch threads each | jobs | wall s | jobs/hour | ratio | s per job (mean) | "
        "trainers' CPU use | rest of the machine | jobs per replica | load avg before |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = " / ".join(str(r.per_worker[name]) for name in sorted(r.per_worker))
        lines.append(
            f"| {r.replicas} | {r.threads} | {r.jobs} | {r.seconds:.1f} | {r.jobs_per_hour:.0f} | "
            f"{r.jobs_per_hour / base:.2f}× | {r.job_seconds:.1f} | {r.cpu_share:.0%} | {r.rest_share:.0%} | "
            f"{spread} | {r.load_before:.2f} |"
        )
    return "\n".join(lines)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start")


async def measure_all(args: argparse.Namespace, store_url: str, scene: Path, tmp: Path) -> dict[tuple[int, int], Row]:
    """A row per (replicas, threads) that any policy asks for."""
    measured: dict[tuple[int, int], Row] = {}
    for policy in args.threads:
        for replicas in args.replicas:
            threads = threads_for(policy, replicas)
            if (replicas, threads) not in measured:
                row = await measure(args, replicas, threads, store_url, scene, tmp)
                measured[replicas, threads] = row
                print(f"{replicas} x {threads} threads: {row.seconds:.1f} s", file=sys.stderr, flush=True)
    return measured


async def main(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    moto = None
    if args.s3 is None:
        moto, args.s3 = start_moto()
    host = args.s3.split("://", 1)[1]
    store_url = f"s3://test:testsecret@{host}/bench-{uuid.uuid4().hex[:8]}?secure=false&region=us-east-1"
    store: ObjectStore = create_store(store_url)
    await store.ensure_ready()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
            scene = write_training_scene(Path(tmp) / "scene", views=args.views, width=width, height=height)
            measured = await measure_all(args, store_url, scene, Path(tmp))
    finally:
        await store.delete_prefix("")
        remove = getattr(store, "remove_bucket", None)
        if remove is not None:
            await remove()
        if moto is not None:
            moto.terminate()
    print(f"{platform.node()}, {usable_cores()} usable cores, {args.jobs} jobs of {args.views} views "
          f"{args.size}, {args.max_steps} steps (preset preview on the CPU)")
    for policy in args.threads:
        print(f"\ntorch threads per replica: {policy}\n")
        print(table([measured[replicas, threads_for(policy, replicas)] for replicas in args.replicas]))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    p.add_argument("--jobs", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=200)
    p.add_argument("--size", default="160x120", help="WxH of the scene's images")
    p.add_argument("--views", type=int, default=12)
    p.add_argument("--threads", nargs="+", default=["share"], help="per replica: share (cores // replicas) or N")
    p.add_argument("--amqp", default=os.environ.get("PHOTOSPLAT_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--s3", default=os.environ.get("PHOTOSPLAT_TEST_S3"), help="S3 server URL (any credentials)")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
