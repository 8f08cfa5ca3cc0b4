"""How long the training stage has left, from measured step times and the known schedule.

A step costs about ``a + b x Gaussians``: densification makes later steps dearer than early ones, so
an average since the start says too little (a 2-core job showed 17 min with 26 left) and the first
steps, which pay for warm-up, say too much. The estimator keeps the recent steps' time per step and
per Gaussian, extrapolates the count's growth up to the end of densification (and the budget), and
sums the predicted cost of every remaining step, then adds what follows the last step; ``basis``
says what it assumed, for the job log.

The count grows in jumps, one per refinement every ``refine_every`` steps: its growth is measured
over whole refinement intervals (a window of a few seconds holds one jump or none, and the estimate
swung between -37 % and +57 % on a 2-core job). After the last step the stage still scores the
held-out views and writes the exports (docs/benchmarks.md, "ETA on a 2-core CPU job").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# After the loop: the held-out views are rendered for the trained set, the pruned set and the three
# lossy exports read back; a render (no backward pass, no optimiser) costs about this share of a step.
RENDERS_PER_HELD_OUT_VIEW = 5
RENDER_SHARE_OF_STEP = 0.3
# Writing the exports (SOG's k-means, SPZ, PLY, .splat) per Gaussian: 4.6 s for 319k on the GPU host.
EXPORT_SECONDS_PER_GAUSSIAN = 15e-6
# Refinement intervals the count's growth is measured over (more when the history holds them).
GROWTH_INTERVALS = 3


@dataclass(frozen=True)
class Sample:
    step: int
    seconds: float  # training seconds so far
    gaussians: int


class EtaEstimator:
    def __init__(
        self,
        steps: int,
        growth_stop: int,
        max_gaussians: int | None,
        window: int = 8,
        refine_every: int = 1,
        held_out_views: int | None = None,
    ) -> None:
        """``held_out_views``: what follows the loop is estimated for that many (None: the loop alone)."""
        self.steps, self.growth_stop, self.max_gaussians = steps, growth_stop, max_gaussians
        self.refine_every, self.held_out_views = max(1, refine_every), held_out_views
        self.samples: deque[Sample] = deque(maxlen=window)
        self.history: deque[Sample] = deque(maxlen=4096)
        self.basis = "no steps measured yet"

    def add(self, step: int, seconds: float, gaussians: int) -> None:
        """A report: ``step`` steps done after ``seconds`` of training, with ``gaussians`` now."""
        if self.samples and step <= self.samples[-1].step:
            self.samples.clear()  # a resumed run starts measuring again
            self.history.clear()
        sample = Sample(step, seconds, gaussians)
        self.samples.append(sample)
        self.history.append(sample)

    def seconds_left(self) -> float | None:
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        steps = last.step - first.step
        per_step = (last.seconds - first.seconds) / steps
        mean_count = max(1.0, (first.gaussians + last.gaussians) / 2)
        growth, since = self._growth() if last.step < self.growth_stop else (0.0, last.step)
        slope = self._seconds_per_gaussian(per_step, mean_count, min(since, first.step))
        growing_steps = max(0, min(self.growth_stop, self.steps) - last.step) if growth > 0 else 0
        if growth > 0 and self.max_gaussians:
            growing_steps = min(growing_steps, int(max(0, self.max_gaussians - last.gaussians) / growth))
        final = last.gaussians + growth * growing_steps

        def cost(count: float) -> float:
            return per_step + slope * (count - mean_count)

        # The count grows linearly while densifying, then stays: the cost of each part is exact.
        remaining = self.steps - last.step
        left = growing_steps * (cost(last.gaussians) + cost(final)) / 2 + (remaining - growing_steps) * cost(final)
        after = self._after_loop(cost(final), final)
        until = last.step + growing_steps
        grows = f", growing {growth:.0f}/step (steps {since}-{last.step}) to ~{final:,.0f} by step {until}"
        self.basis = (
            f"ETA from {per_step * 1000:.1f} ms/step over steps {first.step}-{last.step} "
            f"at ~{mean_count:,.0f} Gaussians"
            + (grows if growing_steps else "")
            + f"; {remaining} steps left"
            + (f", then ~{after:.0f} s of held-out scoring and exports" if self.held_out_views is not None else "")
        )
        return max(0.0, left) + after

    def _growth(self) -> tuple[float, int]:
        """Gaussians added per step over the last whole refinement intervals (up to GROWTH_INTERVALS),
        and the step it is measured from."""
        last = self.history[-1]
        earliest = self.history[0]
        for intervals in range(GROWTH_INTERVALS, 0, -1):
            target = last.step - intervals * self.refine_every
            if target < earliest.step:
                continue
            # The latest sample at or before the target: the span holds ``intervals`` refinements.
            start = max((s for s in self.history if s.step <= target), key=lambda s: s.step)
            return (last.gaussians - start.gaussians) / (last.step - start.step), start.step
        first = self.samples[0]  # not one interval yet: the window's own growth
        return (last.gaussians - first.gaussians) / max(1, last.step - first.step), first.step

    def _after_loop(self, step_seconds: float, gaussians: float) -> float:
        if self.held_out_views is None:
            return 0.0
        renders = self.held_out_views * RENDERS_PER_HELD_OUT_VIEW
        return renders * RENDER_SHARE_OF_STEP * step_seconds + EXPORT_SECONDS_PER_GAUSSIAN * gaussians

    def _seconds_per_gaussian(self, per_step: float, mean_count: float, since: int) -> float:
        """The cost of one more Gaussian per step, fitted over the intervals since step ``since`` (the
        growth's span, which holds several counts) when the count varied enough to tell; else every
        step's cost counts as proportional to the count."""
        recent = [s for s in self.history if s.step >= since]
        pairs = [
            ((a.gaussians + b.gaussians) / 2, (b.seconds - a.seconds) / (b.step - a.step))
            for a, b in zip(recent, recent[1:])
        ]
        counts = [c for c, _ in pairs]
        proportional = per_step / mean_count
        if len(pairs) < 3 or max(counts) - min(counts) < 0.1 * mean_count:
            return proportional
        mc = sum(counts) / len(counts)
        mt = sum(t for _, t in pairs) / len(pairs)
        fitted = sum((c - mc) * (t - mt) for c, t in pairs) / sum((c - mc) ** 2 for c in counts)
        return min(max(fitted, 0.0), proportional)
