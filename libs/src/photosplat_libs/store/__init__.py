"""The object-store port: a local folder (embedded) or any S3 API through the ``minio`` SDK.

Keys are ``/``-separated and built by our code only (see :mod:`photosplat_libs.keys`); a client
filename never becomes a key or a path.
"""

from __future__ import annotations

from photosplat_libs.store.port import ObjectInfo, ObjectNotFound, ObjectStore

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "create_store"]


def create_store(url: str, *, public_url: str | None = None, signing_secret: str = "") -> ObjectStore:
    """``file:///abs/folder`` or ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=us-east-1``.

    ``public_url`` is the base URL clients use to reach the store (presigned URLs are signed for it);
    for the folder store it is the URL of the service that accepts the uploads.
    """
    if url.startswith("file:"):
        from photosplat_libs.store.folder import FolderStore

        return FolderStore.from_url(url, public_url=public_url, signing_secret=signing_secret)
    if url.startswith(("s3://", "s3s://")):
        from photosplat_libs.store.s3 import S3Store

        return S3Store.from_url(url, public_url=public_url)
    raise ValueError(f"unsupported store url: {url!r} (expected file:// or s3://)")
