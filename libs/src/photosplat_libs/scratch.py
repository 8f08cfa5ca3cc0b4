"""The work folders of a worker's jobs, and the removal of those a killed worker left behind.

A worker removes a job's folder when the job ends, but ``kill -9`` (or a crash, or the OOM killer)
skips every cleanup, and SfM and training folders are large. Several workers may share one root,
so a worker must not remove a folder only because it did not create it. Each process therefore
works inside its own folder, ``{root}/photosplat-{service}/proc-*``, and holds an exclusive
``flock`` on the ``.lock`` file in it for as long as it lives; the kernel releases that lock
however the process ends. At start a worker removes every sibling folder whose lock it can take:
its owner is gone. (Process ids are not used: they are reused, and mean nothing across the
containers that may share a volume.)
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_OWNED_PREFIX = "proc-"
# A folder is created under this prefix and renamed once locked, so that no other worker can see
# it unlocked; one left by a process killed in between is removed once it is this old.
_NEW_PREFIX = ".new-"
_NEW_MAX_AGE_SECONDS = 600.0


class ScratchRoot:
    def __init__(self, root: Path | None, service: str) -> None:
        self.base = Path(root or tempfile.gettempdir()) / f"photosplat-{service}"
        self._mine: Path | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Remove what dead workers left, then create and lock this process's folder."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.remove_stale()
        fresh = Path(tempfile.mkdtemp(prefix=_NEW_PREFIX, dir=self.base))
        fd = os.open(fresh / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        mine = self.base / (_OWNED_PREFIX + fresh.name[len(_NEW_PREFIX) :])
        fresh.rename(mine)
        self._mine, self._lock_fd = mine, fd

    def job_dir(self, job_id: uuid.UUID) -> Path:
        if self._mine is None:
            raise RuntimeError("the scratch folder is not open (Worker.start was not called)")
        return Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=self._mine))

    def remove(self, job_dir: Path) -> None:
        shutil.rmtree(job_dir, ignore_errors=True)

    def close(self) -> None:
        if self._mine is not None:
            shutil.rmtree(self._mine, ignore_errors=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._mine = self._lock_fd = None

    def remove_stale(self) -> int:
        """Remove the folders of workers that no longer run; returns how many went."""
        removed = 0
        for entry in self.base.iterdir():
            if entry == self._mine or not entry.is_dir():
                continue
            try:
                if entry.name.startswith(_NEW_PREFIX):
                    stale = time.time() - entry.stat().st_mtime > _NEW_MAX_AGE_SECONDS
                else:
                    stale = _owner_is_gone(entry)
            except FileNotFoundError:
                continue  # another worker's clean-up removed it meanwhile
            if stale:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
                log.info("removed the scratch folder %s of a worker that no longer runs", entry)
        return removed


def _owner_is_gone(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        if folder.exists():
            return True  # no lock at all: half removed by another worker's clean-up
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        # Closing releases the lock taken above; the folder is removed right after, and another
        # worker's clean-up that takes the lock meanwhile would only remove it as well.
        os.close(fd)
    return True
