"""Python's SIGTERM/SIGINT handlers kept in place while native libraries run beside them."""

from __future__ import annotations

import asyncio
import signal
import threading

# How often the worker puts Python's SIGTERM/SIGINT handlers back (see rearm_signal_handlers).
SIGNAL_REARM_SECONDS = 1.0


def rearm_signal_handlers() -> None:
    """Put Python's own SIGTERM/SIGINT handlers back at the C level. Native libraries install
    theirs behind Python's back: importing pycolmap installs glog's failure handler, which on
    SIGTERM prints a stack and kills the process, skipping the graceful stop (the job's scratch
    folder stays, its message is not handed back cleanly). ``signal.getsignal`` still reports
    Python's handler then, so it is simply installed again."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals belong to the main thread (the runner's loop runs there)
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if callable(handler):
            signal.signal(sig, handler)


async def keep_signal_handlers() -> None:
    """A library can take over SIGTERM in the middle of a job (pycolmap on first import), so the
    handlers are put back every second, not only between jobs."""
    while True:
        rearm_signal_handlers()
        await asyncio.sleep(SIGNAL_REARM_SECONDS)
