"""How long training has left, from measured step times and the known schedule.

A step costs about ``a + b x Gaussians``: densification makes later steps dearer than early ones, so
an average since the start says too little (a 2-core job showed 17 min with 26 left) and the first
steps, which pay for warm-up, say too much. The estimator keeps the recent steps' time per step and
per Gaussian, extrapolates the count's recent growth up to the end of densification (and the budget),
and sums the predicted cost of every remaining step; ``basis`` says what it assumed, for the job log.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    step: int
    seconds: float  # training seconds so far
    gaussians: int


class EtaEstimator:
    def __init__(self, steps: int, growth_stop: int, max_gaussians: int | None, window: int = 8) -> None:
        self.steps, self.growth_stop, self.max_gaussians = steps, growth_stop, max_gaussians
        self.samples: deque[Sample] = deque(maxlen=window)
        self.basis = "no steps measured yet"

    def add(self, step: int, seconds: float, gaussians: int) -> None:
        """A report: ``step`` steps done after ``seconds`` of training, with ``gaussians`` now."""
        if self.samples and step <= self.samples[-1].step:
            self.samples.clear()  # a resumed run starts measuring again
        self.samples.append(Sample(step, seconds, gaussians))

    def seconds_left(self) -> float | None:
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        steps = last.step - first.step
        per_step = (last.seconds - first.seconds) / steps
        mean_count = max(1.0, (first.gaussians + last.gaussians) / 2)
        slope = self._seconds_per_gaussian(per_step, mean_count)
        growth = (last.gaussians - first.gaussians) / steps if last.step < self.growth_stop else 0.0
        growing_steps = max(0, min(self.growth_stop, self.steps) - last.step) if growth > 0 else 0
        if growth > 0 and self.max_gaussians:
            growing_steps = min(growing_steps, int(max(0, self.max_gaussians - last.gaussians) / growth))
        final = last.gaussians + growth * growing_steps

        def cost(count: float) -> float:
            return per_step + slope * (count - mean_count)

        # The count grows linearly while densifying, then stays: the cost of each part is exact.
        remaining = self.steps - last.step
        left = growing_steps * (cost(last.gaussians) + cost(final)) / 2 + (remaining - growing_steps) * cost(final)
        self.basis = (
            f"ETA from {per_step * 1000:.1f} ms/step over steps {first.step}-{last.step} at ~{mean_count:,.0f} Gaussians"
            + (f", growing {growth:.0f}/step to ~{final:,.0f} by step {last.step + growing_steps}" if growing_steps else "")
            + f"; {remaining} steps left"
        )
        return max(0.0, left)

    def _seconds_per_gaussian(self, per_step: float, mean_count: float) -> float:
        """The cost of one more Gaussian per step, fitted over the window's intervals when the count
        varied enough to tell; else every step's cost counts as proportional to the count."""
        pairs = [
            ((a.gaussians + b.gaussians) / 2, (b.seconds - a.seconds) / (b.step - a.step))
            for a, b in zip(self.samples, list(self.samples)[1:])
        ]
        counts = [c for c, _ in pairs]
        proportional = per_step / mean_count
        if len(pairs) < 3 or max(counts) - min(counts) < 0.1 * mean_count:
            return proportional
        mc = sum(counts) / len(counts)
        mt = sum(t for _, t in pairs) / len(pairs)
        fitted = sum((c - mc) * (t - mt) for c, t in pairs) / sum((c - mc) ** 2 for c in counts)
        return min(max(fitted, 0.0), proportional)
