"""The command line against a running server: submit a folder, status, wait, download."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from photosplat_client.cli import main
from photosplat_client.state import STATE_NAME


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv), prog="photosplat")
    out = capsys.readouterr()
    return code, out.out, out.err


def fields(out: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def test_submit_wait_and_download_a_scene(
    server: str, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PHOTOSPLAT_TOKEN", raising=False)
    code, out, err = run(capsys, "submit", str(photos), "--server", server, "--preset", "preview")
    assert code == 0, err
    job = fields(out)
    assert job["status"] == "PENDING (5 photos)"
    # a line per photo and the total, on stderr (not a terminal here: the finished lines only)
    assert sum("uploaded (" in line for line in err.splitlines()) == 5 and "total 5/5 photos" in err

    saved = json.loads((photos / STATE_NAME).read_text())
    assert (saved["job_id"], saved["token"], saved["submitted"]) == (job["job_id"], job["token"], True)
    assert [f["photo"]["name"] for f in saved["files"]] == sorted(p.name for p in photos.glob("*.jpg"))
    assert all(f["uploaded"] and len(f["photo"]["sha256"]) == 64 for f in saved["files"])
    assert (photos / STATE_NAME).stat().st_mode & 0o077 == 0  # it holds the token

    code, out, err = run(capsys, "status", job["job_id"], "--server", server)
    assert code == 2 and "client token is needed" in err
    monkeypatch.setenv("PHOTOSPLAT_TOKEN", job["token"])
    code, out, err = run(capsys, "status", job["job_id"], "--server", server)
    assert code == 0, err
    assert fields(out)["job_id"] == job["job_id"] and fields(out)["photos"].startswith("5")

    code, out, err = run(
        capsys, "wait", job["job_id"], "--server", server, "--interval", "0.3", "--timeout", "120"
    )
    assert code == 0, err
    state, viewer_url = out.split()
    assert state == "DONE" and viewer_url.startswith(f"{server}/v/")
    assert "RUNNING train" in err  # it followed the job through its stages

    download = ("download", job["job_id"], "--server", server, "--format")
    code, out, err = run(capsys, *download, "spz", "--out", str(tmp_path))
    assert code == 0, err
    spz = Path(out.strip())
    assert spz == tmp_path / "scene.spz" and spz.read_bytes()[:2] == b"\x1f\x8b"  # SPZ is gzip
    assert spz.read_bytes() == httpx.get(f"{server}/recon/pub/{viewer_url.rsplit('/', 1)[1]}/scene.spz").content
    code, out, err = run(capsys, *download, "ply", "--out", str(tmp_path / "s.ply"))
    assert code == 0 and (tmp_path / "s.ply").read_bytes().startswith(b"ply\n")
    assert not list(tmp_path.glob("*.part"))

    # a second run finds the job submitted: no new job, nothing uploaded again
    code, out, err = run(capsys, "submit", str(photos), "--server", server)
    assert code == 0 and fields(out)["job_id"] == job["job_id"]
    assert "already submitted" in err and "uploaded (" not in err


def test_a_refused_token_and_an_unknown_job_say_why(
    server: str, photos: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOSPLAT_TOKEN", "x" * 43)  # shaped like a token, but this server never issued it
    code, out, err = run(capsys, "submit", str(photos), "--server", server)
    assert code == 1 and "not issued by this server" in err
    code, out, err = run(capsys, "status", "00000000-0000-4000-8000-000000000000", "--server", server)
    assert code == 1 and "not found" in err
