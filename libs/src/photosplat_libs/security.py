"""Tokens and their hashes (docs/architecture.md §6)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

# 32 bytes -> 43 URL-safe characters, 256 bits.
TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 is enough here: tokens are random with >=128 bits, so there is nothing to brute-force
    that a slow password hash would protect; a fast hash keeps lookups by hash indexable."""
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    return bool(_TOKEN_RE.match(value))


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _fernet(token: str, job_id: str) -> "Fernet":
    import base64

    from cryptography.fernet import Fernet

    key = hashlib.sha256(f"photosplat-pubkey:{job_id}:{token}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def seal_pub_key(pub_key: str, owner_token: str, job_id: str) -> str:
    """Encrypt the public key with the owner's token. The database keeps only its hash and this
    sealed copy, so a leaked database reveals no viewer link, yet the owner's status request (which
    carries the token) can still show the viewer URL, as the original API did."""
    return _fernet(owner_token, job_id).encrypt(pub_key.encode()).decode()


def unseal_pub_key(sealed: str, owner_token: str, job_id: str) -> str | None:
    from cryptography.fernet import InvalidToken

    try:
        return _fernet(owner_token, job_id).decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
