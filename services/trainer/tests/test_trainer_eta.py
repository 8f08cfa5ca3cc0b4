"""The training ETA: measured step times, the Gaussians' growth and the known schedule."""

from __future__ import annotations

import pytest
from photosplat_trainer.eta import EtaEstimator


def simulate(steps: int, growth_stop: int, start: int, growth: float, fixed: float, per_gaussian: float, warmup: float = 0.0):
    """(step, seconds so far, Gaussians) every 1 % of a job whose step costs fixed + per_gaussian x N."""
    seconds, count, out = warmup, float(start), []
    for step in range(1, steps + 1):
        seconds += fixed + per_gaussian * count
        if step < growth_stop:
            count += growth
        if step % (steps // 100) == 0:
            out.append((step, seconds, int(count)))
    return out


@pytest.mark.parametrize("fixed_share", [0.05, 0.5, 0.95])
def test_within_30_percent_after_the_first_tenth_while_gaussians_grow(fixed_share: float) -> None:
    # A CPU-like job: the count grows 10x until half-way, so later steps cost far more than early ones.
    per_gaussian = 1e-6 * (1 - fixed_share)
    samples = simulate(30_000, 15_000, 10_000, 6.0, 1e-2 * fixed_share, per_gaussian, warmup=20.0)
    total = samples[-1][1]
    eta = EtaEstimator(30_000, 15_000, max_gaussians=None)
    for step, seconds, count in samples:
        eta.add(step, seconds, count)
        if step >= 3000 and step < 30_000:
            truth = total - seconds
            estimate = eta.seconds_left()
            assert estimate is not None and abs(estimate - truth) <= 0.3 * truth, (step, estimate, truth, eta.basis)


def test_growth_stops_at_the_budget() -> None:
    samples = simulate(10_000, 8_000, 1_000, 50.0, 1e-3, 1e-7)
    eta = EtaEstimator(10_000, 8_000, max_gaussians=101_000)
    for step, seconds, count in samples[:10]:  # up to step 1000, ~51k Gaussians
        eta.add(step, seconds, count)
    eta.seconds_left()
    assert "to ~101,000 by step 2000" in eta.basis, eta.basis  # 50k more at 50/step, then the cap


def test_a_naive_average_is_what_misled_users() -> None:
    # The old estimate (mean time per step since the start) on the same CPU-like job is off by > 30 %.
    samples = simulate(30_000, 15_000, 10_000, 6.0, 5e-4, 9.5e-7, warmup=20.0)
    step, seconds, _ = samples[19]
    naive = seconds / step * (30_000 - step)
    assert abs(naive - (samples[-1][1] - seconds)) > 0.3 * (samples[-1][1] - seconds)


def test_no_estimate_before_two_reports_and_a_resume_restarts_the_window() -> None:
    eta = EtaEstimator(100, 50, None)
    assert eta.seconds_left() is None
    eta.add(10, 1.0, 100)
    eta.add(20, 2.0, 100)
    assert eta.seconds_left() == pytest.approx(8.0)
    eta.add(5, 0.5, 100)  # resumed from an earlier checkpoint
    assert eta.seconds_left() is None


def simulate_refinements(steps: int, refine_every: int, refine_stop: int, jump: int, report_every: int):
    """A 2-core CPU job's shape: the count jumps at each refinement (every ``refine_every`` steps from
    step 143 to ``refine_stop``), a step costs 150 ms + 7 us per Gaussian, a report every few steps."""
    seconds, count, out = 0.0, 4600, []
    for step in range(1, steps + 1):
        seconds += 0.15 + 7e-6 * count
        if 143 <= step < refine_stop and step % refine_every == 0:
            count += jump
        if step % report_every == 0:
            out.append((step, seconds, count))
    return out


def test_growth_in_jumps_is_measured_over_whole_refinement_intervals() -> None:
    # A window of a few seconds holds one jump or none: measured there, the growth swung the estimate
    # between -37 % and +57 % on a real 2-core job.
    samples = simulate_refinements(2000, 100, 1000, 4000, 5)
    total = samples[-1][1]
    eta = EtaEstimator(2000, 1000, max_gaussians=None, refine_every=100)
    for step, seconds, count in samples:
        eta.add(step, seconds, count)
        if seconds >= 0.1 * total and step < 2000:
            truth = total - seconds
            estimate = eta.seconds_left()
            assert estimate is not None and abs(estimate - truth) <= 0.3 * truth, (step, estimate, truth, eta.basis)


def test_what_follows_the_last_step_is_in_the_estimate() -> None:
    # Scoring 9 held-out views 5 times and writing the exports took 7 s after a 2-core job's last step.
    eta = EtaEstimator(2000, 1000, max_gaussians=None, refine_every=100, held_out_views=9)
    for step in range(1960, 2001, 5):
        eta.add(step, 760.0 + (step - 1960) * 0.4, 37_000)
    assert eta.seconds_left() == pytest.approx(9 * 5 * 0.3 * 0.4 + 37_000 * 15e-6, rel=0.01)
    assert eta.basis.endswith("0 steps left, then ~6 s of held-out scoring and exports"), eta.basis
