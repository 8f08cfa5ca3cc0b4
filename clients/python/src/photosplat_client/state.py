"""The state file of one submission: what a re-run needs to continue the same job and upload only
the photos the store does not have yet.

It holds the client token (the credential for the job), so it is written readable by its owner only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from photosplat_client.models import Declaration, UploadSlot

STATE_NAME = ".photosplat-submit.json"
# What ingest accepts (libs' media.PHOTO_TYPES); the server checks again, this only picks the files.
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
# A video is sent alone, instead of photos (libs' media.VIDEO_TYPES).
VIDEO_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime"}
HASH_CHUNK_BYTES = 1024 * 1024


class Photo(BaseModel):
    """A photo of the folder as it is now (or the one video sent instead)."""

    model_config = ConfigDict(frozen=True)

    name: str
    size: int
    sha256: str

    @property
    def content_type(self) -> str:
        suffix = Path(self.name).suffix.lower()
        return PHOTO_TYPES.get(suffix) or VIDEO_TYPES[suffix]


class FileRecord(BaseModel):
    """One declared photo: its presigned slot and whether the store has it (with the size and hash
    of what was sent)."""

    photo: Photo
    slot: UploadSlot
    uploaded: bool = False


class SubmissionState(BaseModel):
    version: int = 1
    server: str
    # Sent again when the declaration is retried (a crash before its answer was saved): the server
    # then answers the same job instead of creating a second one.
    declare_key: str = Field(default_factory=lambda: str(uuid.uuid4()))
    submit_key: str = Field(default_factory=lambda: str(uuid.uuid4()))
    preset: str = "standard"
    original_resolution: bool = False
    callback_url: str | None = None
    webhook_secret: str | None = None
    job_id: uuid.UUID | None = None
    token: str | None = None
    pub_key: str | None = None
    urls_expire_at: datetime | None = None
    files: list[FileRecord] = Field(default_factory=list)
    submitted: bool = False

    def declared(self, declaration: Declaration, photos: list[Photo]) -> None:
        self.job_id, self.token, self.pub_key = declaration.job_id, declaration.token, declaration.pub_key
        self.urls_expire_at = declaration.expires_at
        self.webhook_secret = declaration.webhook_secret
        self.files = [FileRecord(photo=p, slot=s) for p, s in zip(photos, declaration.uploads, strict=True)]

    def missing(self) -> list[FileRecord]:
        return [f for f in self.files if not f.uploaded]

    def urls_expired(self, now: datetime | None = None) -> bool:
        if self.urls_expire_at is None:
            return True
        return (now or datetime.now(timezone.utc)) >= self.urls_expire_at

    def reconcile(self, photos: list[Photo]) -> bool:
        """Take the folder as it is now. A photo whose content changed since it was uploaded is to
        be uploaded again (its slot still fits: same size). False when names or sizes differ from
        the declaration: the declared job cannot take these photos."""
        if [(f.photo.name, f.photo.size) for f in self.files] != [(p.name, p.size) for p in photos]:
            return False
        for record, photo in zip(self.files, photos, strict=True):
            if record.photo.sha256 != photo.sha256:
                record.photo, record.uploaded = photo, False
        return True


def state_path(source: Path, state_dir: Path | None) -> Path:
    """Beside the photos (or the video), or in ``state_dir`` under a name of the folder's (or the
    video's) absolute path: one state directory can then serve many submissions."""
    if state_dir is None:
        return source.parent / f".photosplat-submit-{source.name}.json" if is_video(source) else source / STATE_NAME
    tag = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    return state_dir / f"submit-{source.resolve().name}-{tag}.json"


def is_video(source: Path) -> bool:
    return source.is_file() and source.suffix.lower() in VIDEO_TYPES


def load(path: Path) -> SubmissionState | None:
    return SubmissionState.model_validate_json(path.read_bytes()) if path.exists() else None


def save(state: SubmissionState, path: Path) -> None:
    """Atomically: a crash mid-write leaves the previous state, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(state.model_dump_json(indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def scan_photos(photos_dir: Path) -> list[Photo]:
    """The photos directly in ``photos_dir`` (by extension), sorted by name, with size and SHA-256."""
    paths = sorted(p for p in photos_dir.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_TYPES)
    return [_scanned(p) for p in paths]


def scan_inputs(source: Path) -> tuple[Path, list[Photo]]:
    """The folder the files are read from, and the files: a folder's photos, or one video alone."""
    if is_video(source):
        return source.parent, [_scanned(source)]
    return source, scan_photos(source)


def _scanned(path: Path) -> Photo:
    return Photo(name=path.name, size=path.stat().st_size, sha256=_sha256(path))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
