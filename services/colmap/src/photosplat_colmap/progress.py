"""Progress of the SfM stage as a whole: every step reports its own 0..1, weighted by its share."""

from __future__ import annotations

import time

from photosplat_colmap.types import Reporter

# Progress shares of the steps (extraction and matching dominate on CPU).
_SHARES = {"capture": 0.05, "extraction": 0.30, "matching": 0.30, "mapping": 0.30, "undistortion": 0.05}


class SfmProgress:
    """Maps each step's own 0..1 onto the whole stage and estimates the time left."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.start = time.monotonic()
        self.done = 0.0

    def step(self, name: str, fraction: float, **metrics: float) -> None:
        self.reporter.check_cancelled()
        overall = self.done + _SHARES[name] * min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - self.start
        eta = elapsed * (1 - overall) / overall if overall > 0.05 else None
        self.reporter.progress(overall, eta, **metrics)

    def finish(self, name: str) -> None:
        self.done += _SHARES[name]


def chunk_size(count: int, min_per_call: int) -> int:
    """Up to ten equal calls of at least ``min_per_call`` items (one call for small sets)."""
    calls = min(10, max(1, count // max(min_per_call, 1)))
    return max(1, -(-count // calls))
