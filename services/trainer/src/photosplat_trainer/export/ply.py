"""The reference 3DGS PLY (Kerbl et al., INRIA ``save_ply``), as SuperSplat, Spark and gsplat read it.

One binary little-endian ``vertex`` element of float32 properties, in this order:
``x y z nx ny nz f_dc_0..2 f_rest_0..(3K-1) opacity scale_0..2 rot_0..3``. Normals are zero (viewers
expect the columns); ``f_rest`` is channel-major (all K coefficients of R, then of G, then of B);
opacity is the logit, scales are logs, ``rot_0`` is w. Values are stored unchanged, so a round trip
through ``write_ply``/``read_ply`` is bit-exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from photosplat_trainer.gaussians import GaussianSet


def ply_property_names(sh_degree: int) -> list[str]:
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(rest)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def write_ply(g: GaussianSet, path: Path) -> Path:
    n = len(g)
    # (N, K, 3) -> (N, 3, K) -> (N, 3K): the reference flattens the transposed tensor channel-major.
    f_rest = np.ascontiguousarray(g.shN.transpose(0, 2, 1)).reshape(n, 3 * g.shN.shape[1])
    columns = np.concatenate(
        [
            g.means.reshape(n, 3),
            np.zeros((n, 3), np.float32),
            g.sh0.reshape(n, 3),
            f_rest,
            g.opacity_logits.reshape(n, 1),
            g.log_scales.reshape(n, 3),
            g.quats.reshape(n, 4),
        ],
        axis=1,
    ).astype("<f4")
    names = ply_property_names(g.sh_degree)
    vertices = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertices[name] = columns[:, i]
    path = Path(path)
    PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<").write(str(path))
    return path


def read_ply(path: Path) -> GaussianSet:
    vertex = PlyData.read(str(path))["vertex"]
    data = vertex.data
    names = set(data.dtype.names or ())

    def cols(*keys: str) -> np.ndarray:
        return np.stack([np.asarray(data[k], np.float32) for k in keys], axis=1)

    rest = sorted((k for k in names if k.startswith("f_rest_")), key=lambda k: int(k[len("f_rest_") :]))
    if len(rest) % 3:
        raise ValueError(f"{path}: {len(rest)} f_rest properties, not a multiple of 3")
    n, k = len(data), len(rest) // 3
    sh_rest = cols(*rest) if rest else np.zeros((n, 0), np.float32)
    return GaussianSet(
        means=cols("x", "y", "z"),
        log_scales=cols("scale_0", "scale_1", "scale_2"),
        quats=cols("rot_0", "rot_1", "rot_2", "rot_3"),
        opacity_logits=np.asarray(data["opacity"], np.float32).reshape(n),
        sh0=cols("f_dc_0", "f_dc_1", "f_dc_2").reshape(n, 1, 3),
        shN=np.ascontiguousarray(sh_rest.reshape(n, 3, k).transpose(0, 2, 1)),
    )
