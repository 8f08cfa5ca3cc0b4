"""Web exports of a trained scene: ``scene.ply``, ``scene.splat``, ``scene.spz`` and ``scene.sog``, and
their readers.

``load_export`` reads any of them back, so the trainer can render the re-loaded set on held-out views
and report the PSNR a viewer will actually show (the lossy formats quantise colours and shapes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photosplat_trainer.export.ply import read_ply, write_ply
from photosplat_trainer.export.prune import PruneResult, prune_floaters
from photosplat_trainer.export.sog import read_sog, write_sog
from photosplat_trainer.export.splat import read_splat, write_splat
from photosplat_trainer.export.spz import read_spz, write_spz
from photosplat_trainer.export.thumbnail import save_thumbnail
from photosplat_trainer.gaussians import GaussianSet

__all__ = [
    "EXPORT_FORMATS",
    "ExportResult",
    "PruneResult",
    "export_all",
    "export_one",
    "load_export",
    "prune_floaters",
    "read_ply",
    "read_sog",
    "read_splat",
    "read_spz",
    "save_thumbnail",
    "write_ply",
    "write_sog",
    "write_splat",
    "write_spz",
]


@dataclass(frozen=True)
class ExportResult:
    format: str  # "ply" | "splat" | "spz" | "sog", also the file extension
    path: Path
    bytes: int


Writer = Callable[[GaussianSet, Path], Path]
Reader = Callable[[Path], GaussianSet]

# Format -> (writer, reader); the order is the order of export_all's results.
EXPORT_FORMATS: dict[str, tuple[Writer, Reader]] = {
    "ply": (write_ply, read_ply),
    "splat": (write_splat, read_splat),
    "spz": (write_spz, read_spz),
    "sog": (write_sog, read_sog),
}


def export_all(g: GaussianSet, out_dir: Path, stem: str = "scene") -> list[ExportResult]:
    return [export_one(g, out_dir, fmt, stem) for fmt in EXPORT_FORMATS]


def export_one(g: GaussianSet, out_dir: Path, fmt: str, stem: str = "scene", *, antialiased: bool = False) -> ExportResult:
    """One file; ``antialiased`` (trained with gsplat's antialiased mode) is recorded where the format
    has a flag for it (SPZ), so that viewers render the scene as it was trained."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}.{fmt}"
    path = write_spz(g, path, antialiased=antialiased) if fmt == "spz" else EXPORT_FORMATS[fmt][0](g, path)
    return ExportResult(fmt, path, path.stat().st_size)


def load_export(path: Path) -> GaussianSet:
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"{path}: unknown export format {path.suffix!r} (expected .ply, .splat, .spz or .sog)")
    return EXPORT_FORMATS[fmt][1](path)
