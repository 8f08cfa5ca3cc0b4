"""Key rules shared by every store adapter.

Both adapters enforce the same rules, so a key that works on S3 cannot fail only in embedded mode.
They are what makes a key safe as a relative path under the folder store's root: no absolute
paths, no ``..``, no backslashes or control characters. Segments may not start with ``.`` either,
which keeps ``.`` / ``..`` out and reserves dot-names for the folder store's own bookkeeping.
"""

from __future__ import annotations

MAX_KEY_BYTES = 1024  # the S3 limit
MAX_PRESIGN_SECONDS = 15 * 60


def _bad_segment(segment: str) -> bool:
    return segment == "" or segment.startswith(".")


def _check_chars(value: str, what: str) -> None:
    if "\\" in value:
        raise ValueError(f"invalid {what} {value!r}: backslashes are not allowed")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"invalid {what} {value!r}: control characters are not allowed")
    if value.startswith("/"):
        raise ValueError(f"invalid {what} {value!r}: keys are relative (no leading '/')")
    if len(value.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"invalid {what}: longer than {MAX_KEY_BYTES} bytes")


def check_key(key: str) -> str:
    """Return ``key`` unchanged, or raise :class:`ValueError` naming the rule it breaks."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid key {key!r}: must be a non-empty string")
    _check_chars(key, "key")
    if any(_bad_segment(s) for s in key.split("/")):
        raise ValueError(f"invalid key {key!r}: empty, '.' or '..' segments (or names starting with '.')")
    return key


def check_prefix(prefix: str) -> str:
    """Like :func:`check_key`, but ``""`` (everything) and a trailing ``/`` are allowed."""
    if prefix == "":
        return prefix
    _check_chars(prefix, "prefix")
    *dirs, last = prefix.split("/")
    if any(_bad_segment(s) for s in dirs) or last.startswith("."):
        raise ValueError(f"invalid prefix {prefix!r}: empty, '.' or '..' segments (or names starting with '.')")
    return prefix


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"invalid byte range {start}-{end}")


def check_presign_expiry(seconds: float) -> int:
    """Presigned URLs are short-lived (docs/architecture.md §6): at most 15 minutes."""
    if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError(f"presigned URL expiry must be between 1 s and {MAX_PRESIGN_SECONDS} s, got {seconds:g} s")
    return int(seconds)

