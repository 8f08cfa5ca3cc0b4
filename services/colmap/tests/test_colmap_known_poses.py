"""Known poses as a service job stores them: a COLMAP text model fetched from the store (the folder
key ingest gives, ending in ``/``) is read with its cameras fitted to the photos it took."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from photosplat_colmap import known_poses
from photosplat_libs.store.folder import FolderStore
from photosplat_testkit.colmap_text import colmap_text_model
from photosplat_testkit.synthetic import render_scene


def _doubled(cameras: bytes) -> bytes:
    """cameras.txt of the same PINHOLE cameras for photos twice the size (a model of the originals)."""
    rows = []
    for line in cameras.decode().splitlines():
        if line.startswith("#"):
            rows.append(line)
            continue
        camera_id, model, width, height, *params = line.split()
        sizes = [str(2 * int(width)), str(2 * int(height))]
        rows.append(" ".join([camera_id, model, *sizes, *(str(2 * float(v)) for v in params)]))
    return ("\n".join(rows) + "\n").encode()


async def test_a_stored_model_of_larger_originals_is_fetched_and_fitted_to_the_photos(tmp_path: Path) -> None:
    scene = render_scene(n_views=4, width=160, height=120, n_points=600, seed=3)
    written = colmap_text_model(scene)
    store = FolderStore(tmp_path / "objects", public_url="http://store.test", signing_secret="test-secret")
    await store.ensure_ready()
    for name in ("images.txt", "points3D.txt"):
        await store.put(f"jobs/1/poses/{name}", written[name], "text/plain")
    await store.put("jobs/1/poses/cameras.txt", _doubled(written["cameras.txt"]), "text/plain")

    folder = await known_poses.fetch(store, "jobs/1/poses/", tmp_path / "poses")
    model = known_poses.load(folder, {name: (160, 120) for name in scene.names})

    assert model.num_reg_images() == 4 and model.num_points3D() > 100
    for image in model.images.values():
        camera = model.cameras[image.camera_id]
        assert (camera.width, camera.height) == (160, 120)
        assert np.allclose(camera.calibration_matrix(), scene.K)
        assert np.allclose(image.cam_from_world().matrix(), scene.cams_from_world[scene.names.index(image.name)])
