"""Tokens and their hashes (DESIGN §6)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

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
