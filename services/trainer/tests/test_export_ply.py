from pathlib import Path

import numpy as np
import pytest
from photosplat_trainer.export import ExportResult, export_all, load_export
from photosplat_trainer.export.ply import ply_property_names, read_ply, write_ply
from photosplat_trainer.gaussians import GaussianSet
from plyfile import PlyData, PlyElement


def random_set(n: int, degree: int, seed: int = 0) -> GaussianSet:
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2 - 1
    f = np.float32
    return GaussianSet(
        means=rng.normal(0, 2, (n, 3)).astype(f),
        log_scales=rng.uniform(-6, 0, (n, 3)).astype(f),
        quats=rng.normal(size=(n, 4)).astype(f),
        opacity_logits=rng.normal(0, 3, n).astype(f),
        sh0=rng.normal(0, 1, (n, 1, 3)).astype(f),
        shN=rng.normal(0, 0.2, (n, k, 3)).astype(f),
    )


def assert_same(a: GaussianSet, b: GaussianSet) -> None:
    for name in ("means", "log_scales", "quats", "opacity_logits", "sh0", "shN"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_is_exact(tmp_path: Path, degree: int) -> None:
    g = random_set(257, degree)
    back = read_ply(write_ply(g, tmp_path / "scene.ply"))
    assert back.sh_degree == degree
    assert_same(g, back)


def test_ply_header_is_the_reference_layout(tmp_path: Path) -> None:
    g = random_set(5, 3)
    path = write_ply(g, tmp_path / "scene.ply")
    header = path.read_bytes().split(b"end_header\n")[0].decode().splitlines()
    assert header[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 5"]
    props = [line for line in header if line.startswith("property")]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(45)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert props == [f"property float {n}" for n in names]
    assert ply_property_names(3) == names
    raw = path.read_bytes()
    body = raw[raw.index(b"end_header\n") + len(b"end_header\n") :]
    assert len(body) == 5 * 62 * 4  # 62 float32 per vertex, nothing else
    np.testing.assert_array_equal(np.frombuffer(body, "<f4").reshape(5, 62)[:, :3], g.means)


def test_f_rest_is_channel_major(tmp_path: Path) -> None:
    g = random_set(3, 1)
    v = PlyData.read(str(write_ply(g, tmp_path / "s.ply")))["vertex"]
    # Reference: f_rest_{c*K + k} holds coefficient k of channel c (K = 3 for degree 1).
    for c in range(3):
        for k in range(3):
            np.testing.assert_array_equal(v[f"f_rest_{c * 3 + k}"], g.shN[:, k, c])
    np.testing.assert_array_equal(v["rot_0"], g.quats[:, 0])  # w first
    np.testing.assert_array_equal(v["nx"], 0.0)


def test_reads_a_reference_style_ply_written_by_plyfile(tmp_path: Path) -> None:
    # Built the way the INRIA trainer builds it (its own dtype, plyfile defaults), not by write_ply.
    n, k = 4, 15
    rng = np.random.default_rng(1)
    dtype = [(name, "f4") for name in ply_property_names(3)]
    data = np.zeros(n, dtype=dtype)
    for name, _ in dtype:
        data[name] = rng.normal(size=n)
    PlyData([PlyElement.describe(data, "vertex")]).write(str(tmp_path / "ref.ply"))
    g = read_ply(tmp_path / "ref.ply")
    assert len(g) == n and g.sh_degree == 3
    np.testing.assert_array_equal(g.means[:, 1], data["y"])
    np.testing.assert_array_equal(g.quats[:, 0], data["rot_0"])
    np.testing.assert_array_equal(g.shN[:, 4, 2], data[f"f_rest_{2 * k + 4}"])
    np.testing.assert_array_equal(g.sh0[:, 0, 1], data["f_dc_1"])


def test_empty_set(tmp_path: Path) -> None:
    g = random_set(0, 3)
    back = read_ply(write_ply(g, tmp_path / "empty.ply"))
    assert len(back) == 0 and back.sh_degree == 3


def test_export_all_writes_every_format_and_loads_them_back(tmp_path: Path) -> None:
    g = random_set(100, 3)
    results = export_all(g, tmp_path / "out")
    assert [r.format for r in results] == ["ply", "splat", "spz", "sog"]
    assert [r.path.name for r in results] == ["scene.ply", "scene.splat", "scene.spz", "scene.sog"]
    for r in results:
        assert isinstance(r, ExportResult) and r.bytes == r.path.stat().st_size > 0
        back = load_export(r.path)
        assert len(back) == len(g)
    assert load_export(results[0].path).sh_degree == 3
    assert load_export(results[1].path).sh_degree == 0
    assert load_export(results[2].path).sh_degree == 3
    assert load_export(results[3].path).sh_degree == 3
    sizes = {r.format: r.bytes for r in results}
    assert sizes["splat"] == 32 * len(g)
    # With SH degree 3 SPZ keeps 45 more bytes per Gaussian than .splat, so only PLY is bigger.
    assert sizes["splat"] < sizes["ply"] and sizes["spz"] < sizes["ply"] / 3
    with pytest.raises(ValueError):
        load_export(tmp_path / "scene.obj")
