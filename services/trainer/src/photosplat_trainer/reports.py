"""The training loop's progress reports: what they carry, and when and how they are made."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from photosplat_trainer.eta import EtaEstimator


@dataclass(frozen=True)
class Progress:
    step: int
    steps: int
    loss: float
    psnr: float  # training-view PSNR, averaged since the last report
    eta_seconds: float
    gaussians: int
    eval_psnr: float | None = None


@dataclass
class Session:
    """Training since the loop started or since the last evaluation (which is not training time)."""

    step: int
    start: float = field(default_factory=time.monotonic)

    def seconds(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.start


class ProgressReports:
    """A :class:`Progress` every ``interval`` seconds and after the last step. Losses are summed on the
    device between reports; the ETA's basis goes to the log once a tenth and once half of the steps are done."""

    def __init__(
        self,
        steps: int,
        interval: float,
        eta: EtaEstimator,
        device: torch.device,
        progress: Callable[[Progress], None],
        log: Callable[[str], None],
        eval_psnr: float | None = None,
    ) -> None:
        self.steps, self.interval, self.eta = steps, interval, eta
        self.progress, self.log = progress, log
        self.eval_psnr = eval_psnr  # the latest held-out PSNR, sent with every report
        self.loss_sum = torch.zeros((), device=device)
        self.mse_sum = torch.zeros((), device=device)
        self.count = 0
        self.sent_at = time.monotonic()
        self.next_basis_log = 1

    def add(self, loss: torch.Tensor, mse: torch.Tensor) -> None:
        self.loss_sum += loss
        self.mse_sum += mse
        self.count += 1

    def maybe_send(self, done: int, gaussians: int, session: Session, trained_before: float) -> None:
        """After step ``done``: a report if one is due. ``trained_before``: training seconds before ``session``."""
        now = time.monotonic()
        if now - self.sent_at < self.interval and done != self.steps:
            return
        self.eta.add(done, trained_before + session.seconds(now), gaussians)
        rate = session.seconds(now) / max(1, done - session.step)
        left = self.eta.seconds_left()
        if left is not None and done * 10 // self.steps >= self.next_basis_log:
            self.next_basis_log = 5 if done * 10 < 5 * self.steps else 11
            self.log(self.eta.basis)
        self.progress(
            Progress(
                step=done,
                steps=self.steps,
                loss=float(self.loss_sum) / self.count,
                psnr=-10.0 * math.log10(max(float(self.mse_sum) / self.count, 1e-12)),
                eta_seconds=rate * (self.steps - done) if left is None else left,
                gaussians=gaussians,
                eval_psnr=self.eval_psnr,
            )
        )
        self.loss_sum.zero_()
        self.mse_sum.zero_()
        self.count, self.sent_at = 0, now
