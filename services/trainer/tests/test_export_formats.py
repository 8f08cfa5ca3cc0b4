"""What the pipeline writes: every format at once, the SPZ flagged when training was antialiased."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from photosplat_trainer.export import EXPORT_FORMATS, export_one, load_export
from photosplat_trainer.gaussians import GaussianSet


def _gaussians(n: int = 500) -> GaussianSet:
    r = np.random.default_rng(1)
    f = np.float32
    return GaussianSet(
        r.normal(size=(n, 3)).astype(f), r.normal(-3, 0.5, (n, 3)).astype(f), r.normal(size=(n, 4)).astype(f),
        r.normal(size=n).astype(f), r.normal(size=(n, 1, 3)).astype(f), (0.1 * r.normal(size=(n, 15, 3))).astype(f),
    )


def test_spz_records_antialiased_training(tmp_path: Path) -> None:
    g = _gaussians()
    for antialiased, flags in ((True, 1), (False, 0)):
        path = export_one(g, tmp_path / str(antialiased), "spz", antialiased=antialiased).path
        assert struct.unpack_from("<IIIBBBB", gzip.decompress(path.read_bytes()))[5] == flags


def test_the_ply_reads_back_bit_for_bit(tmp_path: Path) -> None:
    g = _gaussians()
    back = load_export(export_one(g, tmp_path, "ply").path)
    assert back.equals(g) and set(EXPORT_FORMATS) == {"ply", "splat", "spz", "sog"}
    back.means[0, 0] += 1e-6
    assert not back.equals(g)
