"""The state file: written atomically and privately; a changed folder is noticed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from photosplat_client.models import Declaration, UploadSlot
from photosplat_client.state import STATE_NAME, Photo, SubmissionState, load, save, scan_inputs, scan_photos, state_path


def declared(photos: list[Photo]) -> SubmissionState:
    state = SubmissionState(server="http://x")
    slots = [UploadSlot(name=p.name, url=f"http://s3/{p.name}") for p in photos]
    expires = datetime.now(timezone.utc) + timedelta(minutes=15)
    state.declared(Declaration(job_id=uuid.uuid4(), pub_key="k", token="t", expires_at=expires, uploads=slots), photos)
    return state


def test_scan_takes_photos_only_sorted_with_their_hashes(tmp_path: Path) -> None:
    (tmp_path / "b.JPG").write_bytes(b"bb")
    (tmp_path / "a.png").write_bytes(b"a")
    (tmp_path / "notes.txt").write_bytes(b"x")
    (tmp_path / "sub.jpg").mkdir()
    photos = scan_photos(tmp_path)
    assert [(p.name, p.size, p.content_type) for p in photos] == [("a.png", 1, "image/png"), ("b.JPG", 2, "image/jpeg")]
    assert photos[0].sha256 == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


def test_state_round_trips_privately_and_atomically(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"a")
    state = declared(scan_photos(tmp_path))
    state.files[0].uploaded = True
    path = state_path(tmp_path, None)
    save(state, path)
    assert path == tmp_path / STATE_NAME and path.stat().st_mode & 0o777 == 0o600
    assert load(path) == state
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_NAME, "a.jpg"]  # no temporary file left


def test_a_state_dir_names_each_folder_apart(tmp_path: Path) -> None:
    one = state_path(tmp_path / "x" / "photos", tmp_path / "s")
    two = state_path(tmp_path / "y" / "photos", tmp_path / "s")
    assert one.parent == two.parent == tmp_path / "s" and one != two


def test_a_photo_changed_after_its_upload_is_uploaded_again(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(name.encode())
    state = declared(scan_photos(tmp_path))
    for record in state.files:
        record.uploaded = True
    (tmp_path / "b.jpg").write_bytes(b"B.jpg")  # same size, other bytes: its slot still fits
    assert state.reconcile(scan_photos(tmp_path))
    assert [f.photo.name for f in state.missing()] == ["b.jpg"]
    (tmp_path / "c.jpg").write_bytes(b"c")  # a photo more: the declared job cannot take it
    assert not state.reconcile(scan_photos(tmp_path))


def test_urls_expire() -> None:
    state = declared([])
    assert not state.urls_expired()
    assert state.urls_expired(datetime.now(timezone.utc) + timedelta(hours=1))
    assert SubmissionState(server="http://x").urls_expired()


def test_a_video_is_sent_alone_with_its_state_beside_it(tmp_path: Path) -> None:
    (tmp_path / "walk.MP4").write_bytes(b"vv")
    (tmp_path / "a.jpg").write_bytes(b"a")
    folder, files = scan_inputs(tmp_path / "walk.MP4")
    assert folder == tmp_path and [(f.name, f.size, f.content_type) for f in files] == [("walk.MP4", 2, "video/mp4")]
    assert state_path(tmp_path / "walk.MP4", None) == tmp_path / ".photosplat-submit-walk.MP4.json"
    assert state_path(tmp_path / "walk.MP4", None) != state_path(tmp_path, None)
    assert state_path(tmp_path / "walk.MP4", tmp_path / "s") != state_path(tmp_path, tmp_path / "s")
    assert scan_inputs(tmp_path) == (tmp_path, scan_photos(tmp_path))
