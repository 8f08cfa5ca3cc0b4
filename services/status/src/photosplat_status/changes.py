"""Wakes this process's event streams of a job as soon as the projection committed an event of it.

Only a shortcut: each stream also reads the database every ``events_poll_seconds``, because the
replica that projects an event is often not the one serving the stream (and the dashboard's
cancel, or another process, changes rows without telling anyone).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


class JobChanges:
    def __init__(self) -> None:
        self._watchers: dict[uuid.UUID, set[asyncio.Event]] = {}

    def changed(self, job_id: uuid.UUID) -> None:
        for woken in self._watchers.get(job_id, ()):
            woken.set()

    @contextmanager
    def watch(self, job_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set on every change of the job while the block runs; the watcher clears it."""
        woken = asyncio.Event()
        self._watchers.setdefault(job_id, set()).add(woken)
        try:
            yield woken
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(woken)
                if not watchers:
                    del self._watchers[job_id]
