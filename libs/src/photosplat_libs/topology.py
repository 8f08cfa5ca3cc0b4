"""The queues of the system (docs/architecture.md §3), declared by every service at start so that a publish is
routable even before its consumer first runs (publishing is mandatory)."""

from __future__ import annotations

from photosplat_libs.bus.port import Bus, QueueSpec
from photosplat_libs.events import ImagesValidated, SfmDone

# GPU/CPU-heavy work: one message at a time per worker, few deliveries (a crash-looping job
# should fail fast, the status service then records why).
COLMAP_WORK = QueueSpec("colmap.work", (ImagesValidated.routing_key,), delivery_limit=3, prefetch=1)
TRAINER_WORK = QueueSpec("trainer.work", (SfmDone.routing_key,), delivery_limit=3, prefetch=1)
STATUS_EVENTS = QueueSpec("status.events", ("#",), delivery_limit=10, prefetch=50)
STATUS_DEAD_LETTERS = QueueSpec("status.dead-letters", ("#",), delivery_limit=10, prefetch=10, dead_letters=True)

DURABLE_QUEUES: tuple[QueueSpec, ...] = (COLMAP_WORK, TRAINER_WORK, STATUS_EVENTS, STATUS_DEAD_LETTERS)


def cancel_queue(service: str, worker: str) -> QueueSpec:
    """A worker's private queue: it hears every cancel and delete while it runs."""
    return QueueSpec(f"{service}.cancel.{worker}", ("cancel.requested", "job.deleted"), exclusive=True)


async def declare_topology(bus: Bus) -> None:
    for spec in DURABLE_QUEUES:
        await bus.declare(spec)
