"""The embedded object store: one file per object under a root folder.

Layout under the root::

    <key>                the object's bytes
    .meta/<key>.json     its content type and MD5 etag (as S3 keeps them)
    .tmp/                writes in progress

Every write goes to ``.tmp`` first and is moved into place with :func:`os.replace`, so neither a
reader nor a crash ever sees half an object. The key rules (:mod:`.naming`) forbid segments that
start with ``.``, so no key reaches ``.meta`` or ``.tmp`` and none escapes the root.

Blocking file IO runs in :func:`asyncio.to_thread`; only tiny calls (closing a file, unlinking a
temp file while cancelling) run inline.

Presigned uploads: :meth:`FolderStore.presigned_put` returns a URL on ``public_url`` (the service
that mounts :func:`photosplat_libs.store.folder_http.folder_upload_router`) carrying an expiry and
an HMAC-SHA256 over key + expiry (+ the exact size and Content-Type when the caller binds them, as a
signed S3 URL does), so the URL is short-lived and good for that one object only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import mimetypes
import os
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, unquote, urlencode, urlsplit

from photosplat_libs.store import ObjectInfo, ObjectNotFound
from photosplat_libs.store.naming import check_key, check_prefix, check_presign_expiry, check_range

CHUNK = 64 * 1024
# put_stream hands the body to the writer thread in slices this big, not once per (small) chunk.
FLUSH_BYTES = 1024 * 1024
UPLOAD_PATH = "/store/upload/"
# Temp files older than this are leftovers of a crash; younger ones may be a write in progress.
STALE_TEMP_SECONDS = 3600
DEFAULT_TYPE = "application/octet-stream"


class ObjectTooLarge(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"object is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class ObjectSizeMismatch(ValueError):
    def __init__(self, size: int, expected: int) -> None:
        super().__init__(f"the body has {size} bytes; this upload URL is for exactly {expected}")


class UploadDenied(PermissionError):
    """A presigned upload URL that is malformed, tampered with or expired, or a request that breaks
    its signed terms (size, Content-Type); the message says which."""


@dataclass(frozen=True)
class UploadTerms:
    """What a verified upload URL binds besides its key (None: not bound)."""

    content_type: str | None = None
    content_length: int | None = None


@contextmanager
def _not_found(key: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise ObjectNotFound(key) from e


class _TempObject:
    """A file in ``.tmp`` being written, hashing as it goes."""

    def __init__(self, tmp_dir: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.md5.update(chunk)
        self.size += len(chunk)

    def finish(self) -> None:
        # fsync before the rename: otherwise a power cut can leave an empty file under the new name.
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


class FolderStore:
    def __init__(
        self, root: str | os.PathLike[str], *, public_url: str | None = None, signing_secret: str = ""
    ) -> None:
        self.root = Path(os.path.abspath(root))
        self.public_url = public_url.rstrip("/") if public_url else None
        self._secret = signing_secret.encode()
        self._meta = self.root / ".meta"
        self._tmp = self.root / ".tmp"

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

    # -- paths ---------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _meta_path(self, key: str) -> Path:
        path = self._meta.joinpath(*key.split("/"))
        return path.with_name(path.name + ".json")

    # -- the port ------------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        await asyncio.to_thread(self._ensure_ready)

    async def put(self, key: str, data: bytes, content_type: str = DEFAULT_TYPE) -> None:
        check_key(key)
        await asyncio.to_thread(self._write, key, [data], content_type)

    async def put_file(self, key: str, path: str, content_type: str = DEFAULT_TYPE) -> None:
        check_key(key)
        await asyncio.to_thread(self._write_from_file, key, path, content_type)

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
        tmp = await asyncio.to_thread(_TempObject, self._tmp)
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
            return await asyncio.to_thread(self._commit, tmp, key, content_type)
        except BaseException:
            tmp.discard()  # inline: it must also run when the task is being cancelled
            raise

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        with _not_found(key):
            return await asyncio.to_thread(path.read_bytes)

    async def get_file(self, key: str, path: str) -> None:
        await asyncio.to_thread(self._copy_out, key, Path(path))

    async def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        return await asyncio.to_thread(self._info, key)

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
        path = self._path(key)
        with _not_found(key):
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
        return await asyncio.to_thread(self._list, prefix)

    async def delete(self, key: str) -> None:
        check_key(key)
        await asyncio.to_thread(self._delete, key)

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        return await asyncio.to_thread(self._delete_prefix, prefix)

    async def presigned_put(
        self, key: str, expires: timedelta, *, content_type: str | None = None, content_length: int | None = None
    ) -> str:
        seconds = check_presign_expiry(expires.total_seconds())
        terms = UploadTerms(content_type, content_length)
        return self.upload_url(check_key(key), int(time.time()) + seconds, terms)

    # -- presigned uploads ---------------------------------------------------------------------

    def upload_url(self, key: str, expires_at: int, terms: UploadTerms = UploadTerms()) -> str:
        """The upload URL for ``key`` valid until the unix time ``expires_at``, on ``terms``."""
        if not self._secret:
            raise ValueError("the folder store needs a signing_secret to presign uploads")
        if not self.public_url:
            raise ValueError("the folder store needs a public_url (the service serving /store/upload) to presign")
        query: dict[str, str | int] = {"expires": expires_at}
        if terms.content_length is not None:
            query["length"] = terms.content_length
        if terms.content_type is not None:
            query["type"] = terms.content_type
        query["signature"] = self._signature(key, expires_at, terms)
        return f"{self.public_url}{UPLOAD_PATH}{quote(key)}?{urlencode(query)}"

    def verify_upload(
        self,
        key: str,
        expires: str | None,
        signature: str | None,
        *,
        length: str | None = None,
        content_type: str | None = None,
    ) -> UploadTerms:
        """The terms of this key's upload URL (its ``expires``, ``length``, ``type`` and
        ``signature`` parameters); raise :class:`UploadDenied` unless they are signed and unexpired."""
        if not self._secret:
            raise UploadDenied("uploads to this store are not enabled (no signing secret)")
        if not expires or not signature:
            raise UploadDenied("upload URL lacks its expires/signature parameters")
        if not expires.isdigit() or (length is not None and not length.isdigit()):
            raise UploadDenied("upload URL has a malformed expiry or length")
        terms = UploadTerms(content_type, None if length is None else int(length))
        if not hmac.compare_digest(signature, self._signature(key, int(expires), terms)):
            raise UploadDenied("upload URL signature does not match this key")
        if int(expires) < time.time():
            raise UploadDenied("upload URL has expired")
        return terms

    def _signature(self, key: str, expires_at: int, terms: UploadTerms) -> str:
        length = "" if terms.content_length is None else str(terms.content_length)
        message = f"photosplat-store-upload\n{key}\n{expires_at}\n{length}\n{terms.content_type or ''}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    # -- blocking helpers (run in a thread) ----------------------------------------------------

    def _ensure_ready(self) -> None:
        for folder in (self.root, self._meta, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for leftover in self._tmp.iterdir():
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink(missing_ok=True)

    def _write(self, key: str, chunks: Iterable[bytes], content_type: str) -> ObjectInfo:
        tmp = _TempObject(self._tmp)
        try:
            for chunk in chunks:
                tmp.write(chunk)
            return self._commit(tmp, key, content_type)
        except BaseException:
            tmp.discard()
            raise

    def _write_from_file(self, key: str, path: str, content_type: str) -> None:
        with open(path, "rb") as source:
            self._write(key, iter(lambda: source.read(FLUSH_BYTES), b""), content_type)

    def _commit(self, tmp: _TempObject, key: str, content_type: str) -> ObjectInfo:
        tmp.finish()
        target, meta = self._path(key), self._meta_path(key)
        # The old metadata goes first: a crash before the new one is written leaves an object
        # whose etag is derived from its file, never the previous object's etag.
        meta.unlink(missing_ok=True)
        self._replace(tmp.path, target, key)
        info = ObjectInfo(key=key, size=tmp.size, content_type=content_type, etag=tmp.md5.hexdigest())
        self._write_meta(meta, info)
        return info

    def _write_meta(self, meta: Path, info: ObjectInfo) -> None:
        meta_tmp = _TempObject(self._tmp)
        try:
            meta_tmp.write(json.dumps({"content_type": info.content_type, "etag": info.etag}).encode())
            meta_tmp.file.close()
            self._replace(meta_tmp.path, meta, info.key)
        except BaseException:
            meta_tmp.discard()
            raise

    @staticmethod
    def _replace(source: Path, target: Path, key: str) -> None:
        # A concurrent delete may prune the parent folder between mkdir and replace: try again.
        for attempt in range(3):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise
            except (FileExistsError, NotADirectoryError, IsADirectoryError) as e:
                raise ValueError(
                    f"key {key!r} clashes with another object: the folder store cannot hold both 'a' and 'a/b'"
                ) from e

    def _info(self, key: str, *, with_type: bool = True) -> ObjectInfo:
        path = self._path(key)
        with _not_found(key):
            st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(key)  # a folder of other keys
        meta = self._read_meta(key)
        etag = meta.get("etag") or f"{st.st_size:x}-{st.st_mtime_ns:x}"
        content_type = ""
        if with_type:
            content_type = meta.get("content_type") or mimetypes.guess_type(key)[0] or DEFAULT_TYPE
        return ObjectInfo(key=key, size=st.st_size, content_type=content_type, etag=etag)

    def _read_meta(self, key: str) -> dict[str, str]:
        try:
            return json.loads(self._meta_path(key).read_bytes())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return {}

    def _list(self, prefix: str) -> list[ObjectInfo]:
        base_key, _, partial = prefix.rpartition("/")
        base = self.root.joinpath(*base_key.split("/")) if base_key else self.root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            at_base = dirpath == str(base)
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and (not at_base or d.startswith(partial))]
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if relative == "." else f"{relative}/{name}"
                if name.startswith(".") or not key.startswith(prefix):
                    continue
                try:
                    found.append(self._info(key, with_type=False))
                except ObjectNotFound:
                    continue  # deleted while we walked
        return sorted(found, key=lambda info: info.key)

    def _delete(self, key: str) -> None:
        path, meta = self._path(key), self._meta_path(key)
        meta.unlink(missing_ok=True)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return  # a "folder" of other keys, or under an object: no object by this key
        self._prune(path.parent, self.root)
        self._prune(meta.parent, self._meta)

    def _delete_prefix(self, prefix: str) -> int:
        infos = self._list(prefix)
        for info in infos:
            self._delete(info.key)
        return len(infos)

    @staticmethod
    def _prune(folder: Path, stop: Path) -> None:
        """Remove ``folder`` and its parents up to ``stop`` (excluded) while they are empty."""
        while folder != stop and folder.is_relative_to(stop):
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone with a concurrent delete)
            folder = folder.parent

    def _copy_out(self, key: str, dest: Path) -> None:
        source = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
        try:
            with _not_found(key):
                shutil.copyfile(source, name)
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

