"""The embedded object store: one file per object under a root folder (:mod:`.folder_files` keeps
the layout and does the blocking file IO, in :func:`asyncio.to_thread`; only tiny calls, such as
discarding a temp file while cancelling, run inline).

Presigned uploads: :meth:`FolderStore.presigned_put` returns a URL signed by :mod:`.folder_presign`
on ``public_url``, the service that mounts :func:`photosplat_libs.store.folder_http.folder_upload_router`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterable, AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from photosplat_libs.store.folder_files import DEFAULT_TYPE, FLUSH_BYTES, FolderFiles, not_found
from photosplat_libs.store.folder_presign import UploadSigner, UploadTerms
from photosplat_libs.store.naming import check_key, check_prefix, check_presign_expiry, check_range
from photosplat_libs.store.port import ObjectInfo, ObjectNotFound

CHUNK = 64 * 1024


class ObjectTooLarge(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"object is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class ObjectSizeMismatch(ValueError):
    def __init__(self, size: int, expected: int) -> None:
        super().__init__(f"the body has {size} bytes; this upload URL is for exactly {expected}")


class FolderStore:
    def __init__(
        self, root: str | os.PathLike[str], *, public_url: str | None = None, signing_secret: str = ""
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self._files = FolderFiles(self.root)
        self._signer = UploadSigner(signing_secret, public_url)
        self.public_url = self._signer.public_url

    @classmethod
    def from_url(cls, url: str, public_url: str | None = None, signing_secret: str = "") -> FolderStore:
        """``file:relative/path`` (against the working directory), ``file:/abs`` or ``file:///abs``."""
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise ValueError(f"not a file store url: {url!r}")
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file store url must not name a host: {url!r}")
        path = unquote(parts.path)
        if not path:
            raise ValueError(f"file store url names no folder: {url!r}")
        return cls(path, public_url=public_url, signing_secret=signing_secret)

    # -- the port ------------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        await asyncio.to_thread(self._files.ensure_ready)

    async def put(self, key: str, data: bytes, content_type: str = DEFAULT_TYPE) -> None:
        check_key(key)
        await asyncio.to_thread(self._files.write, key, [data], content_type)

    async def put_file(self, key: str, path: str, content_type: str = DEFAULT_TYPE) -> None:
        check_key(key)
        await asyncio.to_thread(self._files.write_from_file, key, path, content_type)

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        content_type: str = DEFAULT_TYPE,
        *,
        max_bytes: int | None = None,
        size: int | None = None,
    ) -> ObjectInfo:
        """Write an async stream of bytes as one object, atomically, without holding it in memory.

        Raises :class:`ObjectTooLarge` as soon as the stream passes ``max_bytes`` (or ``size``), and
        :class:`ObjectSizeMismatch` when it ends short of ``size``; then nothing is stored and the
        object that was there (if any) is untouched.
        """
        check_key(key)
        if size is not None:
            max_bytes = size if max_bytes is None else min(max_bytes, size)
        tmp = await asyncio.to_thread(self._files.temp)
        try:
            buffer = bytearray()
            async for chunk in chunks:
                if max_bytes is not None and tmp.size + len(buffer) + len(chunk) > max_bytes:
                    raise ObjectTooLarge(max_bytes)
                buffer += chunk
                if len(buffer) >= FLUSH_BYTES:
                    await asyncio.to_thread(tmp.write, bytes(buffer))
                    buffer.clear()
            if buffer:
                await asyncio.to_thread(tmp.write, bytes(buffer))
            if size is not None and tmp.size != size:
                raise ObjectSizeMismatch(tmp.size, size)
            return await asyncio.to_thread(self._files.commit, tmp, key, content_type)
        except BaseException:
            tmp.discard()  # inline: it must also run when the task is being cancelled
            raise

    async def get(self, key: str) -> bytes:
        path = self._files.path(key)
        with not_found(key):
            return await asyncio.to_thread(path.read_bytes)

    async def get_file(self, key: str, path: str) -> None:
        await asyncio.to_thread(self._files.copy_out, key, Path(path))

    async def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        return await asyncio.to_thread(self._files.info, key)

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except ObjectNotFound:
            return False
        return True

    async def stream(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yields bytes ``start..end`` (inclusive); a range past the end yields what exists.

        As with any async generator, :class:`ObjectNotFound` comes from the first iteration.
        """
        check_range(start, end)
        path = self._files.path(key)
        with not_found(key):
            file = await asyncio.to_thread(path.open, "rb")
        try:
            file.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                size = CHUNK if remaining is None else min(CHUNK, remaining)
                chunk = await asyncio.to_thread(file.read, size)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            file.close()

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key.

        ``content_type`` is empty in listings, as S3 lists none: use :meth:`stat` for it.
        """
        check_prefix(prefix)
        return await asyncio.to_thread(self._files.list_prefix, prefix)

    async def delete(self, key: str) -> None:
        check_key(key)
        await asyncio.to_thread(self._files.delete, key)

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        return await asyncio.to_thread(self._files.delete_prefix, prefix)

    async def presigned_put(
        self, key: str, expires: timedelta, *, content_type: str | None = None, content_length: int | None = None
    ) -> str:
        seconds = check_presign_expiry(expires.total_seconds())
        terms = UploadTerms(content_type, content_length)
        return self._signer.url(check_key(key), int(time.time()) + seconds, terms)

    # -- presigned uploads ---------------------------------------------------------------------

    def upload_url(self, key: str, expires_at: int, terms: UploadTerms = UploadTerms()) -> str:
        """The upload URL for ``key`` valid until the unix time ``expires_at``, on ``terms``."""
        return self._signer.url(key, expires_at, terms)

    def verify_upload(
        self,
        key: str,
        expires: str | None,
        signature: str | None,
        *,
        length: str | None = None,
        content_type: str | None = None,
    ) -> UploadTerms:
        """The terms of this key's upload URL; raise
        :class:`~photosplat_libs.store.folder_presign.UploadDenied` unless they are signed and unexpired."""
        return self._signer.verify(key, expires, signature, length=length, content_type=content_type)
