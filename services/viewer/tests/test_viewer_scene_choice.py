"""Which file the 3D viewer loads (static/scene_choice.js, run in Node): the smaller of SOG and SPZ,
``.splat`` only when neither exists, the PLY only when nothing else does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from photosplat_libs.db.models import JobStatus

MODULE = Path(__file__).parents[1] / "src" / "photosplat_viewer" / "static" / "scene_choice.js"
BUDGET = 500_000


def choose(tmp_path: Path, cases: list[dict]) -> list[dict | None]:
    # Node reads a .js file outside an ES-module package as CommonJS: the copy is named .mjs.
    module = tmp_path / "scene_choice.mjs"
    shutil.copyfile(MODULE, module)
    script = (
        f"import {{ choose, sparkFileType }} from {json.dumps(module.as_uri())};\n"
        f"const cases = {json.dumps(cases)};\n"
        "console.log(JSON.stringify(cases.map((c) => {\n"
        f"  const choice = choose(c.files, c.gaussians ?? null, {BUDGET}, c.wanted ?? null);\n"
        "  if (!choice) return null;\n"
        "  return { format: choice.file.format, splats: choice.splats, type: sparkFileType(choice.file.format) };\n"
        "})));\n"
    )
    command = ["node", "--input-type=module", "-e", script]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def files(**sizes: int | None) -> list[dict]:
    return [{"format": fmt, "filename": f"scene.{fmt}", "bytes": size} for fmt, size in sizes.items()]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
def test_the_smallest_web_format_and_never_splat_or_ply_beside_one(tmp_path: Path) -> None:
    cases = [
        {"files": files(ply=2480, splat=320, spz=150, sog=120)},
        {"files": files(ply=2480, splat=320, spz=150, sog=180)},
        # Over a phone's budget, still the SOG or SPZ whole: .splat is for old viewers only.
        {"files": files(splat=32_000_000, spz=15_000_000, sog=12_000_000), "gaussians": 1_000_000},
        {"files": files(ply=2480, splat=320, sog=200)},
        {"files": files(splat=320, spz=None, sog=None)},
        {"files": files(spz=None, sog=100)},
        # Old scenes: .splat, cut to the budget when over it; the PLY when it is all there is.
        {"files": files(ply=2480, splat=32_000_000), "gaussians": 1_000_000},
        {"files": files(ply=2480, splat=320), "gaussians": 10},
        {"files": files(ply=2480)},
        {"files": []},
        # ?format= wins when the scene has it, and is ignored when not.
        {"files": files(ply=2480, splat=320, spz=150, sog=120), "wanted": "splat"},
        {"files": files(spz=150, sog=120), "wanted": "ksplat"},
    ]
    got = [c and (c["format"], c["splats"]) for c in choose(tmp_path, cases)]
    assert got == [
        ("sog", None),
        ("spz", None),
        ("sog", None),
        ("sog", None),
        ("spz", None),
        ("sog", None),
        ("splat", BUDGET),
        ("splat", None),
        ("ply", None),
        None,
        ("splat", None),
        ("sog", None),
    ]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node")
def test_spark_is_told_a_sog_is_a_zipped_bundle(tmp_path: Path) -> None:
    # Spark 2.2 answers "Invalid file type: sog": its name for a .sog is "pcsogszip".
    cases = [{"files": files(sog=1)}, {"files": files(spz=1)}, {"files": files(ply=1)}]
    types = [c["type"] for c in choose(tmp_path, cases)]
    assert types == ["pcsogszip", "spz", "ply"]


async def test_the_page_offers_the_sog_to_the_viewer(viewer) -> None:
    pub_key = await viewer.add_job(
        JobStatus.DONE,
        files={"sog": ("scene.sog", b"PK" * 50), "spz": ("scene.spz", b"z" * 150)},
        file_sizes={"sog": 100, "spz": 150},
        gaussian_count=10,
    )
    page = (await viewer.client.get(f"/v/{pub_key}")).text
    scene = json.loads(page.split('<script type="application/json" id="scene-data">', 1)[1].split("</script>", 1)[0])
    assert {(f["format"], f["bytes"]) for f in scene["files"]} == {("sog", 100), ("spz", 150)}
    response = await viewer.client.get(f"/recon/pub/{pub_key}/scene.sog")
    assert response.status_code == 200 and response.headers["content-type"] == "application/octet-stream"
