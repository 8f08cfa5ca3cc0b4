"""Text progress on stderr: a bar per photo being uploaded and one for the whole set.

On a terminal the bars are redrawn in place (finished photos scroll up as one line each); into a
file or pipe only the finished photos and the total are written, one line each, so logs stay short.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def bar(done: int, total: int | None) -> str:
    if not total:
        return f"[{'?' * BAR_WIDTH}] {human_bytes(done)}"
    fraction = min(1.0, done / total)
    filled = int(BAR_WIDTH * fraction)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%} {human_bytes(done)}/{human_bytes(total)}"


@dataclass
class _File:
    size: int
    sent: int = 0


class UploadProgress:
    """Thread-safe: the parallel uploads report into one instance."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._active: dict[str, _File] = {}
        self._total_bytes = self._done_bytes = self._total_files = self._done_files = 0
        self._drawn = 0
        self._last_draw = 0.0

    def begin(self, total_files: int, total_bytes: int, *, done_files: int = 0, done_bytes: int = 0) -> None:
        """The whole set; ``done_*`` is what an earlier, interrupted run already uploaded."""
        with self._lock:
            self._total_files, self._total_bytes = total_files, total_bytes
            self._done_files, self._done_bytes = done_files, done_bytes
            if done_files:
                self._emit([f"resuming: {done_files} of {total_files} photos were uploaded before"])

    def started(self, name: str, size: int) -> None:
        with self._lock:
            self._active[name] = _File(size)
            self._draw()

    def sent(self, name: str, n: int) -> None:
        with self._lock:
            self._active[name].sent += n
            self._draw(throttle=True)

    def retrying(self, name: str, reason: str) -> None:
        with self._lock:
            self._active[name].sent = 0
            self._emit([f"  {name}: {reason}; trying again"])

    def finished(self, name: str) -> None:
        with self._lock:
            f = self._active.pop(name)
            self._done_files += 1
            self._done_bytes += f.size
            line = f"  {name} uploaded ({human_bytes(f.size)})"
            # Without live bars the total rides on each finished photo's line.
            self._emit([line if self.live else f"{line}; {self._total_line()}"])

    def failed(self, name: str, reason: str) -> None:
        with self._lock:
            self._active.pop(name, None)
            self._emit([f"  {name} FAILED: {reason}"])

    def close(self) -> None:
        with self._lock:
            self._draw()
            # The last bars stay on screen: what is written next goes below them.
            self._drawn = 0

    # -- drawing (the lock is held) -------------------------------------------------------------

    def _total_line(self) -> str:
        sent = self._done_bytes + sum(f.sent for f in self._active.values())
        return f"total {self._done_files}/{self._total_files} photos {bar(sent, self._total_bytes)}"

    def _emit(self, lines: list[str]) -> None:
        """Lines that stay (a finished photo, a retry); the live bars are drawn again below them."""
        if self.live:
            self._erase()
        self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()
        self._draw()

    def _erase(self) -> None:
        if self._drawn:
            # Up to the first live line, then clear to the end of the screen.
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self, *, throttle: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if throttle and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        self._erase()
        lines = [f"  {name} {bar(f.sent, f.size)}" for name, f in self._active.items()] + [self._total_line()]
        self.stream.write("\n".join(lines) + "\n")
        self._drawn = len(lines)
        self.stream.flush()


class DownloadProgress:
    """One bar for one file: redrawn in place on a terminal, else only the final line."""

    def __init__(self, label: str, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._last = 0.0
        self._state: tuple[int, int | None] = (0, None)

    def __call__(self, done: int, total: int | None) -> None:
        self._state = (done, total)
        now = time.monotonic()
        if self.live and now - self._last >= REDRAW_SECONDS:
            self._last = now
            self.stream.write(f"\r{self.label} {bar(done, total)}")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write(("\r" if self.live else "") + f"{self.label} {bar(*self._state)}\n")
        self.stream.flush()
