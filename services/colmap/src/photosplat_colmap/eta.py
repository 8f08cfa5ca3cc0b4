"""How long SfM has left: the running step at its own measured rate, the steps to come from their
known work (photos, pairs) and what this run has measured of the steps before them.

Fixed shares of the stage per step (the former estimate: elapsed x (1 - done) / done) cannot hold:
matching grows with the square of the photos and faster than linearly with their features, so one
set spends half its time matching and another a fifth, and the estimate was 4x too long when
matching ended on a 2-core machine (docs/benchmarks.md, "ETA on a 2-core CPU job").

Measured on that machine (buddha: 67 photos of 1368 px, ~1,100 features each; lund: 29 of 1024 px,
upsampled, ~6,200 features; with and without other load):
- matching's time per pair grows as the square of extraction's time per photo (lund's 3.3x slower
  extraction per photo came with 10.8x slower matching per pair, re-measured after pairs were
  verified with one camera per photo, which halved matching); up to 100 photos it is one COLMAP
  call that reports nothing, so this prediction is all there is until it ends;
- mapping takes ~0.2 of extraction's time per photo (0.16-0.30), plus any fallback attempt;
- undistortion decodes, resamples and writes every photo as the capture check does, at ~7x its time
  (5-11x): extraction's pixels are 4x when upsampled, undistortion's are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STEPS = ("capture", "extraction", "matching", "mapping", "undistortion")
MATCHING_SECONDS_PER_PAIR = 0.158  # x (extraction seconds per photo) ** MATCHING_EXPONENT
MATCHING_EXPONENT = 2.0
MAPPING_PER_EXTRACTION = 0.2
UNDISTORTION_PER_CAPTURE = 7.0
# Pairs before matching says: every pair (exhaustive: the matcher of sets up to hundreds), else neighbours.
EXHAUSTIVE_UP_TO = 400
SEQUENTIAL_PAIRS_PER_PHOTO = 25


@dataclass
class SfmEta:
    """Fed every step's reports (``report``) and ends (``finish``) with the time they happened."""

    images: int | None = None
    pairs: int | None = None
    measured: dict[str, tuple[float, float]] = field(default_factory=dict)  # step: (seconds, fraction done)
    finished: set[str] = field(default_factory=set)
    step: str = "capture"
    began: float = 0.0  # when the running step began
    started: float = 0.0  # when its latest attempt began (a mapping fallback starts again from 0)
    fraction: float = 0.0  # of the running step's latest attempt, at its latest report
    reported: float = 0.0  # when that report came
    basis: str = "no step measured yet"

    def report(
        self, name: str, fraction: float, now: float, images: float | None = None, pairs: float | None = None
    ) -> None:
        if name != self.step:
            self._enter(name, now)
        elif fraction < self.fraction:
            # Another attempt (a mapping fallback, extraction again, even after the step ended): the
            # step runs on from where it was, its rate is measured afresh.
            self.started = now
            self.finished.discard(name)
        self.fraction, self.reported = fraction, now
        if fraction > 0:  # of the latest attempt: a second extraction pass predicts matching, not both
            self.measured[name] = (now - self.started, fraction)
        if images:
            self.images = int(images)
        if pairs and name == "matching" and fraction < 1.0:  # the last report counts verified pairs
            self.pairs = int(pairs)

    def finish(self, name: str, now: float) -> None:
        if name != self.step:
            self._enter(name, now)  # a step that reported nothing (the global mapper)
        self.measured[name] = (now - self.started, 1.0)
        self.finished.add(name)
        self.fraction, self.reported = 1.0, now

    def _enter(self, name: str, now: float) -> None:
        # A step begins where the one before ended.
        self.began = self.started = self.reported if self.step in self.finished else now
        self.step, self.fraction = name, 0.0

    def seconds_left(self, now: float) -> float | None:
        """None until part of extraction is measured: before that this set's cost is unknown."""
        if not self.images or "extraction" not in self.measured:
            return None
        running = None if self.step in self.finished else self.step
        coming = {s: self._predicted(s) for s in STEPS[STEPS.index(self.step) + 1 :]}
        current = 0.0 if running is None else max(0.0, self._end(running) - now)
        self.basis = (
            f"ETA from measured rates (extraction {self._per_photo('extraction'):.2f} s/photo): "
            + (f"{running} {self.fraction:.0%} done, ~{current:.0f} s left; " if running else "")
            + ", ".join(f"{s} ~{v:.0f} s" for s, v in coming.items())
            + f" for {self.images} photos and {self._pairs()} pairs"
        )
        return current + sum(coming.values())

    def _end(self, running: str) -> float:
        """When the running step should end: its own measured rate, blended with the prediction by
        how much of the step it has measured (a step's first part says little about its rest)."""
        predicted = self.began + self._predicted(running)
        if self.fraction <= 0:
            return predicted
        measured = self.started + (self.reported - self.started) / self.fraction
        return self.fraction * measured + (1 - self.fraction) * predicted

    def _predicted(self, step: str) -> float:
        n, extraction = self.images or 0, self._per_photo("extraction")
        if step == "extraction":
            return extraction * n
        if step == "matching":
            return self._pairs() * MATCHING_SECONDS_PER_PAIR * extraction**MATCHING_EXPONENT
        if step == "mapping":
            return MAPPING_PER_EXTRACTION * extraction * n
        if step == "undistortion":
            return UNDISTORTION_PER_CAPTURE * self._per_photo("capture") * n
        return 0.0

    def _per_photo(self, step: str) -> float:
        seconds, fraction = self.measured.get(step, (0.0, 0.0))
        return seconds / (fraction * self.images) if fraction > 0 and self.images else 0.0

    def _pairs(self) -> int:
        n = self.images or 0
        if self.pairs is not None:
            return self.pairs
        return n * (n - 1) // 2 if n <= EXHAUSTIVE_UP_TO else n * SEQUENTIAL_PAIRS_PER_PHOTO
