"""A differentiable Gaussian-splatting rasteriser in plain PyTorch (the CPU backend's renderer).

It follows gsplat's conventions so both backends render the same image from the same Gaussians:
EWA projection with the Jacobian's x/z, y/z clamped to 1.3x the field of view, a 0.3 px^2 low-pass
added to every 2D covariance (with the antialiased opacity compensation when asked), pixel centres
at +0.5, colours from spherical harmonics (+0.5, clamped at 0), front-to-back alpha compositing with
alpha <= 0.999, fragments under 1/255 skipped and a pixel finished once its transmittance would fall
below 1e-4.

The compositing half is in :mod:`photosplat_trainer.backends.compositing`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from photosplat_trainer.backends.compositing import ALPHA_MIN, Projected, composite
from photosplat_trainer.gaussians import SH_C0

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)


def eval_sh(degree: int, coeffs: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colour from SH ``coeffs`` (N, K, 3) of which the first (degree+1)^2 are used, ``dirs`` (N, 3)."""
    d = F.normalize(dirs, dim=-1)
    x, y, z = d[:, 0:1], d[:, 1:2], d[:, 2:3]
    c = coeffs
    out = SH_C0 * c[:, 0]
    if degree < 1:
        return out
    out = out - SH_C1 * y * c[:, 1] + SH_C1 * z * c[:, 2] - SH_C1 * x * c[:, 3]
    if degree < 2:
        return out
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    out = (
        out
        + SH_C2[0] * xy * c[:, 4]
        + SH_C2[1] * yz * c[:, 5]
        + SH_C2[2] * (2 * zz - xx - yy) * c[:, 6]
        + SH_C2[3] * xz * c[:, 7]
        + SH_C2[4] * (xx - yy) * c[:, 8]
    )
    if degree < 3:
        return out
    return (
        out
        + SH_C3[0] * y * (3 * xx - yy) * c[:, 9]
        + SH_C3[1] * xy * z * c[:, 10]
        + SH_C3[2] * y * (4 * zz - xx - yy) * c[:, 11]
        + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * c[:, 12]
        + SH_C3[4] * x * (4 * zz - xx - yy) * c[:, 13]
        + SH_C3[5] * z * (xx - yy) * c[:, 14]
        + SH_C3[6] * x * (xx - 3 * yy) * c[:, 15]
    )


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).view(-1, 3, 3)


def project(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    sh: torch.Tensor,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    sh_degree: int,
    *,
    antialiased: bool = False,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
) -> Projected:
    """Activated parameters (scales > 0, opacities in [0, 1]) to screen-space Gaussians."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    with torch.no_grad():
        z_all = means @ R[2] + t[2]
        ids = torch.nonzero((z_all > near) & (z_all < far)).squeeze(1)
    pc = means[ids] @ R.T + t
    x, y, z = pc.unbind(-1)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    cov2d = _screen_covariance(x, y, z, quats[ids], scales[ids], R, K, width, height)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det_raw = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    opac = opacities[ids]
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_raw / det, min=0.0))
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    radii, keep = _on_screen(means2d, opac, a, c, det, z, width, height)

    campos = -R.T @ t
    sel = ids[keep]
    colors = torch.clamp_min(eval_sh(sh_degree, sh[sel], means[sel] - campos) + 0.5, 0.0)
    return Projected(sel, means2d[keep], conics[keep], opac[keep], colors, radii[keep], z[keep])


def _screen_covariance(
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    R: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
) -> torch.Tensor:
    """EWA splatting: the 2D covariance (n, 2, 2) in pixels of Gaussians centred at ``x, y, z`` (camera space)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    rot = quat_to_rotmat(quats)
    m = rot * scales[:, None, :]
    cov_cam = R @ (m @ m.transpose(1, 2)) @ R.T
    # The Jacobian is evaluated at x/z, y/z clamped to a little beyond the view (as 3DGS and gsplat).
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.minimum(torch.maximum(x / z, -(cx / fx + 0.3 * tan_x)), (width - cx) / fx + 0.3 * tan_x)
    ty = z * torch.minimum(torch.maximum(y / z, -(cy / fy + 0.3 * tan_y)), (height - cy) / fy + 0.3 * tan_y)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], dim=-1).view(-1, 2, 3)
    return J @ cov_cam @ J.transpose(1, 2)


@torch.no_grad()
def _on_screen(
    means2d: torch.Tensor,
    opac: torch.Tensor,
    a: torch.Tensor,
    c: torch.Tensor,
    det: torch.Tensor,
    z: torch.Tensor,
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel radii of every Gaussian, and the Gaussians that reach into the image, nearest first."""
    # Axis-aligned extent of the region where alpha >= 1/255 (exact, no 3-sigma guess).
    reach = torch.sqrt(2.0 * torch.log(torch.clamp(opac * 255.0, min=1.0)))
    radii = torch.stack([torch.ceil(reach * a.clamp_min(0).sqrt()), torch.ceil(reach * c.clamp_min(0).sqrt())], -1)
    mx, my = means2d[:, 0], means2d[:, 1]
    visible = (
        (det > 0)
        & (opac >= ALPHA_MIN)
        & (mx + radii[:, 0] > 0)
        & (mx - radii[:, 0] < width)
        & (my + radii[:, 1] > 0)
        & (my - radii[:, 1] < height)
    )
    keep = torch.nonzero(visible).squeeze(1)
    return radii, keep[torch.argsort(z[keep], stable=True)]


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    sh: torch.Tensor,
    viewmat: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    sh_degree: int,
    background: torch.Tensor,
    *,
    antialiased: bool = False,
    tile_size: int = 8,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Image (H, W, 3), alpha (H, W, 1) and the info densification uses (packed, as gsplat's)."""
    p = project(means, quats, scales, opacities, sh, viewmat, K, width, height, sh_degree, antialiased=antialiased)
    image, alpha = composite(p, width, height, background, tile_size=tile_size)
    info = {
        "means2d": p.means2d,
        "gaussian_ids": p.ids,
        "radii": p.radii,
        "depths": p.depths,
        "width": width,
        "height": height,
        "n_cameras": 1,
    }
    return image, alpha, info
