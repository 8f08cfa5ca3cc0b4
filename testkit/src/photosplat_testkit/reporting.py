"""A reporter that keeps what the SfM pipeline tells it."""

from __future__ import annotations


class RecordingReporter:
    """A :class:`Reporter` that keeps what it is told (tests, benchmarks); nothing cancels it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.fractions: list[float] = []
        self.etas: list[float | None] = []
        self.metrics: list[dict[str, float]] = []

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None:
        self.fractions.append(fraction)
        self.etas.append(eta_seconds)
        self.metrics.append(metrics)

    def log(self, *lines: str) -> None:
        self.lines.extend(lines)

    def check_cancelled(self) -> None:
        pass
