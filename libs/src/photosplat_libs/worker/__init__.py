"""The runtime of the worker services (colmap, trainer): it takes one job at a time from a work
queue and applies the reliability rules of docs/architecture.md §5 around a plain work function.

A work function gets the trigger event and a :class:`JobContext` and returns the result event
(``SfmDone``, ``TrainingDone``); the runtime stores that result, then publishes it, then acks.
Heavy code runs in a thread (``asyncio.to_thread``) and talks to the runtime only through the
context, whose ``progress``/``log``/``check_cancelled`` are safe to call from any thread.

Failures: :class:`UserError` (the photos cannot give a result) and any :class:`WorkError` with
``retryable=False`` fail the job at once; any other exception is retried through the bus's
redelivery until the queue's ``delivery_limit``; every failure is published as ``StageFailed``.
A delivery lost while the job was progressing does not count against that limit (see
:mod:`photosplat_libs.deliveries`).

Modules: :mod:`.runtime` (:class:`Worker`, the consume loop), :mod:`.context` (:class:`JobContext`),
:mod:`.reporter` (progress and log lines batched onto the bus), :mod:`.signals` (SIGTERM kept ours).
"""

from photosplat_libs.errors import UserError, WorkError
from photosplat_libs.worker.context import JobCancelled, JobContext, WorkFn, expecting
from photosplat_libs.worker.runtime import Worker, default_worker_name

__all__ = [
    "JobCancelled",
    "JobContext",
    "UserError",
    "WorkError",
    "WorkFn",
    "Worker",
    "default_worker_name",
    "expecting",
]
