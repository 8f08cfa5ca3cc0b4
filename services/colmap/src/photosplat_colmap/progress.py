"""Progress of the SfM stage as a whole: every step reports its own 0..1, weighted by its share."""

from __future__ import annotations

import time
from collections.abc import Callable

from photosplat_colmap.eta import SfmEta
from photosplat_colmap.types import Reporter

# Progress shares of the steps, for the bar only (extraction and matching dominate on CPU); the time
# left is estimated from measured rates and known work (eta.py).
_SHARES = {"capture": 0.05, "extraction": 0.30, "matching": 0.30, "mapping": 0.30, "undistortion": 0.05}


class SfmProgress:
    """Maps each step's own 0..1 onto the whole stage and estimates the time left."""

    def __init__(self, reporter: Reporter, clock: Callable[[], float] = time.monotonic) -> None:
        self.reporter, self.clock = reporter, clock
        self.start = clock()
        self.done = 0.0
        self.eta = SfmEta(began=self.start, started=self.start, reported=self.start)
        self._basis_logged: set[str] = set()

    def step(self, name: str, fraction: float, **metrics: float) -> None:
        self.reporter.check_cancelled()
        fraction = min(max(fraction, 0.0), 1.0)
        overall = self.done + _SHARES[name] * fraction
        now = self.clock()
        self.eta.report(name, fraction, now, metrics.get("images"), metrics.get("pairs"))
        eta = self.eta.seconds_left(now)
        if eta and name not in self._basis_logged and fraction > 0:
            self._basis_logged.add(name)  # once a step: what the estimate rests on, for the job log
            self.reporter.log(self.eta.basis)
        self.reporter.progress(overall, eta, **metrics)

    def finish(self, name: str) -> None:
        self.done += _SHARES[name]
        self.eta.finish(name, self.clock())


def chunk_size(count: int, min_per_call: int) -> int:
    """Up to ten equal calls of at least ``min_per_call`` items (one call for small sets)."""
    calls = min(10, max(1, count // max(min_per_call, 1)))
    return max(1, -(-count // calls))
