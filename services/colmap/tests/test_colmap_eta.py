"""SfM's ETA on timings measured on the 2-core development machine (docs/benchmarks.md), fed through
:class:`SfmProgress` with a clock the test moves: within ±30 % of the time really left after the
first tenth of the stage on both sets, whose steps run at very different relative speeds."""

from __future__ import annotations

import pytest
from photosplat_colmap.progress import SfmProgress
from photosplat_testkit.reporting import RecordingReporter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_stage(plan: dict[str, float], images: int, extraction_chunks: int, matching_chunks: int, slower: float = 1.0,
              mapping_retry: bool = False) -> tuple[list[float], list[float | None], float]:  # fmt: skip
    """The pipeline's calls with each step taking ``plan[step] x slower`` seconds, evenly over its
    chunks (the pipeline's order and metrics); returns the report times, their ETAs and the stage's end."""
    clock, reporter = Clock(), RecordingReporter()
    progress = SfmProgress(reporter, clock=clock)
    times: list[float] = []

    def report(step: str, fraction: float, **metrics: float) -> None:
        times.append(clock.now)
        progress.step(step, fraction, **metrics)

    def chunks(step: str, count: int, **metrics: float) -> None:
        for i in range(count):
            report(step, i / count, **metrics)
            clock.now += plan[step] * slower / count

    clock.now += plan["capture"] * slower
    progress.finish("capture")
    chunks("extraction", extraction_chunks, images=images)
    report("extraction", 1.0, images=images)
    progress.finish("extraction")
    chunks("matching", matching_chunks, pairs=images * (images - 1) // 2)
    report("matching", 1.0, pairs=images * 3)  # the verified pairs, fewer
    progress.finish("matching")
    # lund's default attempt finds no initial pair (nothing registered) before the relaxed one places all.
    failed = 0.2 if mapping_retry else 0.0
    clock.now += failed * plan["mapping"] * slower
    for registered in range(2, images + 1):
        clock.now += (1 - failed) * plan["mapping"] * slower / (images - 1)
        report("mapping", registered / images, registered=registered, images=images)
    progress.finish("mapping")
    clock.now += plan["undistortion"] * slower
    report("undistortion", 1.0)
    return times, reporter.etas, clock.now


# Seconds per step of buddha (67 photos, 1368 px, ~1,100 features each) and lund (29 photos, 1024 px,
# upsampled, ~6,200 features: 3.3x extraction's time per photo, 10.8x matching's per pair) measured on
# the 2-core machine (2026-11-30, pairs verified with one camera per photo); matching is one call (no
# progress) up to 100 photos.
BUDDHA = {"capture": 0.41, "extraction": 10.62, "matching": 8.89, "mapping": 2.34, "undistortion": 2.53}
LUND = {"capture": 0.2, "extraction": 15.26, "matching": 17.6, "mapping": 3.57, "undistortion": 0.94}


@pytest.mark.parametrize(
    ("plan", "images", "extraction_chunks", "matching_chunks", "retry"),
    [(BUDDHA, 67, 4, 1, False), (LUND, 29, 1, 1, True)],
    ids=["buddha", "lund"],
)
def test_within_30_percent_after_the_first_tenth(
    plan: dict[str, float], images: int, extraction_chunks: int, matching_chunks: int, retry: bool
) -> None:
    times, etas, end = run_stage(plan, images, extraction_chunks, matching_chunks, mapping_retry=retry)
    # The last tenth (a few seconds) is left out: lund's ETA is ~1 s long there, +50 %.
    judged = [(t, eta, end - t) for t, eta in zip(times, etas, strict=True) if 0.1 * end <= t <= 0.9 * end]
    assert judged
    for t, eta, left in judged:
        # The old estimate (fixed step shares) said 23 s with 8 s left when buddha's matching ended.
        if eta is not None:
            assert abs(eta - left) <= 0.3 * left, (t, eta, left)
    assert sum(eta is not None for _, eta, _ in judged) >= 0.8 * len(judged)


def test_no_estimate_before_extraction_is_measured_and_the_basis_is_logged() -> None:
    clock, reporter = Clock(), RecordingReporter()
    progress = SfmProgress(reporter, clock=clock)
    clock.now = 0.3
    progress.finish("capture")
    progress.step("extraction", 0.0, extracted=0, images=67)
    assert reporter.etas == [None]
    clock.now = 2.5
    progress.step("extraction", 0.25, extracted=17, images=67)
    per_photo = 2.2 / (0.25 * 67)  # extraction's measured rate
    extraction, matching = 0.75 * 67 * per_photo, 67 * 66 / 2 * 0.158 * per_photo**2
    mapping, undistortion = 0.2 * per_photo * 67, 7 * 0.3
    assert reporter.etas[-1] == pytest.approx(extraction + matching + mapping + undistortion, rel=1e-3)
    basis = [line for line in reporter.lines if line.startswith("ETA from measured rates")]
    assert basis and "extraction 25% done" in basis[0], reporter.lines
