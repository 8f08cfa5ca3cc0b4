"""The distributed object store: any S3 API (MinIO, AWS, ...) through the ``minio`` SDK.

The SDK is blocking, so every call that talks to the server runs in :func:`asyncio.to_thread`
(its urllib3 pool is thread-safe). Presigning is local arithmetic and runs inline.

Presigned URLs (:mod:`.sigv4`: path-style, binding the upload's size and type) are signed for
``public_url``, the endpoint clients reach (e.g. ``http://localhost:9000`` while the services talk
to ``http://minio:9000``): the host is part of the signature, so a URL signed for the internal name
would not work from outside.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlsplit

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from photosplat_libs.store.naming import check_key, check_prefix, check_presign_expiry, check_range
from photosplat_libs.store.port import ObjectInfo, ObjectNotFound
from photosplat_libs.store.sigv4 import presign_put

CHUNK = 64 * 1024
DEFAULT_TYPE = "application/octet-stream"
DEFAULT_REGION = "us-east-1"
_MISSING = {"NoSuchKey", "NoSuchObject"}
_TRUE = {"1", "true", "yes", "on"}


@contextmanager
def _not_found(key: str) -> Iterator[None]:
    try:
        yield
    except S3Error as e:
        if e.code in _MISSING:
            raise ObjectNotFound(key) from e
        raise


def _endpoint(url: str) -> tuple[str, bool]:
    """``http(s)://host:port`` -> (``host:port``, secure)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"S3 public url must be http(s)://host[:port] without a path: {url!r}")
    return parts.netloc, parts.scheme == "https"


class S3Store:
    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = DEFAULT_REGION,
        public_url: str | None = None,
    ) -> None:
        """``endpoint`` is ``host:port``; ``public_url`` (``http(s)://host:port``) defaults to it."""
        self.bucket = bucket
        self.region = region
        self._access_key, self._secret_key = access_key, secret_key
        self._public_base = public_url or f"{'https' if secure else 'http'}://{endpoint}"
        # The region is given, so the client never asks the server for it; presigning needs no
        # server at all, so ``public_url`` may name a host this process cannot even resolve.
        self._client = Minio(endpoint, access_key, secret_key, secure=secure, region=region)
        if public_url:
            _endpoint(public_url)  # refuse a malformed one now rather than at the first upload

    @classmethod
    def from_url(cls, url: str, public_url: str | None = None) -> S3Store:
        """``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=us-east-1``.

        ``secure`` defaults to false for ``s3://`` and true for ``s3s://``; ``region`` to us-east-1.
        Access and secret key are percent-decoded.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("s3", "s3s"):
            raise ValueError(f"not an s3 store url: {url!r}")
        bucket = parts.path.strip("/")
        if not parts.hostname or not bucket or "/" in bucket:
            raise ValueError(f"s3 store url needs a host and one bucket (s3://ACCESS:SECRET@host:port/bucket): {url!r}")
        if parts.username is None or parts.password is None:
            raise ValueError("s3 store url needs credentials: s3://ACCESS:SECRET@host:port/bucket")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        secure = query["secure"].lower() in _TRUE if "secure" in query else parts.scheme == "s3s"
        return cls(
            endpoint=parts.netloc.rpartition("@")[2],
            access_key=unquote(parts.username),
            secret_key=unquote(parts.password),
            bucket=bucket,
            secure=secure,
            region=query.get("region", DEFAULT_REGION),
            public_url=public_url,
        )

    # -- the port ------------------------------------------------------------------------------

    async def ensure_ready(self) -> None:
        await asyncio.to_thread(self._ensure_bucket)

    async def put(self, key: str, data: bytes, content_type: str = DEFAULT_TYPE) -> None:
        check_key(key)
        await asyncio.to_thread(
            self._client.put_object, self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    async def put_file(self, key: str, path: str, content_type: str = DEFAULT_TYPE) -> None:
        check_key(key)
        await asyncio.to_thread(self._client.fput_object, self.bucket, key, path, content_type=content_type)

    async def get(self, key: str) -> bytes:
        check_key(key)
        with _not_found(key):
            return await asyncio.to_thread(self._get, key)

    async def get_file(self, key: str, path: str) -> None:
        check_key(key)
        # fget_object downloads to a temp name and renames it: no half file under ``path``.
        with _not_found(key):
            await asyncio.to_thread(self._client.fget_object, self.bucket, key, path)

    async def stat(self, key: str) -> ObjectInfo:
        check_key(key)
        with _not_found(key):
            found = await asyncio.to_thread(self._client.stat_object, self.bucket, key)
        return ObjectInfo(
            key=key,
            size=found.size or 0,
            content_type=found.content_type or DEFAULT_TYPE,
            etag=(found.etag or "").strip('"'),
        )

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
        check_key(key)
        check_range(start, end)
        length = 0 if end is None else end - start + 1  # 0: to the end
        try:
            with _not_found(key):
                response = await asyncio.to_thread(self._client.get_object, self.bucket, key, start, length)
        except S3Error as e:
            if e.code == "InvalidRange":  # start is past the end: nothing to send
                return
            raise
        try:
            while chunk := await asyncio.to_thread(response.read, CHUNK):
                yield chunk
        finally:
            response.close()
            response.release_conn()

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, sorted by key.

        ``content_type`` is empty: S3 listings carry none (use :meth:`stat`).
        """
        check_prefix(prefix)
        return await asyncio.to_thread(self._list, prefix)

    async def delete(self, key: str) -> None:
        check_key(key)
        await asyncio.to_thread(self._client.remove_object, self.bucket, key)

    async def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        return await asyncio.to_thread(self._delete_prefix, prefix)

    async def presigned_put(
        self, key: str, expires: timedelta, *, content_type: str | None = None, content_length: int | None = None
    ) -> str:
        seconds = check_presign_expiry(expires.total_seconds())
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if content_length is not None:
            headers["Content-Length"] = str(content_length)
        return presign_put(
            base_url=self._public_base,
            bucket=self.bucket,
            key=check_key(key),
            region=self.region,
            access_key=self._access_key,
            secret_key=self._secret_key,
            expires_seconds=seconds,
            headers=headers,
            now=datetime.now(timezone.utc),
        )

    async def remove_bucket(self) -> None:
        """Remove the (empty) bucket; for tests that made their own."""
        await asyncio.to_thread(self._client.remove_bucket, self.bucket)

    # -- blocking helpers (run in a thread) ----------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self._client.bucket_exists(self.bucket):
            return
        try:
            self._client.make_bucket(self.bucket, location=self.region)
        except S3Error as e:
            if e.code != "BucketAlreadyOwnedByYou":  # another replica made it just now
                raise

    def _get(self, key: str) -> bytes:
        response = self._client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def _list(self, prefix: str) -> list[ObjectInfo]:
        found = [
            ObjectInfo(key=obj.object_name, size=obj.size or 0, content_type="", etag=(obj.etag or "").strip('"'))
            for obj in self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
            if obj.object_name and not obj.is_dir
        ]
        return sorted(found, key=lambda info: info.key)

    def _delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self._list(prefix)]
        # remove_objects is lazy: nothing is deleted until its error iterator is consumed.
        errors = list(self._client.remove_objects(self.bucket, (DeleteObject(key) for key in keys)))
        if errors:
            first = errors[0]
            raise RuntimeError(
                f"could not delete {len(errors)} of {len(keys)} objects under {prefix!r}; "
                f"first: {first.name}: {first.code} {first.message}"
            )
        return len(keys)
