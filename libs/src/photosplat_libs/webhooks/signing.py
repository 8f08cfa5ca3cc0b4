"""Webhook secrets and signatures (docs/architecture.md §5.12), as Stripe signs its webhooks:

    PhotoSplat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

The timestamp is signed with the body, so a receiver that also checks it is recent refuses a
replayed notification; ``v1`` names the scheme, so a later one can be sent beside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "PhotoSplat-Signature"
DELIVERY_HEADER = "PhotoSplat-Delivery"
EVENT_HEADER = "PhotoSplat-Event"
SECRET_PREFIX = "whsec_"
# A receiver refuses a signature older than this (Stripe's default): replays end with it.
DEFAULT_TOLERANCE_SECONDS = 300
_DERIVATION_LABEL = b"photosplat webhook secret v1"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_of_token(token: str) -> str:
    """The webhook secret of a client known by its owner token: one per client (every job it files
    under the token is signed alike), which the client can always derive again, and which reveals
    nothing of the token (HMAC is one-way)."""
    digest = hmac.new(token.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """What a receiver does: the header's timestamp is recent and one of its ``v1`` values is the
    HMAC of that timestamp and the raw body (compared in constant time)."""
    parts = [item.partition("=") for item in header.split(",")]
    stamps = [value for key, _, value in parts if key.strip() == "t"]
    macs = [value.strip() for key, _, value in parts if key.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not macs:
        return False
    t = int(stamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = _mac(secret, t, body)
    return any(hmac.compare_digest(expected, mac) for mac in macs)
