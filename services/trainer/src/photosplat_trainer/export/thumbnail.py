"""A small preview image of the scene (a rendered view) for listings and link previews."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_thumbnail(image: np.ndarray, path: Path, max_side: int = 512) -> Path:
    """Save an HxWx3 image (float in [0, 1] or uint8), downscaled so its longer side is <= max_side.

    The format follows the suffix (``.png``, ``.jpg``/``.jpeg``, ``.webp``).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.rint(np.nan_to_num(image.astype(np.float32)) * 255.0), 0, 255).astype(np.uint8)
    thumb = Image.fromarray(np.ascontiguousarray(image))
    # thumbnail() keeps the aspect ratio and never upscales.
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    thumb.save(path, quality=90)  # lossless formats ignore quality
    return path
