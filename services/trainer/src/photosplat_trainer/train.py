"""The training loop: Gaussians fitted to the training views of a :class:`Dataset` on a backend.

The loop reports progress every ``cfg.progress_seconds`` (step, loss, PSNR so far, ETA), evaluates
on the held-out views every ``cfg.eval_every`` steps and at the end, writes a checkpoint every
``cfg.checkpoint_every`` steps (resumable: :func:`train` takes it back), and asks ``check_cancelled``
before every step. Out of GPU memory, :func:`train_with_oom_retry` tries once more with half the
Gaussians, then gives up with a clear error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from photosplat_libs.errors import WorkError

from photosplat_trainer.backends import Backend
from photosplat_trainer.batches import ViewBatches
from photosplat_trainer.config import TrainConfig
from photosplat_trainer.dataset import Dataset, random_points, sky_points
from photosplat_trainer.eta import EtaEstimator
from photosplat_trainer.gaussians import GaussianSet
from photosplat_trainer.evaluation import evaluate_params
from photosplat_trainer.losses import photometric_loss, training_ssim
from photosplat_trainer.model import Params, init_params, make_optimizers, to_gaussian_set
from photosplat_trainer.poses import PoseCorrection
from photosplat_trainer.reports import Progress, ProgressReports, Session

CHECKPOINT_VERSION = 2


@dataclass
class Callbacks:
    progress: Callable[[Progress], None] = lambda _p: None
    log: Callable[[str], None] = lambda _line: None
    check_cancelled: Callable[[], None] = lambda: None
    # Called with the checkpoint file and its step, after the file is complete.
    checkpoint: Callable[[Path, int], None] = lambda _path, _step: None


@dataclass
class TrainResult:
    gaussians: GaussianSet
    steps: int
    psnr: float | None
    ssim: float | None
    train_seconds: float
    # (step, training seconds so far, held-out PSNR, held-out SSIM) of every evaluation.
    history: list[tuple[int, float, float, float]] = field(default_factory=list)
    peak_memory_bytes: int = 0


class OutOfMemory(WorkError):
    """Training ran out of GPU memory (after the retry, if any)."""

    retryable = False

    def __init__(self, message: str, gaussians: int = 0) -> None:
        super().__init__(message)
        self.gaussians = gaussians


class CheckpointMismatch(ValueError):
    pass


def train(
    data: Dataset,
    cfg: TrainConfig,
    backend: Backend,
    callbacks: Callbacks | None = None,
    *,
    work_dir: Path | None = None,
    resume: Path | None = None,
) -> TrainResult:
    trainer: _Trainer | None = None
    try:
        trainer = _Trainer(data, cfg, backend, callbacks or Callbacks(), work_dir, resume)
        return trainer.run()
    except torch.OutOfMemoryError as exc:
        reached = len(trainer.params["means"]) if trainer is not None else len(data.points)
        raise OutOfMemory(f"out of GPU memory: {exc}".splitlines()[0], gaussians=reached) from exc


def train_with_oom_retry(
    data: Dataset,
    cfg: TrainConfig,
    backend: Backend,
    callbacks: Callbacks | None = None,
    *,
    work_dir: Path | None = None,
    resume: Path | None = None,
) -> tuple[TrainResult, TrainConfig]:
    """:func:`train`; out of memory, once more from scratch with half the Gaussians it had reached."""
    hooks = callbacks or Callbacks()
    try:
        return train(data, cfg, backend, hooks, work_dir=work_dir, resume=resume), cfg
    except OutOfMemory as exc:
        budget = max(10_000, exc.gaussians // 2)
        hooks.log(f"out of GPU memory with {exc.gaussians} Gaussians; retrying with a budget of {budget}")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = dataclasses.replace(cfg, max_gaussians=budget)
        try:
            return train(data, smaller, backend, hooks, work_dir=work_dir), smaller
        except OutOfMemory as again:
            raise OutOfMemory(
                f"training ran out of GPU memory twice (the retry was limited to {budget} Gaussians); "
                "try a smaller preset or a lower max_image_side",
                gaussians=again.gaussians,
            ) from again


class _Trainer:
    def __init__(self, data: Dataset, cfg: TrainConfig, backend: Backend, hooks: Callbacks, work_dir: Path | None, resume: Path | None) -> None:
        if not data.train:
            raise WorkError("no training views", retryable=False)
        if cfg.batch_size > backend.max_batch:
            raise ValueError(f"the {backend.name} backend renders at most {backend.max_batch} view(s) per step, not {cfg.batch_size}")
        self.cfg, self.backend, self.hooks = cfg, backend, hooks
        self.device = backend.device
        self.data = data.to(self.device)
        self.scene_scale = data.scene_scale
        self.work_dir = Path(work_dir) if work_dir else None
        self.background = torch.tensor(cfg.background, dtype=torch.float32, device=self.device)
        self.generator = np.random.default_rng(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.start_step, self.elapsed = 0, 0.0
        self.history: list[tuple[int, float, float, float]] = []
        checkpoint = torch.load(resume, map_location=self.device, weights_only=False) if resume else None
        if checkpoint is not None:
            self._check_compatible(checkpoint)
            self.params: Params = {k: torch.nn.Parameter(v.to(self.device)) for k, v in checkpoint["params"].items()}
        else:
            self.params = self._initial_params(data)
        self._make_optimizers()
        self._make_corrections()
        self.ssim_fn, self.ssim_kind = training_ssim(self.device)
        # Per-view index tensors made once: building them from Python ints every step would copy
        # to the GPU and wait for it.
        self.view_index = [torch.tensor([v.index], device=self.device) for v in self.data.train]
        self.batches = ViewBatches(self.data.train, cfg.batch_size, self.generator)
        if checkpoint is not None:
            self._restore(checkpoint)

    def _initial_params(self, data: Dataset) -> Params:
        """Gaussians at the SfM points (random ones without), plus the sky's."""
        cfg = self.cfg
        points, colors = data.points, data.colors
        if len(points) < 4:
            points, colors = random_points(data, cfg.random_init_points, cfg.random_init_extent, seed=cfg.seed, layout=cfg.random_init)
            self.hooks.log(f"no 3D points came with the cameras: starting from {len(points)} random Gaussians")
        n_sky = round(cfg.sky_points_fraction * len(points))
        if n_sky:
            sky, sky_colors = sky_points(data, n_sky, seed=cfg.seed)
            points, colors = np.concatenate([points, sky]), np.concatenate([colors, sky_colors])
        return init_params(points, colors, cfg, self.device)

    def _make_optimizers(self) -> None:
        """The parameters' optimizers, the means' learning-rate decay and the densifier."""
        cfg = self.cfg
        self.optimizers = make_optimizers(self.params, cfg, self.scene_scale)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(
            self.optimizers["means"], gamma=cfg.means_lr_final_factor ** (1.0 / max(1, cfg.steps))
        )
        self.densifier = self.backend.densifier(cfg, self.scene_scale, len(self.params["means"]))
        budget = self.densifier.max_gaussians
        # A budget the device set (below the preset's cap): the log says when the count reaches it.
        self.memory_budget: int | None = None
        if cfg.max_gaussians is None or budget < cfg.max_gaussians:
            self.memory_budget = budget
            self.hooks.log(
                f"Gaussian budget {budget:,}: what the {self.backend.name} device's free memory holds"
                + ("" if cfg.max_gaussians is None else f" (the preset allows {cfg.max_gaussians:,})")
            )

    def _make_corrections(self) -> None:
        """Per-view appearance (a colour matrix and offset) and pose corrections, each with its optimizer
        only when the configuration asks for it."""
        cfg = self.cfg
        n_train = len(self.data.train)
        self.appearance = torch.nn.Parameter(
            torch.cat([torch.eye(3).flatten(), torch.zeros(3)]).repeat(n_train, 1).to(self.device)
        )
        self.appearance_opt = torch.optim.Adam([self.appearance], lr=cfg.appearance_lr) if cfg.appearance else None
        self.poses = PoseCorrection(n_train).to(self.device) if cfg.pose_refine else None
        self.poses_opt = (
            torch.optim.Adam(self.poses.parameters(), lr=cfg.pose_lr * math.sqrt(cfg.batch_size), weight_decay=cfg.pose_reg)
            if self.poses is not None
            else None
        )

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """The optimizers' and corrections' state, the step and the view order of a checkpoint."""
        cfg = self.cfg
        for k, opt in self.optimizers.items():
            opt.load_state_dict(checkpoint["optimizers"][k])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.densifier.load_state_dict(checkpoint["densifier"])
        self.appearance.data.copy_(checkpoint["appearance"])
        if self.appearance_opt is not None and checkpoint.get("appearance_opt"):
            self.appearance_opt.load_state_dict(checkpoint["appearance_opt"])
        if self.poses is not None and self.poses_opt is not None:
            self.poses.load_state_dict(checkpoint["poses"])
            self.poses_opt.load_state_dict(checkpoint["poses_opt"])
        self.start_step, self.elapsed = int(checkpoint["step"]), float(checkpoint["elapsed"])
        self.history = [tuple(h) for h in checkpoint.get("history", [])]  # type: ignore[misc]
        self.batches = ViewBatches(self.data.train, cfg.batch_size, np.random.default_rng(cfg.seed + self.start_step))
        self.hooks.log(f"resumed from the checkpoint of step {self.start_step}")

    def _check_compatible(self, checkpoint: dict[str, Any]) -> None:
        if checkpoint.get("version") != CHECKPOINT_VERSION:
            raise CheckpointMismatch(f"checkpoint version {checkpoint.get('version')} is not {CHECKPOINT_VERSION}")
        saved = TrainConfig.from_json(checkpoint["config"])
        if saved != self.cfg:
            raise CheckpointMismatch("the checkpoint was written with another training configuration")
        if checkpoint["n_train"] != len(self.data.train):
            raise CheckpointMismatch("the checkpoint was written for another set of training views")

    # --- the loop ---------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        cfg, hooks = self.cfg, self.hooks
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        hooks.log(
            f"training on {self.backend.name}: {len(self.params['means'])} initial Gaussians, "
            f"{len(self.data.train)} training / {len(self.data.test)} held-out views "
            f"of {self.data.train[0].width}x{self.data.train[0].height}, {cfg.steps} steps of {cfg.batch_size} view(s), "
            f"{self.ssim_kind} SSIM"
        )
        session = Session(self.start_step)
        reports = ProgressReports(
            cfg.steps,
            cfg.progress_seconds,
            EtaEstimator(
                cfg.steps, cfg.refine_stop, self.densifier.max_gaussians,
                refine_every=cfg.refine_every, held_out_views=len(self.data.test),
            ),
            self.device,
            hooks.progress,
            hooks.log,
            eval_psnr=self.history[-1][2] if self.history else None,
        )
        for step in range(self.start_step, cfg.steps):
            hooks.check_cancelled()
            reports.add(*self._step(step))
            done = step + 1
            self._note_budget_reached(done)
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps and self.data.test:
                reports.eval_psnr = self._evaluate_during(done, session)
                session = Session(done)
            reports.maybe_send(done, len(self.params["means"]), session, self.elapsed)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps and self.work_dir:
                self._sync()
                path = self.save_checkpoint(self.work_dir / "checkpoint.pt", done, self.elapsed + session.seconds())
                hooks.checkpoint(path, done)
        self._sync()
        self.elapsed += session.seconds()
        return self._result()

    def _evaluate_during(self, done: int, session: Session) -> float:
        """Held-out PSNR after step ``done``, kept in the history and logged; the session's time so far is
        training time, the evaluation's is not."""
        self._sync()
        self.elapsed += session.seconds()
        psnr, ssim = self.evaluate()
        self.history.append((done, self.elapsed, psnr, ssim))
        self.hooks.log(f"step {done}: held-out PSNR {psnr:.2f} dB, SSIM {ssim:.4f}, {len(self.params['means'])} Gaussians")
        return psnr

    def _result(self) -> TrainResult:
        """The final evaluation (when there are held-out views) and what training made."""
        final_psnr, final_ssim = self.evaluate() if self.data.test else (None, None)
        if final_psnr is not None and final_ssim is not None:
            self.history.append((self.cfg.steps, self.elapsed, final_psnr, final_ssim))
        peak = torch.cuda.max_memory_allocated() if self.device.type == "cuda" else 0
        return TrainResult(
            gaussians=to_gaussian_set(self.params),
            steps=self.cfg.steps,
            psnr=final_psnr,
            ssim=final_ssim,
            train_seconds=self.elapsed,
            history=self.history,
            peak_memory_bytes=peak,
        )

    def _note_budget_reached(self, step: int) -> None:
        """Once, in the job log: the count reached the budget the device's memory set."""
        if self.memory_budget is None:
            return
        count = len(self.params["means"])
        if count < self.memory_budget:
            return
        self.hooks.log(
            f"step {step}: {count:,} Gaussians, the budget the {self.backend.name} device's free memory allows: "
            "the scene grows no further (a GPU with more free memory would allow more detail)"
        )
        self.memory_budget = None

    def _step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        views = self.batches.next()
        viewmats = torch.stack([v.viewmat for v in views])
        # Which training views these are: only the per-view corrections need it.
        index = None
        if self.poses is not None or self.appearance_opt is not None:
            index = torch.cat([self.view_index[v.index] for v in views])
        if self.poses is not None:
            viewmats = self.poses(viewmats, index)
        sh_degree = min(step // cfg.sh_degree_interval, cfg.sh_degree)
        out = self.backend.render_batch(
            self.params, views, sh_degree, self.background,
            antialiased=cfg.antialiased, packed=cfg.packed, absgrad=cfg.absgrad, viewmats=viewmats,
        )
        image = out.image
        target = torch.stack([v.image for v in views])
        if self.appearance_opt is not None:
            a = self.appearance[index]
            # Broadcast multiply-add rather than a matmul: (HW x 3) @ (3 x 3) GEMMs (einsum or
            # baddbmm) took ~30 ms a step on an H100.
            m = a[:, :9].view(-1, 1, 1, 3, 3)
            image = (image[..., None, :] * m).sum(-1) + a[:, None, None, 9:]
        loss = photometric_loss(image, target, cfg.ssim_lambda, self.ssim_fn)
        if cfg.opacity_reg:
            loss = loss + cfg.opacity_reg * torch.sigmoid(self.params["opacities"]).mean()
        if cfg.scale_reg:
            loss = loss + cfg.scale_reg * torch.exp(self.params["scales"]).mean()
        self.densifier.pre_backward(self.params, self.optimizers, step, out.info)
        loss.backward()
        for opt in self.optimizers.values():
            opt.step()
            opt.zero_grad(set_to_none=True)
        for extra in (self.appearance_opt, self.poses_opt):
            if extra is not None:
                extra.step()
                extra.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.densifier.post_backward(self.params, self.optimizers, step, out.info, self.scheduler.get_last_lr()[0])
        with torch.no_grad():
            mse = ((image.detach() - target) ** 2).mean()
        return loss.detach(), mse

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        return evaluate_params(self.params, self.data.test, self.backend, self.cfg)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def save_checkpoint(self, path: Path, step: int, elapsed: float) -> Path:
        state = {
            "version": CHECKPOINT_VERSION,
            "step": step,
            "elapsed": elapsed,
            "config": self.cfg.to_json(),
            "n_train": len(self.data.train),
            "params": {k: v.detach().cpu() for k, v in self.params.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "scheduler": self.scheduler.state_dict(),
            "densifier": self.densifier.state_dict(),
            "appearance": self.appearance.detach().cpu(),
            "appearance_opt": self.appearance_opt.state_dict() if self.appearance_opt else None,
            "poses": self.poses.state_dict() if self.poses is not None else None,
            "poses_opt": self.poses_opt.state_dict() if self.poses_opt is not None else None,
            "history": self.history,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path
