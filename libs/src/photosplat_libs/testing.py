"""Test support shared by the services' test suites (no test framework imported here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from photosplat_libs.bus import Delivery
from photosplat_libs.events import Envelope

E = TypeVar("E", bound=Envelope)


class EventRecorder:
    """Every event a bus consumer hands it, in order; tests wait for the one they expect."""

    def __init__(self, default_timeout: float = 15.0) -> None:
        self.events: list[Envelope] = []
        self.default_timeout = default_timeout
        self._changed = asyncio.Event()

    async def handler(self, event: Envelope, _delivery: Delivery) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[Envelope], bool], timeout: float | None = None) -> Envelope:
        async with asyncio.timeout(self.default_timeout if timeout is None else timeout):
            while True:
                found = next((e for e in self.events if predicate(e)), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()
