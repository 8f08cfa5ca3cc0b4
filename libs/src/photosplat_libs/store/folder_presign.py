"""The folder store's presigned upload URLs: signing them and checking them.

A URL lives on ``public_url`` (the service that mounts
:func:`photosplat_libs.store.folder_http.folder_upload_router`) and carries an expiry and an
HMAC-SHA256 over key + expiry (+ the exact size and Content-Type when the caller binds them, as a
signed S3 URL does), so the URL is short-lived and good for that one object only.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

UPLOAD_PATH = "/store/upload/"


class UploadDenied(PermissionError):
    """A presigned upload URL that is malformed, tampered with or expired, or a request that breaks
    its signed terms (size, Content-Type); the message says which."""


@dataclass(frozen=True)
class UploadTerms:
    """What a verified upload URL binds besides its key (None: not bound)."""

    content_type: str | None = None
    content_length: int | None = None


class UploadSigner:
    def __init__(self, secret: str, public_url: str | None) -> None:
        self._secret = secret.encode()
        self.public_url = public_url.rstrip("/") if public_url else None

    def url(self, key: str, expires_at: int, terms: UploadTerms = UploadTerms()) -> str:
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

    def verify(
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
