"""The body of every 4xx answer of the HTTP API, as a model for the OpenAPI description.

The services answer refusals through FastAPI's ``HTTPException``: ``{"detail": ...}``, where
``detail`` is a sentence, or for a refused upload the files with the rule each broke, or for a limit
its figures, or (malformed parameters, 422) FastAPI's list of fields. The routes declare
``responses=error_responses(...)`` so clients and the merged ``/docs`` see that shape; the models
only describe, the answers are built where the refusal happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FileProblem(BaseModel):
    """One file (or the request as a whole) and the rule it broke."""

    file: str | None = Field(description="The file's name as sent, or a form field; null: the request as a whole.")
    rule: str = Field(description="The rule, e.g. `format`, `max_bytes`, `min_side`, `duplicate`, `poses`.")
    message: str = Field(description="What was wrong and the limit, for a person.")


class RejectedFiles(BaseModel):
    """An upload refused: every bad file is named, none was kept."""

    message: str
    errors: list[FileProblem]


class LimitReached(BaseModel):
    """A rate limit or quota (429 with ``Retry-After``), or a size limit of a day (413)."""

    message: str
    limit: str = Field(description="Which limit, e.g. `client_jobs_per_hour`.")
    scope: str = Field(description="`client` or `global`.")
    maximum: int
    used: int
    retry_after_seconds: int | None
    resets_at: datetime | None


class FieldProblem(BaseModel):
    """A malformed parameter (FastAPI's request validation)."""

    # FastAPI adds `input` and `ctx` to some of these.
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ApiError(BaseModel):
    """Every 4xx answer: ``detail`` says what was refused and why."""

    detail: str | RejectedFiles | LimitReached | list[FieldProblem]


def error_responses(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: each status code with its meaning, answered with the error body."""
    return {code: {"model": ApiError, "description": text} for code, text in described.items()}
