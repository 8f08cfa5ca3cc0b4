"""A differentiable Gaussian-splatting rasteriser in plain PyTorch (the CPU backend's renderer).

It follows gsplat's conventions so both backends render the same image from the same Gaussians:
EWA projection with the Jacobian's x/z, y/z clamped to 1.3x the field of view, a 0.3 px^2 low-pass
added to every 2D covariance (with the antialiased opacity compensation when asked), pixel centres
at +0.5, colours from spherical harmonics (+0.5, clamped at 0), front-to-back alpha compositing with
alpha <= 0.999, fragments under 1/255 skipped and a pixel finished once its transmittance would fall
below 1e-4.

Compositing is vectorised over tiles: every (tile, Gaussian) overlap is listed, sorted by tile then
depth, and tiles are processed in groups padded to the group's longest list, so memory is about
pixels x overlaps per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from photosplat_trainer.gaussians import SH_C0

SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4


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


@dataclass
class Projected:
    ids: torch.Tensor  # (n,) indices of the visible Gaussians, front to back
    means2d: torch.Tensor  # (n, 2) pixel coordinates
    conics: torch.Tensor  # (n, 3) inverse 2D covariance (a, b, c)
    opacities: torch.Tensor  # (n,)
    colors: torch.Tensor  # (n, 3)
    radii: torch.Tensor  # (n, 2) pixels
    depths: torch.Tensor  # (n,)


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

    rot = quat_to_rotmat(quats[ids])
    m = rot * scales[ids][:, None, :]
    cov_cam = R @ (m @ m.transpose(1, 2)) @ R.T
    # The Jacobian is evaluated at x/z, y/z clamped to a little beyond the view (as 3DGS and gsplat).
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.minimum(torch.maximum(x / z, -(cx / fx + 0.3 * tan_x)), (width - cx) / fx + 0.3 * tan_x)
    ty = z * torch.minimum(torch.maximum(y / z, -(cy / fy + 0.3 * tan_y)), (height - cy) / fy + 0.3 * tan_y)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / (z * z), zero, fy / z, -fy * ty / (z * z)], dim=-1).view(-1, 2, 3)
    cov2d = J @ cov_cam @ J.transpose(1, 2)
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

    with torch.no_grad():
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
        keep = keep[torch.argsort(z[keep], stable=True)]

    campos = -R.T @ t
    sel = ids[keep]
    colors = torch.clamp_min(eval_sh(sh_degree, sh[sel], means[sel] - campos) + 0.5, 0.0)
    return Projected(sel, means2d[keep], conics[keep], opac[keep], colors, radii[keep], z[keep])


def composite(
    p: Projected,
    width: int,
    height: int,
    background: torch.Tensor,
    *,
    tile_size: int = 8,
    group_elements: int = 1 << 21,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back alpha blending of projected Gaussians (already depth-sorted)."""
    device, dtype = p.means2d.device, p.means2d.dtype
    T = tile_size
    tiles_x, tiles_y = math.ceil(width / T), math.ceil(height / T)
    n_tiles, P = tiles_x * tiles_y, T * T
    n = len(p.ids)

    with torch.no_grad():
        mx, my = p.means2d[:, 0], p.means2d[:, 1]
        rx, ry = p.radii[:, 0], p.radii[:, 1]
        tx0 = torch.floor((mx - rx) / T).clamp(0, tiles_x - 1).long()
        tx1 = torch.floor((mx + rx) / T).clamp(0, tiles_x - 1).long()
        ty0 = torch.floor((my - ry) / T).clamp(0, tiles_y - 1).long()
        ty1 = torch.floor((my + ry) / T).clamp(0, tiles_y - 1).long()
        nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
        counts = nx * ny
        gauss = torch.repeat_interleave(torch.arange(n, device=device), counts)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(len(gauss), device=device) - first[gauss]
        tile_of = (ty0[gauss] + local // nx[gauss]) * tiles_x + tx0[gauss] + local % nx[gauss]
        # Gaussians are already front to back: a stable sort by tile keeps depth order inside a tile.
        tile_sorted, perm = torch.sort(tile_of, stable=True)
        gauss = gauss[perm]
        per_tile = torch.bincount(tile_sorted, minlength=n_tiles)
        tile_first = torch.cumsum(per_tile, 0) - per_tile
        busy = torch.nonzero(per_tile).squeeze(1)
        busy = busy[torch.argsort(per_tile[busy])]
        offs = torch.arange(P, device=device)
        off_x, off_y = (offs % T).to(dtype) + 0.5, (offs // T).to(dtype) + 0.5

    # One padding row (index n): a transparent Gaussian far away.
    mean_x = torch.cat([p.means2d[:, 0], p.means2d.new_zeros(1)])
    mean_y = torch.cat([p.means2d[:, 1], p.means2d.new_zeros(1)])
    con = torch.cat([p.conics, p.conics.new_zeros(1, 3)])
    opa = torch.cat([p.opacities, p.opacities.new_zeros(1)])
    col = torch.cat([p.colors, p.colors.new_zeros(1, 3)])

    rgb_parts, alpha_parts, tile_parts = [], [], []
    for start, end, longest in _groups(per_tile[busy].tolist(), P, group_elements):
        tiles = busy[start:end]
        with torch.no_grad():
            slot = torch.arange(longest, device=device)
            idx = tile_first[tiles][:, None] + slot[None]
            valid = slot[None] < per_tile[tiles][:, None]
            gid = torch.where(valid, gauss[idx.clamp(max=len(gauss) - 1)], torch.full_like(idx, n))
            px = ((tiles % tiles_x) * T).to(dtype)[:, None] + off_x[None]  # (k, P)
            py = ((tiles // tiles_x) * T).to(dtype)[:, None] + off_y[None]
        dx = mean_x[gid][:, None, :] - px[:, :, None]  # (k, P, M)
        dy = mean_y[gid][:, None, :] - py[:, :, None]
        cg = con[gid]
        sigma = 0.5 * (cg[:, None, :, 0] * dx * dx + cg[:, None, :, 2] * dy * dy) + cg[:, None, :, 1] * dx * dy
        alpha = torch.clamp(opa[gid][:, None, :] * torch.exp(-sigma), max=ALPHA_MAX)
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
        log_t = torch.log1p(-alpha)
        log_incl = torch.cumsum(log_t, dim=-1)
        with torch.no_grad():
            used = log_incl > math.log(TRANSMITTANCE_MIN)
        weights = alpha * torch.exp(log_incl - log_t) * used
        rgb = torch.bmm(weights, col[gid])  # (k, P, 3)
        t_final = torch.exp((log_t * used).sum(-1, keepdim=True))  # (k, P, 1)
        rgb_parts.append(rgb + t_final * background)
        alpha_parts.append(1.0 - t_final)
        tile_parts.append(tiles)

    rgb_tiles = background.to(dtype).expand(n_tiles, P, 3)
    alpha_tiles = torch.zeros(n_tiles, P, 1, dtype=dtype, device=device)
    if tile_parts:
        tiles = torch.cat(tile_parts)
        rgb_tiles = rgb_tiles.index_copy(0, tiles, torch.cat(rgb_parts))
        alpha_tiles = alpha_tiles.index_copy(0, tiles, torch.cat(alpha_parts))

    def to_image(t: torch.Tensor) -> torch.Tensor:
        ch = t.shape[-1]
        img = t.view(tiles_y, tiles_x, T, T, ch).permute(0, 2, 1, 3, 4).reshape(tiles_y * T, tiles_x * T, ch)
        return img[:height, :width]

    return to_image(rgb_tiles), to_image(alpha_tiles)


def _groups(sorted_counts: list[int], pixels: int, budget: int) -> list[tuple[int, int, int]]:
    """(start, end, longest) runs of tiles (sorted by overlap count) whose padded size fits ``budget``."""
    groups, start = [], 0
    while start < len(sorted_counts):
        end = start + 1
        while end < len(sorted_counts) and (end + 1 - start) * pixels * sorted_counts[end] <= budget:
            end += 1
        groups.append((start, end, sorted_counts[end - 1]))
        start = end
    return groups


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
