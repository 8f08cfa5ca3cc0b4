"""Where the viewer finds the front-end packages: the setting, else the working folder, never a
path counted from where the package is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from photosplat_viewer.settings import ViewerSettings


def test_assets_come_from_the_working_folder_or_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHOTOSPLAT_VIEWER_ASSETS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert ViewerSettings().assets_dir is None  # nothing here, and nothing guessed elsewhere
    (tmp_path / "web" / "node_modules").mkdir(parents=True)
    assert ViewerSettings().assets_dir == tmp_path / "web" / "node_modules"
    monkeypatch.setenv("PHOTOSPLAT_VIEWER_ASSETS_DIR", str(tmp_path / "elsewhere"))
    assert ViewerSettings().assets_dir == tmp_path / "elsewhere"
