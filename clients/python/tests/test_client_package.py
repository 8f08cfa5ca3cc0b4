"""The client stays a small package: importing it pulls in none of the server's code."""

from __future__ import annotations

import subprocess
import sys


def test_the_client_imports_no_server_package() -> None:
    code = "import sys, photosplat_client.cli; print(' '.join(m for m in sys.modules if m.startswith('photosplat')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert sorted({m.split(".")[0] for m in out.stdout.split()}) == ["photosplat_client"], out.stdout


def test_photosplat_hands_its_client_commands_over() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "photosplat", "download", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "usage: photosplat download" in out.stdout and "{spz,ply,splat,sog}" in out.stdout
    listed = subprocess.run([sys.executable, "-m", "photosplat", "--help"], capture_output=True, text=True, timeout=60)
    assert all(name in listed.stdout for name in ("submit", "status", "wait", "download", "up", "reconstruct"))
