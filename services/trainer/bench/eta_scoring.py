"""How far a stage's shown ETA was from the time the stage really had left (known at its end).

Two views of one stage's progress reports:

- ``reports``: every report the worker made, judged at the moment it was made;
- ``shown``: what a user saw, sampled every half second: status keeps the latest report whose fraction
  did not go back (``projection.on_stage_progress``) and shows its ETA until the next one, so a long
  silence between reports counts as often as it lasts.

(``shown`` with ``countdown``: the same less the time since the report, as a page counting down would.)
Both start after the first 10 % of the stage's wall time (``by="time"``) or of its fraction
(``by="fraction"``) and stop when under a second is left (any ETA then reads "a moment").
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

TOLERANCE = 0.30
LAST_SECONDS_IGNORED = 1.0
SAMPLE_EVERY = 0.5


@dataclass(frozen=True)
class Report:
    t: float  # seconds since the stage started
    fraction: float
    eta: float | None


@dataclass(frozen=True)
class Judged:
    t: float
    fraction: float
    eta: float | None
    actual: float

    @property
    def error(self) -> float | None:
        """Signed relative error: + the ETA said longer than it took."""
        return None if self.eta is None else (self.eta - self.actual) / self.actual


def judged_reports(reports: list[Report], duration: float, by: str = "time") -> list[Judged]:
    return [
        Judged(r.t, r.fraction, r.eta, duration - r.t)
        for r in reports
        if _after_first_tenth(r, duration, by) and duration - r.t >= LAST_SECONDS_IGNORED
    ]


def shown(reports: list[Report], duration: float, by: str = "time", countdown: bool = False) -> list[Judged]:
    """The ETA on the user's page every half second: the latest accepted report's, held (what the page
    does), or with ``countdown`` less the time since that report (what a counting page would show)."""
    out: list[Judged] = []
    t = 0.0
    while t < duration - LAST_SECONDS_IGNORED:
        accepted = shown_at(reports, t)
        if accepted is not None and _after_first_tenth(Report(t, accepted.fraction, None), duration, by):
            eta = accepted.eta
            if countdown and eta is not None:
                eta = max(0.0, eta - (t - accepted.t))
            out.append(Judged(t, accepted.fraction, eta, duration - t))
        t += SAMPLE_EVERY
    return out


def shown_at(reports: list[Report], t: float) -> Report | None:
    """The report whose ETA the page shows at ``t``: status drops a report whose fraction went back."""
    accepted: Report | None = None
    for r in sorted(reports, key=lambda r: r.t):
        if r.t > t:
            break
        if accepted is None or r.fraction >= accepted.fraction:
            accepted = r
    return accepted


def _after_first_tenth(r: Report, duration: float, by: str) -> bool:
    return r.t >= 0.1 * duration if by == "time" else r.fraction >= 0.1


def summary_row(stage: str, view: str, by: str, judged: list[Judged]) -> str:
    errors = [j.error for j in judged if j.error is not None]
    missing = sum(1 for j in judged if j.error is None)
    if not errors:
        return f"| {stage} | {view} | {by} | {len(judged)} | – | – | – | {missing} |"
    worst = max(errors, key=abs)
    within = sum(1 for e in errors if abs(e) <= TOLERANCE) / len(judged)
    return (
        f"| {stage} | {view} | {by} | {len(judged)} | {statistics.median(abs(e) for e in errors) * 100:.0f} | "
        f"{worst * 100:+.0f} | {within * 100:.0f} % | {missing} |"
    )


SUMMARY_HEADER = (
    "| stage | view | first 10 % by | samples | median abs. error % | worst error % | within ±30 % | no ETA |\n"
    "|---|---|---|---|---|---|---|---|"
)
SAMPLES_HEADER = (
    "| stage | at % of time | elapsed s | fraction | shown ETA s | actual left s | error % |\n"
    "|---|---|---|---|---|---|---|"
)


def sample_rows(stage: str, reports: list[Report], duration: float) -> list[str]:
    """What the page showed at 10/25/50/75/90 % of the stage's wall time."""
    rows = []
    for share in (0.10, 0.25, 0.50, 0.75, 0.90):
        at = share * duration
        r = shown_at(reports, at)
        if r is None:
            rows.append(f"| {stage} | {share * 100:.0f} | {at:.1f} | – | – | {duration - at:.1f} | no report yet |")
            continue
        j = Judged(at, r.fraction, r.eta, duration - at)
        eta = "none" if j.eta is None else f"{j.eta:.1f}"
        err = "–" if j.error is None else f"{j.error * 100:+.0f}"
        rows.append(f"| {stage} | {share * 100:.0f} | {at:.1f} | {j.fraction:.2f} | {eta} | {j.actual:.1f} | {err} |")
    return rows
