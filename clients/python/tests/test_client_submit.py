"""Resumable submissions against a running server: an interrupted upload continues the same job and
sends only what the store does not have yet."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from photosplat_client import PhotoSplatClient, SubmitOptions, SubmitRejected, submit_photos
from photosplat_client.api import ApiError
from photosplat_client.progress import UploadProgress
from photosplat_client.state import load, state_path


class Interrupted(Exception):
    pass


def stop_after(count: int, seen: list[str]) -> Callable[[str], None]:
    def hook(name: str) -> None:
        seen.append(name)
        if len(seen) == count:
            raise Interrupted(f"stopped after {name}")

    return hook


def quiet() -> UploadProgress:
    return UploadProgress(io.StringIO(), live=False)


def test_an_interrupted_submit_uploads_only_the_missing_photos(server: str, photos: Path, tmp_path: Path) -> None:
    names = sorted(p.name for p in photos.glob("*.jpg"))
    first: list[str] = []
    states = tmp_path / "states"
    with PhotoSplatClient(server) as client, pytest.raises(Interrupted):
        one_at_a_time = SubmitOptions(parallel=1)
        submit_photos(
            client, photos, state_dir=states, options=one_at_a_time, progress=quiet(), on_uploaded=stop_after(2, first)
        )
    saved = load(state_path(photos, states))
    assert saved is not None and saved.job_id is not None and not saved.submitted
    # One worker, stopped by the hook after the second photo: nothing else was started.
    done_before = [f.photo.name for f in saved.files if f.uploaded]
    assert done_before == first == names[:2]
    assert not (photos / ".photosplat-submit.json").exists()  # --state keeps the folder untouched

    # a new process: nothing but the state file carries over (the token included)
    with PhotoSplatClient(server) as client:
        result = submit_photos(client, photos, state_dir=states, options=SubmitOptions(parallel=3), progress=quiet())
        assert result.job_id == saved.job_id and result.token == saved.token
        assert sorted(result.uploaded) == sorted(set(names) - set(done_before))
        assert result.submission is not None and result.submission.image_count == 5  # the first two were kept
        status = client.status(result.job_id)
    assert status.image_count == 5 and status.status in ("PENDING", "RUNNING", "DONE")


def test_expired_upload_urls_declare_the_photos_again(server: str, photos: Path) -> None:
    notes: list[str] = []
    with PhotoSplatClient(server) as client, pytest.raises(Interrupted):
        options = SubmitOptions(parallel=1)
        submit_photos(client, photos, options=options, progress=quiet(), on_uploaded=stop_after(1, []))
    path = state_path(photos, None)
    saved = load(path)
    assert saved is not None and saved.job_id is not None
    saved.urls_expire_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    path.write_text(saved.model_dump_json())

    with PhotoSplatClient(server) as client:
        result = submit_photos(client, photos, progress=quiet(), notify=notes.append)
    assert result.job_id != saved.job_id and result.token == saved.token  # a new job, the same client
    assert len(result.uploaded) == 5 and result.submission is not None
    assert any("expired" in note for note in notes)


def test_photos_the_server_refuses_are_named(server: str, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(b"not a jpeg at all " * (i + 1))
    with PhotoSplatClient(server) as client, pytest.raises(SubmitRejected) as refused:
        submit_photos(client, folder, progress=quiet())
    assert {p.file for p in refused.value.problems} == {"p0.jpg", "p1.jpg", "p2.jpg"}
    saved = load(state_path(folder, None))
    assert saved is not None and not saved.submitted and not any(f.uploaded for f in saved.files)


def test_a_video_is_submitted_instead_of_photos(server: str, tmp_path: Path) -> None:
    from photosplat_testkit.video import render_video

    walk = render_video(tmp_path / "walk.mp4", seconds=3.2, fps=5, seed=4).path
    with PhotoSplatClient(server) as client:
        result = submit_photos(client, walk, progress=quiet())
        assert result.uploaded == ["walk.mp4"] and result.submission is not None
        status = client.status(result.job_id)
    # ingest checked the video (container, codec, length, size) at submit: it is the job's input
    assert status.status in ("PENDING", "RUNNING", "DONE", "FAILED") and status.error_stage != "validate"
    saved = load(state_path(walk, None))
    assert saved is not None and saved.submitted and [f.photo.name for f in saved.files] == ["walk.mp4"]


def test_a_callback_url_reaches_the_server_with_the_declaration(server: str, photos: Path) -> None:
    # The server refuses callbacks to private addresses (SSRF): its 400 shows the URL was sent.
    options = SubmitOptions(callback_url="http://127.0.0.1:9/hook")
    with PhotoSplatClient(server) as client, pytest.raises(ApiError) as refused:
        submit_photos(client, photos, options=options, progress=quiet())
    assert refused.value.status_code == 400 and refused.value.message.startswith("callback_url: refused")
    assert [p.rule for p in refused.value.problems] == ["callback_url"]
