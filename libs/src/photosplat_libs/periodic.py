"""A pass of background work repeated in its own task until stopped (metrics refreshes, delivery
loops): one place for starting, stopping and surviving a failed pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``work`` every ``interval_seconds``. A pass that raises is logged and the next one runs
    on time; a pass that returns True (more is due) is followed by the next at once."""

    def __init__(self, name: str, work: Callable[[], Awaitable[bool | None]], interval_seconds: float) -> None:
        self.name, self._work, self._interval = name, work, interval_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                if await self._work():
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: a pass failed, will retry", self.name)
            await asyncio.sleep(self._interval)
