import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from photosplat_trainer.export.spz import _flip_sh, decode_spz, encode_spz, read_spz, write_spz
from photosplat_trainer.gaussians import GaussianSet
import torch
from photosplat_trainer.backends.rasterize import quat_to_rotmat

C1 = 0.4886025119029199
C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
C3 = [
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
]


def random_set(n: int, degree: int, seed: int = 0, spread: float = 2.0) -> GaussianSet:
    rng = np.random.default_rng(seed)
    f = np.float32
    return GaussianSet(
        means=rng.normal(0, spread, (n, 3)).astype(f),
        log_scales=rng.uniform(-8, 2, (n, 3)).astype(f),
        quats=rng.normal(size=(n, 4)).astype(f),
        opacity_logits=rng.uniform(-4, 4, n).astype(f),
        sh0=rng.uniform(-1.5, 1.5, (n, 1, 3)).astype(f),
        shN=rng.uniform(-0.9, 0.9, (n, (degree + 1) ** 2 - 1, 3)).astype(f),
    )


def eval_sh_rest(sh: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The view-dependent colour of the 3DGS / gsplat SH basis (degrees 1-3), sh (N, 15, 3), d (N, 3)."""
    x, y, z = (d[:, i : i + 1] for i in range(3))
    xx, yy, zz = x * x, y * y, z * z
    basis = [
        -C1 * y,
        C1 * z,
        -C1 * x,
        C2[0] * x * y,
        C2[1] * y * z,
        C2[2] * (2 * zz - xx - yy),
        C2[3] * x * z,
        C2[4] * (xx - yy),
        C3[0] * y * (3 * xx - yy),
        C3[1] * x * y * z,
        C3[2] * y * (4 * zz - xx - yy),
        C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
        C3[4] * x * (4 * zz - xx - yy),
        C3[5] * z * (xx - yy),
        C3[6] * x * (xx - 3 * yy),
    ]
    return sum(b * sh[:, i] for i, b in enumerate(basis))


def rotation(q: np.ndarray) -> np.ndarray:
    """Rotation matrices of w-x-y-z quaternions (the rasteriser's own conversion)."""
    return quat_to_rotmat(torch.from_numpy(np.asarray(q, np.float64))).numpy()


def unpacked(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


@pytest.mark.parametrize("degree", [0, 3])
def test_header_and_block_sizes(tmp_path: Path, degree: int) -> None:
    n = 37
    raw = unpacked(write_spz(random_set(n, degree), tmp_path / "s.spz"))
    magic, version, count, sh_degree, bits, flags, reserved = struct.unpack_from("<IIIBBBB", raw)
    assert raw[:4] == b"NGSP" and magic == 0x5053474E
    assert (version, count, sh_degree, bits, flags, reserved) == (3, n, degree, 12, 0, 0)
    k = (degree + 1) ** 2 - 1
    # positions 9, alpha 1, colour 3, scales 3, rotation 4 (smallest three), SH 3 per coefficient.
    assert len(raw) == 16 + n * (9 + 1 + 3 + 3 + 4 + 3 * k)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_quantisation(tmp_path: Path, degree: int) -> None:
    g = random_set(2000, degree, seed=degree)
    back = read_spz(write_spz(g, tmp_path / "scene.spz"))
    assert len(back) == len(g) and back.sh_degree == degree
    np.testing.assert_allclose(back.means, g.means, atol=0.5 / 4096 + 1e-6)
    np.testing.assert_allclose(back.log_scales, g.log_scales, atol=0.5 / 16 + 1e-6)
    alpha = lambda logit: 1 / (1 + np.exp(-logit))
    np.testing.assert_allclose(alpha(back.opacity_logits), alpha(g.opacity_logits), atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.sh0, g.sh0, atol=0.5 / 255 / 0.15 + 1e-6)
    # Same rotation (q and -q are one rotation): compare matrices.
    assert np.abs(rotation(back.quats) - rotation(g.quats)).max() < 0.01
    if degree:
        # Every SH coefficient at 8 bits (steps of 1/128), not rounded further to 5 or 4 bits.
        inside = np.abs(g.shN) < 127 / 128
        assert np.abs(back.shN - g.shN)[inside].max() <= 0.5 / 128 + 1e-6


def test_stored_in_rub_as_the_reference_converts_from_ply(tmp_path: Path) -> None:
    g = GaussianSet(
        means=np.array([[1.0, 2.0, 3.0]], np.float32),
        log_scales=np.zeros((1, 3), np.float32),
        quats=np.array([[1.0, 0.0, 0.0, 0.0]], np.float32),
        opacity_logits=np.zeros(1, np.float32),
        sh0=np.zeros((1, 1, 3), np.float32),
        shN=np.zeros((1, 0, 3), np.float32),
    )
    raw = unpacked(write_spz(g, tmp_path / "one.spz"))
    pos = np.frombuffer(raw[16:25], np.uint8).reshape(3, 3).astype(np.int32)
    fixed = pos[:, 0] | (pos[:, 1] << 8) | (pos[:, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    assert list(fixed / 4096) == [1.0, -2.0, -3.0]  # y and z negated: RDF -> RUB
    assert raw[25] == 128 and tuple(raw[26:29]) == (128, 128, 128)  # alpha 0.5, colour sh0 = 0
    assert raw[29:32] == bytes([160, 160, 160])  # log-scale 0 -> (0 + 10) * 16
    assert struct.unpack("<I", raw[32:36])[0] == 3 << 30  # identity: largest is w (index 3), rest 0


def test_rub_conversion_preserves_geometry_and_view_dependent_colour() -> None:
    g = random_set(500, 3, seed=7)
    flip = np.array([1.0, -1.0, -1.0])
    rng = np.random.default_rng(3)
    d = rng.normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    # SH seen along d in RDF == SH with flipped coefficients seen along the flipped d in RUB.
    np.testing.assert_allclose(eval_sh_rest(_flip_sh(g.shN), d * flip), eval_sh_rest(g.shN, d), atol=1e-5)
    # The stored rotation is P R P with P = diag(1, -1, -1).
    from photosplat_trainer.export.spz import _rdf_rub

    _, quats, _ = _rdf_rub(g)
    p = np.diag(flip)
    np.testing.assert_allclose(rotation(quats), p @ rotation(g.quats) @ p, atol=1e-5)


def test_large_scenes_lower_fractional_bits(tmp_path: Path) -> None:
    g = random_set(50, 0)
    g.means[0] = [5000.0, -3000.0, 10.0]
    raw = unpacked(write_spz(g, tmp_path / "big.spz"))
    assert raw[13] == 10  # 5000 * 2**10 < 2**23 <= 5000 * 2**11
    back = read_spz(tmp_path / "big.spz")
    np.testing.assert_allclose(back.means, g.means, atol=0.5 / 1024 + 1e-3)


def test_empty_set_and_antialiased_flag(tmp_path: Path) -> None:
    data = encode_spz(random_set(0, 3), antialiased=True)
    raw = gzip.decompress(data)
    assert len(raw) == 16 and raw[14] == 1
    back = decode_spz(data)
    assert len(back) == 0 and back.sh_degree == 3


def test_rejects_other_versions() -> None:
    raw = bytearray(gzip.decompress(encode_spz(random_set(2, 0))))
    raw[4] = 4
    with pytest.raises(ValueError, match="version 4"):
        decode_spz(gzip.compress(bytes(raw)))
