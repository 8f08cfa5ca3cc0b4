"""Queue depth and consumer count, as one process sees them on its bus, refreshed in the background.

Each worker watches its own work queue; status watches every durable queue and the dead-letter
parking queue, so that a queue whose consumers are all gone (no trainer left) is still reported by
someone."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from photosplat_libs.bus import Bus
from photosplat_libs.observability.metrics import QUEUE_CONSUMERS, QUEUE_MESSAGES
from photosplat_libs.periodic import Periodic

log = logging.getLogger(__name__)

# About one scrape interval: fresher values would not be seen, staler ones would lag alerts.
REFRESH_SECONDS = 15.0


class QueueGauges:
    def __init__(self, bus: Bus, queues: Sequence[str], interval_seconds: float = REFRESH_SECONDS) -> None:
        self._bus, self._queues = bus, tuple(queues)
        self._periodic = Periodic("photosplat-queue-gauges", self.refresh, interval_seconds)

    async def refresh(self) -> None:
        for name in self._queues:
            try:
                stats = await self._bus.queue_stats(name)
            except Exception:
                log.warning("could not read the depth of queue %s", name, exc_info=True)
                continue
            if stats is not None:
                QUEUE_MESSAGES.labels(name).set(stats.messages)
                QUEUE_CONSUMERS.labels(name).set(stats.consumers)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
