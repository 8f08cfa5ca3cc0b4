"""What the SfM stage leaves in the object store (docs/architecture.md §4):

- ``jobs/{id}/sfm/sparse/``: the raw model, binary COLMAP, at working resolution;
- ``jobs/{id}/sfm/undistorted/``: ``images/`` and ``sparse/{cameras,images,points3D}.bin`` with
  PINHOLE cameras, which is what training reads (``SfmDone.sparse_key`` points here).
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

from photosplat_libs import keys
from photosplat_libs.media import media_type
from photosplat_libs.store import ObjectStore

from photosplat_colmap.types import SfmResult

_PARALLEL_UPLOADS = 8


def undistorted_prefix(job_id: uuid.UUID) -> str:
    return keys.sfm(job_id, "undistorted/")


def tidy_undistorted(folder: Path) -> None:
    """The undistorter also writes dense-stereo scaffolding (``stereo/``, scripts): not ours to ship."""
    for entry in folder.iterdir():
        if entry.name not in ("images", "sparse"):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


async def upload(store: ObjectStore, job_id: uuid.UUID, result: SfmResult) -> str:
    """Upload the model and the training dataset; returns the prefix training reads."""
    files = [(keys.sfm(job_id, f"sparse/{p.name}"), p) for p in _files(result.sparse_dir)]
    prefix = undistorted_prefix(job_id)
    files += [(prefix + p.relative_to(result.undistorted_dir).as_posix(), p) for p in _files(result.undistorted_dir)]
    limit = asyncio.Semaphore(_PARALLEL_UPLOADS)

    async def put(key: str, path: Path) -> None:
        async with limit:
            await store.put_file(key, str(path), media_type(path.name))

    await asyncio.gather(*(put(key, path) for key, path in files))
    return prefix


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())
