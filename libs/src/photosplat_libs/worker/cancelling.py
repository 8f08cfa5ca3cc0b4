"""Waiting for a job's work while a cancel may arrive: the work's result, or :class:`JobCancelled`
within a grace period even if the work never checks."""

from __future__ import annotations

import asyncio
from typing import Any

from photosplat_libs.events import Envelope
from photosplat_libs.worker.context import JobCancelled, JobContext

# A cancelled job gets this long to notice (at its next check_cancelled) before it is abandoned.
CANCEL_GRACE_SECONDS = 2.0


async def until_done_or_cancelled(task: asyncio.Future[Envelope], ctx: JobContext) -> Envelope:
    """The work's result, or :class:`JobCancelled` within ``CANCEL_GRACE_SECONDS`` of a cancel even
    if the work never checks (its thread, if any, is then abandoned and stops at its next check)."""
    cancel = asyncio.create_task(ctx.cancel_requested.wait())
    first: set[asyncio.Future[Any]] = {task, cancel}
    try:
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # The consumer itself is going away (bus closed): the work must not outlive it.
        ctx.cancel()
        task.cancel()
        task.add_done_callback(_retrieve_exception)
        raise
    finally:
        cancel.cancel()
    if not task.done():
        await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)
    if not task.done():
        task.cancel()
        task.add_done_callback(_retrieve_exception)
        raise JobCancelled()
    if ctx.cancelled and (task.cancelled() or task.exception() is not None):
        raise JobCancelled()
    return task.result()


def _retrieve_exception(task: asyncio.Future[Any]) -> None:
    # Abandoned work: its outcome no longer matters, asyncio must not report it as unhandled.
    if not task.cancelled():
        task.exception()
