"""Periodic: passes repeat on their interval, a failed pass does not end the loop, a pass with more
due runs the next at once, and stop() ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from photosplat_libs.periodic import Periodic


async def test_passes_repeat_and_a_failed_one_is_logged_and_survived(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    async def work() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 2:
            raise RuntimeError("store down")

    loop = Periodic("probe", work, interval_seconds=0.05)
    with caplog.at_level(logging.ERROR):
        loop.start()
        await asyncio.sleep(0.28)
        await loop.stop()
    assert 4 <= len(calls) <= 7
    assert all(b - a >= 0.045 for a, b in zip(calls, calls[1:]))
    assert "probe: a pass failed" in caplog.text and "store down" in caplog.text
    count = len(calls)
    await asyncio.sleep(0.12)
    assert len(calls) == count, "stop() ended the loop"


async def test_a_pass_with_more_due_is_followed_at_once() -> None:
    backlog = [3]
    times: list[float] = []

    async def work() -> bool:
        times.append(asyncio.get_running_loop().time())
        backlog[0] -= 1
        return backlog[0] > 0

    loop = Periodic("drain", work, interval_seconds=10)
    loop.start()
    loop.start()  # a second start is a no-op
    await asyncio.sleep(0.05)
    await loop.stop()
    assert len(times) == 3 and times[-1] - times[0] < 0.04
