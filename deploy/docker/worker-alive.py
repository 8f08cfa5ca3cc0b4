#!/usr/bin/env python
"""Exit 0 when a PhotoSplat worker (colmap, trainer) runs in this container, 1 otherwise.

The health check of the worker containers (compose's; Kubernetes asks the endpoints itself), with
the standard library only (the images have no curl):

- with a metrics port (``PHOTOSPLAT_{SERVICE}_METRICS_PORT``), it asks the worker's ``/healthz``
  there, which answers 200 only while the worker's event loop turns (photosplat_libs.observability);
- without one, it reads what the worker runtime leaves: a started worker holds an exclusive
  ``flock`` on ``{work_dir}/photosplat-{service}/proc-*/.lock`` for as long as its process lives
  (photosplat_libs.scratch), taken in ``Worker.start`` once the bus, topology and store are up. A held
  lock means the worker started and its process is alive, not that its event loop still turns.

Usage: photosplat-worker-alive SERVICE   (reads PHOTOSPLAT_{SERVICE}_METRICS_PORT, _HOST and _WORK_DIR
like the worker does)
"""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

HTTP_TIMEOUT_SECONDS = 4.0


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


def answers_healthz(host: str, port: str) -> bool:
    # A worker listening on every address is asked on the loopback one.
    host = "127.0.0.1" if host in ("", "0.0.0.0") else ("[::1]" if host == "::" else host)
    try:
        with urllib.request.urlopen(f"http://{host}:{int(port)}/healthz", timeout=HTTP_TIMEOUT_SECONDS) as response:
            return response.status == 200
    except (OSError, ValueError, urllib.error.URLError):
        return False


def worker_alive(service: str) -> bool:
    prefix = f"PHOTOSPLAT_{service.upper()}_"
    port = os.environ.get(prefix + "METRICS_PORT")
    if port:
        return answers_healthz(os.environ.get(prefix + "HOST", ""), port)
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
