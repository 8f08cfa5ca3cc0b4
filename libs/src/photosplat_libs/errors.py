"""Failures a stage explains itself. Kept apart from the worker runtime so that the training and SfM
code (and their command-line tools, and the GPU machine) need no web or database packages."""

from __future__ import annotations


class WorkError(Exception):
    """A failure the work function explains itself; ``retryable`` says whether another attempt can help."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class UserError(WorkError):
    """The input cannot give a result (e.g. too few photos registered); the message is for the
    photographer, so say what to change."""

    retryable = False
