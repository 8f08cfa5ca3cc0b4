from pathlib import Path

import numpy as np
import pytest
from photosplat_trainer.export.thumbnail import save_thumbnail
from PIL import Image


def test_float_image_is_downscaled_keeping_aspect(tmp_path: Path) -> None:
    image = np.zeros((300, 1200, 3), np.float32)
    image[..., 0] = 1.0  # red
    path = save_thumbnail(image, tmp_path / "thumb.png", max_side=512)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (512, 128)
        assert im.getpixel((10, 10)) == (255, 0, 0)


def test_uint8_jpeg_small_image_is_not_upscaled(tmp_path: Path) -> None:
    image = np.full((40, 30, 3), 200, np.uint8)
    path = save_thumbnail(image, tmp_path / "nested" / "thumb.jpg")
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (30, 40)


def test_rejects_non_rgb(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        save_thumbnail(np.zeros((8, 8)), tmp_path / "x.png")
