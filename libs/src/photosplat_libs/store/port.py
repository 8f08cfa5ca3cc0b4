"""The object-store port: what every adapter is and raises.

Its own module so that the adapters import it without importing the package that chooses between
them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import AsyncIterator, Protocol


class ObjectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str
    etag: str = ""


class ObjectStore(Protocol):
    async def ensure_ready(self) -> None:
        """Create the bucket / folder if missing."""

    async def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    async def put_file(self, key: str, path: str, content_type: str = "application/octet-stream") -> None: ...

    async def get(self, key: str) -> bytes:
        """Raises :class:`ObjectNotFound`."""

    async def get_file(self, key: str, path: str) -> None:
        """Download to a local path. Raises :class:`ObjectNotFound`."""

    async def stat(self, key: str) -> ObjectInfo:
        """Raises :class:`ObjectNotFound`."""

    async def exists(self, key: str) -> bool: ...

    def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` (inclusive, like HTTP ranges) in chunks. Raises :class:`ObjectNotFound`."""

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix; recursive), sorted by key.
        ``content_type`` is empty in listings (S3 lists none): use :meth:`stat` for it."""

    async def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""

    async def presigned_put(
        self, key: str, expires: timedelta, *, content_type: str | None = None, content_length: int | None = None
    ) -> str:
        """A URL that lets its holder PUT exactly this one object until it expires; with
        ``content_type`` / ``content_length``, only a PUT carrying exactly that Content-Type and that
        many bytes (S3 and MinIO check signed headers; the folder store's endpoint checks its own)."""
