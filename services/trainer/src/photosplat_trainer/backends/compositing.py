"""Front-to-back alpha compositing of projected Gaussians (the CPU rasteriser's second half).

It is vectorised over tiles: every (tile, Gaussian) overlap is listed, sorted by tile then depth, and
tiles are processed in groups padded to the group's longest list, so memory is about pixels x overlaps
per pixel. As in gsplat: alpha <= 0.999, fragments under 1/255 skipped and a pixel finished once its
transmittance would fall below 1e-4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4


@dataclass
class Projected:
    ids: torch.Tensor  # (n,) indices of the visible Gaussians, front to back
    means2d: torch.Tensor  # (n, 2) pixel coordinates
    conics: torch.Tensor  # (n, 3) inverse 2D covariance (a, b, c)
    opacities: torch.Tensor  # (n,)
    colors: torch.Tensor  # (n, 3)
    radii: torch.Tensor  # (n, 2) pixels
    depths: torch.Tensor  # (n,)


@dataclass
class _Tiles:
    """Every (tile, Gaussian) overlap of a projection, sorted by tile, then depth inside a tile."""

    size: int  # pixels along a tile's side
    across: int  # tiles per row
    gauss: torch.Tensor  # (overlaps,) the Gaussian of each overlap
    count: torch.Tensor  # (tiles,) overlaps per tile
    first: torch.Tensor  # (tiles,) where each tile's overlaps start in ``gauss``
    busy: torch.Tensor  # the tiles with any overlap, fewest overlaps first
    off_x: torch.Tensor  # (pixels per tile,) pixel centres relative to the tile's corner
    off_y: torch.Tensor

    def slots(self, tiles: torch.Tensor, longest: int, padding: int) -> tuple[torch.Tensor, ...]:
        """For ``tiles``: the Gaussian in each of ``longest`` slots (``padding`` past a tile's own
        overlaps), and the x and y of each of their pixels."""
        device, dtype, T = self.gauss.device, self.off_x.dtype, self.size
        slot = torch.arange(longest, device=device)
        idx = self.first[tiles][:, None] + slot[None]
        valid = slot[None] < self.count[tiles][:, None]
        gid = torch.where(valid, self.gauss[idx.clamp(max=len(self.gauss) - 1)], torch.full_like(idx, padding))
        px = ((tiles % self.across) * T).to(dtype)[:, None] + self.off_x[None]  # (k, P)
        py = ((tiles // self.across) * T).to(dtype)[:, None] + self.off_y[None]
        return gid, px, py


@torch.no_grad()
def _bin(p: Projected, T: int, tiles_x: int, tiles_y: int) -> _Tiles:
    device, dtype = p.means2d.device, p.means2d.dtype
    mx, my = p.means2d[:, 0], p.means2d[:, 1]
    rx, ry = p.radii[:, 0], p.radii[:, 1]
    tx0 = torch.floor((mx - rx) / T).clamp(0, tiles_x - 1).long()
    tx1 = torch.floor((mx + rx) / T).clamp(0, tiles_x - 1).long()
    ty0 = torch.floor((my - ry) / T).clamp(0, tiles_y - 1).long()
    ty1 = torch.floor((my + ry) / T).clamp(0, tiles_y - 1).long()
    nx, ny = tx1 - tx0 + 1, ty1 - ty0 + 1
    counts = nx * ny
    gauss = torch.repeat_interleave(torch.arange(len(p.ids), device=device), counts)
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(len(gauss), device=device) - first[gauss]
    tile_of = (ty0[gauss] + local // nx[gauss]) * tiles_x + tx0[gauss] + local % nx[gauss]
    # Gaussians are already front to back: a stable sort by tile keeps depth order inside a tile.
    tile_sorted, perm = torch.sort(tile_of, stable=True)
    per_tile = torch.bincount(tile_sorted, minlength=tiles_x * tiles_y)
    busy = torch.nonzero(per_tile).squeeze(1)
    offs = torch.arange(T * T, device=device)
    return _Tiles(
        size=T,
        across=tiles_x,
        gauss=gauss[perm],
        count=per_tile,
        first=torch.cumsum(per_tile, 0) - per_tile,
        busy=busy[torch.argsort(per_tile[busy])],
        off_x=(offs % T).to(dtype) + 0.5,
        off_y=(offs // T).to(dtype) + 0.5,
    )


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
    bins = _bin(p, T, tiles_x, tiles_y)

    # One padding row (index n): a transparent Gaussian far away.
    mean_x = torch.cat([p.means2d[:, 0], p.means2d.new_zeros(1)])
    mean_y = torch.cat([p.means2d[:, 1], p.means2d.new_zeros(1)])
    con = torch.cat([p.conics, p.conics.new_zeros(1, 3)])
    opa = torch.cat([p.opacities, p.opacities.new_zeros(1)])
    col = torch.cat([p.colors, p.colors.new_zeros(1, 3)])

    rgb_parts, alpha_parts, tile_parts = [], [], []
    for start, end, longest in _groups(bins.count[bins.busy].tolist(), P, group_elements):
        tiles = bins.busy[start:end]
        with torch.no_grad():
            gid, px, py = bins.slots(tiles, longest, n)
        dx = mean_x[gid][:, None, :] - px[:, :, None]  # (k, P, M)
        dy = mean_y[gid][:, None, :] - py[:, :, None]
        rgb, t_final = _blend(dx, dy, con[gid], opa[gid], col[gid])
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


def _blend(
    dx: torch.Tensor, dy: torch.Tensor, cg: torch.Tensor, opacity: torch.Tensor, color: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour (k, P, 3) and final transmittance (k, P, 1) of k tiles' P pixels, each blending its
    tile's M Gaussians (offsets ``dx``, ``dy`` (k, P, M), conics, opacities, colours per slot)."""
    sigma = 0.5 * (cg[:, None, :, 0] * dx * dx + cg[:, None, :, 2] * dy * dy) + cg[:, None, :, 1] * dx * dy
    alpha = torch.clamp(opacity[:, None, :] * torch.exp(-sigma), max=ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    log_t = torch.log1p(-alpha)
    log_incl = torch.cumsum(log_t, dim=-1)
    with torch.no_grad():
        used = log_incl > math.log(TRANSMITTANCE_MIN)
    weights = alpha * torch.exp(log_incl - log_t) * used
    rgb = torch.bmm(weights, color)  # (k, P, 3)
    t_final = torch.exp((log_t * used).sum(-1, keepdim=True))  # (k, P, 1)
    return rgb, t_final


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
