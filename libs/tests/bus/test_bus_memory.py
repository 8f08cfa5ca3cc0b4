"""What only the in-memory bus has: its topic matcher, the inspectable parking queue, and the
checks a broker would make (redeclaration, use before start)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from photosplat_libs.bus import BusError, Delivery, QueueSpec, Reject, Unroutable
from photosplat_libs.bus.memory import DeadLetter, MemoryBus, topic_matches
from photosplat_libs.events import CancelRequested, Envelope, SfmDone, encode

TIMEOUT = 5.0


def sfm_done() -> SfmDone:
    return SfmDone(
        job_id=uuid.uuid4(), sparse_key="k", registered_images=1, total_images=1, points=1, reprojection_error=0.1
    )


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus(namespace="ignored")
    await bus.start()
    yield bus
    await bus.close()


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("sfm.done", "sfm.done", True),
        ("sfm.done", "sfm.done.x", False),
        ("*.done", "sfm.done", True),
        ("*.done", "training.x.done", False),
        ("*", "", True),
        ("#", "a.b.c", True),
        ("#", "", True),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("a.*", "a", False),
        ("a.#.c", "a.c", True),
        ("a.#.c", "a.b.b.c", True),
        ("#.c", "a.b", False),
        ("*.b.#", "x.b.c.d", True),
        ("cancel.requested", "cancel.requested.now", False),
    ],
)
def test_topic_matching(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


async def wait_until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), TIMEOUT)


async def test_dead_letters_say_where_and_why(bus: MemoryBus) -> None:
    async def reject(event: Envelope, delivery: Delivery) -> None:
        raise Reject("no")

    async def fail(event: Envelope, delivery: Delivery) -> None:
        raise RuntimeError("boom")

    await bus.consume(QueueSpec("rejecting", ("sfm.done",)), reject)
    await bus.consume(QueueSpec("failing", ("sfm.done",), delivery_limit=3), fail)
    await bus.publish(event := sfm_done())
    await wait_until(lambda: len(bus.dead_letters()) == 2)

    assert bus.dead_letters("rejecting") == [DeadLetter("rejecting", "sfm.done", encode(event), "rejected")]
    assert bus.dead_letters("failing") == [DeadLetter("failing", "sfm.done", encode(event), "delivery_limit")]
    assert bus.depth("failing") == 0


async def test_a_failing_dead_letter_queue_drops_instead_of_looping(bus: MemoryBus) -> None:
    calls: list[int] = []

    async def fail(event: Envelope, delivery: Delivery) -> None:
        calls.append(delivery.delivery_count)
        raise Reject("no")

    await bus.consume(QueueSpec("dead", ("#",), dead_letters=True, delivery_limit=2), fail)
    await bus.consume(QueueSpec("work", ("sfm.done",)), fail)
    await bus.publish(sfm_done())
    await wait_until(lambda: len(calls) == 2)
    await asyncio.sleep(0.05)
    assert calls == [1, 1]
    assert [d.queue for d in bus.dead_letters()] == ["work"]


async def test_each_delivery_decodes_a_fresh_event(bus: MemoryBus) -> None:
    received: asyncio.Queue[Envelope] = asyncio.Queue()

    async def keep(event: Envelope, delivery: Delivery) -> None:
        await received.put(event)

    await bus.consume(QueueSpec("a", ("#",)), keep)
    await bus.publish(event := sfm_done())
    got = await asyncio.wait_for(received.get(), TIMEOUT)
    assert got == event and got is not event


async def test_exclusive_queue_has_no_delivery_limit_and_dies_with_the_connection(bus: MemoryBus) -> None:
    counts: list[int] = []

    async def flaky(event: Envelope, delivery: Delivery) -> None:
        counts.append(delivery.delivery_count)
        if len(counts) < 7:
            raise RuntimeError("not yet")

    spec = QueueSpec("colmap.cancel.w1", ("cancel.requested",), exclusive=True)
    await bus.consume(spec, flaky)
    await bus.publish(CancelRequested(job_id=uuid.uuid4()))
    await wait_until(lambda: len(counts) == 7)
    assert counts == list(range(1, 8))
    assert bus.dead_letters() == []

    await bus.close()
    await bus.start()
    with pytest.raises(Unroutable):
        await bus.publish(CancelRequested(job_id=uuid.uuid4()))


async def test_redeclaring_with_other_arguments_fails_but_bindings_add_up(bus: MemoryBus) -> None:
    await bus.declare(QueueSpec("q", ("sfm.done",), delivery_limit=3))
    with pytest.raises(BusError):
        await bus.declare(QueueSpec("q", ("sfm.done",), delivery_limit=4))
    await bus.declare(QueueSpec("q", ("cancel.requested",), delivery_limit=3))
    await bus.publish(CancelRequested(job_id=uuid.uuid4()))
    await bus.publish(sfm_done())
    assert bus.depth("q") == 2


async def test_a_bus_that_is_not_started_refuses_work() -> None:
    bus = MemoryBus()
    with pytest.raises(BusError):
        await bus.publish(sfm_done())
    with pytest.raises(BusError):
        await bus.declare(QueueSpec("q", ("#",)))
