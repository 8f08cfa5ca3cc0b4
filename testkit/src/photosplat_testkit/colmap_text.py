"""A synthetic scene's true cameras as a user's COLMAP text model (what ``colmap model_converter
--output_type TXT`` writes: cameras, images with their keypoints, points with their tracks, and rigs
and frames from COLMAP 3.12 on), and its photos as JPEG uploads named after the model's images."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from PIL import Image

from photosplat_testkit.synthetic import SyntheticScene, write_colmap_dataset

Field = tuple[str, tuple[str, bytes, str]]


def colmap_text_model(scene: SyntheticScene) -> dict[str, bytes]:
    """File name -> bytes of the scene's model (images named ``scene.names``), written by pycolmap."""
    import pycolmap

    with tempfile.TemporaryDirectory(prefix="photosplat-model-") as folder:
        sparse = write_colmap_dataset(scene, Path(folder) / "dataset") / "sparse"
        text = Path(folder) / "text"
        text.mkdir()
        pycolmap.Reconstruction(str(sparse)).write_text(str(text))
        return {path.name: path.read_bytes() for path in sorted(text.iterdir())}


def photo_uploads(scene: SyntheticScene) -> list[Field]:
    """The views as JPEG ``files`` fields named ``scene.names``."""
    files = []
    for name, pixels in zip(scene.names, scene.images, strict=True):
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=95)
        files.append(("files", (name, out.getvalue(), "image/jpeg")))
    return files


def model_uploads(model: dict[str, bytes]) -> list[Field]:
    """The model's files as ``poses`` fields."""
    return [("poses", (name, data, "text/plain")) for name, data in model.items()]
