"""Separable Gaussian blur for the training SSIM on CUDA, as Triton kernels with their own backward.

cuDNN's depthwise convolutions (and above all their backward) took ~7 of an 8.5 ms training step on
an H100; ``torch.compile`` of the same SSIM was fast but compiled for ~45 s per image shape. Two
small Triton kernels compile in about a second and are cached on disk.

A "valid" 1-D correlation along one axis, ``out[i] = sum_k w[k] in[i + k]``, has as its gradient the
"full" correlation with the flipped window, ``grad_in[j] = sum_k w[k] grad_out[j - k]``; the
window is symmetric, so one kernel with a sign serves both.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 512


# Sizes are not specialised on (Triton would compile again for sizes divisible by 16 or equal to
# 1): one compilation, at warm-up, serves every image size.
@triton.jit(do_not_specialize=["n_src", "n_out"])
def _blur_rows(src, dst, weights, n_src, n_out, TAPS: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr):
    # Along the last axis: one program per row and block of columns.
    row = tl.program_id(0).to(tl.int64)
    i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = i < n_out
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for k in tl.static_range(TAPS):
        s = i - k if FULL else i + k
        ok = live & (s >= 0) & (s < n_src)
        acc += tl.load(weights + k) * tl.load(src + row * n_src + s, mask=ok, other=0.0)
    tl.store(dst + row * n_out + i, acc, mask=live)


@triton.jit(do_not_specialize=["h_src", "h_out", "width"])
def _blur_cols(src, dst, weights, h_src, h_out, width, TAPS: tl.constexpr, FULL: tl.constexpr, BLOCK: tl.constexpr):
    # Along the second-last axis: one program per output row (of every plane) and block of columns.
    r = tl.program_id(0)
    plane, i = r // h_out, r % h_out
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    live = j < width
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for k in tl.static_range(TAPS):
        s = i - k if FULL else i + k
        inside = (s >= 0) & (s < h_src)
        ok = live & (tl.zeros((BLOCK,), dtype=tl.int1) | inside)
        acc += tl.load(weights + k) * tl.load(src + (plane * h_src + s).to(tl.int64) * width + j, mask=ok, other=0.0)
    tl.store(dst + r.to(tl.int64) * width + j, acc, mask=live)


def _blur(x: torch.Tensor, weights: torch.Tensor, dim: int, full: bool) -> torch.Tensor:
    """Correlation of ``x`` with ``weights`` along ``dim`` (the last or the second-last axis)."""
    x = x.contiguous()
    taps = len(weights)
    last = dim == x.dim() - 1
    n_src = x.shape[dim]
    n_out = n_src + taps - 1 if full else n_src - taps + 1
    shape = list(x.shape)
    shape[dim] = n_out
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    if last:
        rows = x.numel() // n_src
        _blur_rows[(rows, triton.cdiv(n_out, _BLOCK))](x, out, weights, n_src, n_out, TAPS=taps, FULL=full, BLOCK=_BLOCK)
    else:
        width = x.shape[-1]
        rows = out.numel() // width
        _blur_cols[(rows, triton.cdiv(width, _BLOCK))](x, out, weights, n_src, n_out, width, TAPS=taps, FULL=full, BLOCK=_BLOCK)
    return out


class _ValidBlur(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(weights)
        ctx.dim = dim
        return _blur(x, weights, dim, full=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (weights,) = ctx.saved_tensors
        return _blur(grad, weights, ctx.dim, full=True), None, None


def blur2d(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """'valid' separable blur of the last two axes of a float32 CUDA tensor (..., H, W)."""
    return _ValidBlur.apply(_ValidBlur.apply(x, weights, x.dim() - 1), weights, x.dim() - 2)
