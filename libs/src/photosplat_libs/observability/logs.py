"""Logging: human-readable lines (the default, and `photosplat up`'s) or one JSON object per line.

Every line carries the job it is about when one is known: the bus's dispatch sets ``job_id`` and
``attempt`` for each message it hands to a handler, the worker runtime adds its ``stage``. They are
context variables, so a job's log lines keep them in tasks it starts and in threads run through
``asyncio.to_thread``, and lose them when the message is done.

The JSON formatter is the standard library's ``logging.Formatter`` and ``json``: the line has a fixed,
short set of fields, which needs no third-party logging library.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Literal

LogFormat = Literal["text", "json"]
# Read when a service's own setting (PHOTOSPLAT_NAME_LOG_FORMAT) is not given.
LOG_FORMAT_ENV = "PHOTOSPLAT_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(job)s"

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("photosplat_job_id", default=None)
_stage: contextvars.ContextVar[str | None] = contextvars.ContextVar("photosplat_stage", default=None)
_attempt: contextvars.ContextVar[int | None] = contextvars.ContextVar("photosplat_attempt", default=None)


@contextmanager
def log_context(*, job_id: object = None, stage: object = None, attempt: int | None = None) -> Iterator[None]:
    """Tag every log line within the block (and tasks or threads it starts) with the job; a value
    left as None keeps what an outer block set."""
    tokens: list[tuple[contextvars.ContextVar[Any], contextvars.Token[Any]]] = []
    for var, value in ((_job_id, job_id), (_stage, stage), (_attempt, attempt)):
        if value is not None:
            text = value if isinstance(value, int) else str(getattr(value, "value", value))
            tokens.append((var, var.set(text)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def job_fields() -> dict[str, Any]:
    """The job context of the current task or thread (only what is known)."""
    fields = {"job_id": _job_id.get(), "stage": _stage.get(), "attempt": _attempt.get()}
    return {k: v for k, v in fields.items() if v is not None}


class JobContextFilter(logging.Filter):
    """Puts the job context on each record (attributes ``job_fields`` and ``job``, the text suffix),
    on the handler, so records of every logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = job_fields()
        record.job_fields = fields
        record.job = (" [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]") if fields else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the job context when
    known, and the traceback of an exception as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "job_fields", None) or job_fields())
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def resolve_format(configured: str | None) -> LogFormat:
    value = (configured or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if value not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {value!r} (setting log_format / {LOG_FORMAT_ENV})")
    return "json" if value == "json" else "text"


def configure_logging(level: str, log_format: str | None = None) -> LogFormat:
    """Root logging for a service process; returns the format used. ``log_format`` None reads
    ``PHOTOSPLAT_LOG_FORMAT``, else text."""
    chosen = resolve_format(log_format)
    handler = logging.StreamHandler()
    handler.addFilter(JobContextFilter())
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # Alembic narrates every plugin it loads at INFO; a migration that runs is still logged by us.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return chosen
