"""Rendering backends: one interface, a pure-PyTorch CPU rasteriser and gsplat on CUDA.

``render(params, view, sh_degree, background, antialiased=...)`` returns the image, its alpha and the
``info`` the backend's densification strategy needs; ``render_batch`` does the same for views of one
size at once (images (C, H, W, 3), the training step's form); ``densifier(cfg, scene_scale, n)`` returns that
strategy. gsplat is imported only inside the CUDA backend, so CPU machines never need it.
"""

from __future__ import annotations

import torch

from photosplat_trainer.backends.types import Backend, Densifier, RenderOutput

__all__ = ["Backend", "Densifier", "RenderOutput", "check_backend", "select_backend"]


def check_backend(device: str = "auto") -> str:
    """At start-up, the backend jobs will get, or a clear error: a worker that sees a GPU but cannot
    load the CUDA backend (gsplat missing, no compiler for its kernels) would otherwise fail every
    job three times. Training on the CPU beside a GPU is an operator's explicit choice (device=cpu)."""
    try:
        return select_backend(device).name
    except Exception as exc:
        if device == "cpu" or not torch.cuda.is_available():
            raise
        raise RuntimeError(
            f"a CUDA GPU is visible but the CUDA training backend cannot load ({type(exc).__name__}: {exc}). "
            "Install the trainer with its [cuda] extra (gsplat, and nvcc for its kernels), "
            "or set PHOTOSPLAT_TRAINER_DEVICE=cpu to train on the CPU instead."
        ) from exc


def select_backend(device: str = "auto") -> Backend:
    """``auto``: CUDA when a GPU is visible, else CPU. ``cuda`` without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but PyTorch sees no CUDA GPU")
        from photosplat_trainer.backends.cuda import CudaBackend

        return CudaBackend()
    from photosplat_trainer.backends.cpu import CpuBackend

    return CpuBackend()
