"""How far the deliveries of one work request got, kept in the store so that the next delivery
can tell a worker lost while its job was progressing from a job that stops at the same point
every time.

The broker counts every delivery that ends without an ack (``x-delivery-limit``): a killed
worker, but also a live worker whose connection dropped. Counting those alike let a job that
checkpointed steadily run out of deliveries. The rule: a redelivery whose earlier deliveries got
further than where the latest one started is not a crash of the job, so the worker puts the
request back as a fresh message (a new delivery count) instead of running it on the old one.
A job that stops without getting further uses the queue's deliveries as before, and
``MAX_RENEWALS`` bounds how often one attempt may start afresh.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass

from photosplat_libs import keys
from photosplat_libs.store import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

# Progress is written at most this often (and when the delivery ends); a kill loses at most this much.
MARK_INTERVAL_SECONDS = 5.0
MAX_RENEWALS = 10
# Fractions are floats from step / steps: anything below this is not progress.
_MIN_GAIN = 1e-6


@dataclass
class ProgressLedger:
    attempt: int
    # The furthest fraction any delivery of this attempt reported.
    best: float = 0.0
    # ``best`` when the latest delivery started.
    started_from: float = 0.0
    # How often this attempt was put back as a fresh message.
    renewals: int = 0

    def progressed(self) -> bool:
        """Whether the latest delivery got further than any before it."""
        return self.best > self.started_from + _MIN_GAIN

    def may_renew(self) -> bool:
        return self.progressed() and self.renewals < MAX_RENEWALS


async def load(store: ObjectStore, job_id: uuid.UUID, stage: str, attempt: int) -> ProgressLedger:
    """The ledger of this attempt; a fresh one when there is none (or only an older attempt's)."""
    try:
        data = json.loads(await store.get(keys.stage_progress(job_id, stage)))
        ledger = ProgressLedger(**data)
    except ObjectNotFound:
        return ProgressLedger(attempt)
    except (ValueError, TypeError):
        log.warning("ignoring the unreadable progress ledger of job %s", job_id, exc_info=True)
        return ProgressLedger(attempt)
    return ledger if ledger.attempt == attempt else ProgressLedger(attempt)


async def save(store: ObjectStore, job_id: uuid.UUID, stage: str, ledger: ProgressLedger) -> None:
    await store.put(keys.stage_progress(job_id, stage), json.dumps(asdict(ledger)).encode(), "application/json")


class ProgressMarks:
    """Keeps the ledger's ``best`` up to date while a delivery runs (throttled store writes)."""

    def __init__(self, store: ObjectStore, job_id: uuid.UUID, stage: str, ledger: ProgressLedger) -> None:
        self._store, self._job_id, self._stage, self.ledger = store, job_id, stage, ledger
        self._dirty = False
        # The first progress is written at once: a delivery lost early still shows it got somewhere.
        self._saved_at = float("-inf")

    async def note(self, fraction: float, *, force: bool) -> None:
        if fraction > self.ledger.best:
            self.ledger.best = fraction
            self._dirty = True
        now = time.monotonic()
        if not self._dirty or (not force and now - self._saved_at < MARK_INTERVAL_SECONDS):
            return
        try:
            await save(self._store, self._job_id, self._stage, self.ledger)
        except Exception:
            # Only the accounting suffers (a later loss may count as a crash): the job goes on.
            log.warning("could not record the progress of job %s", self._job_id, exc_info=True)
            return
        self._dirty, self._saved_at = False, now
