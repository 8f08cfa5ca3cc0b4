#!/usr/bin/env python
"""Exit 0 when a PhotoSplat worker (colmap, trainer) runs in this container, 1 otherwise.

The probe of the worker services, which serve no HTTP. It reads what the worker runtime already
leaves: a started worker holds an exclusive ``flock`` on ``{work_dir}/photosplat-{service}/proc-*/.lock``
for as long as its process lives (photosplat_libs.scratch). It takes that lock in ``Worker.start``,
which the runner calls only after the bus, topology and store are up. So: a held lock means the
worker started and its process is alive; it does not prove that its event loop still turns.

Usage: photosplat-worker-alive SERVICE   (reads PHOTOSPLAT_{SERVICE}_WORK_DIR like the worker does)
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path


def held_by_another_process(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        # Closing releases a lock taken above: the folder's owner is gone, and the next worker to
        # start removes it.
        os.close(fd)
    return False


def worker_alive(service: str) -> bool:
    work_dir = os.environ.get(f"PHOTOSPLAT_{service.upper()}_WORK_DIR") or tempfile.gettempdir()
    base = Path(work_dir) / f"photosplat-{service}"
    try:
        folders = [p for p in base.iterdir() if p.name.startswith("proc-")]
    except OSError:
        return False
    return any(held_by_another_process(p / ".lock") for p in folders)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if worker_alive(argv[1]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
