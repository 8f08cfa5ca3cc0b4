"""Who a request comes from, for rate limits and idempotency keys: its API key, else the owner
token it carries, else its network address."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from fastapi import HTTPException, Request

from photosplat_libs.db.engine import Database
from photosplat_libs.security import hash_token

from photosplat_ingest import repository

# Longer than any key `photosplat api-key create` issues: anything longer is not one of ours.
MAX_API_KEY_LENGTH = 200


@dataclass(frozen=True)
class Client:
    # 64 hex characters: the hash of the API key, of the owner token or of the address
    id: str
    # False for an API key: no rate limit applies
    limited: bool


def peer_address(request: Request, trusted_proxy_hops: int) -> str:
    """The client's address. Behind ``trusted_proxy_hops`` proxies that each append the address
    they saw to X-Forwarded-For, it is the entry that many places from the end: whatever a client
    wrote itself stands before those and is never read."""
    peer = request.client.host if request.client else "unknown"
    if trusted_proxy_hops == 0:
        return peer
    entries = [e.strip() for value in request.headers.getlist("x-forwarded-for") for e in value.split(",")]
    if len(entries) < trusted_proxy_hops:
        return peer
    candidate = entries[-trusted_proxy_hops]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return peer
    return candidate


def address_bucket(address: str) -> str:
    """What one client's address stands for: an IPv6 subscriber usually gets a whole /64, so its
    addresses count as one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def address_client(address: str) -> Client:
    # Hashed like tokens, so the ledger of charges holds no address in clear.
    return Client(hashlib.sha256(f"address:{address_bucket(address)}".encode()).hexdigest(), limited=True)


async def identify(
    db: Database, request: Request, *, token: str | None, api_key: str | None, trusted_proxy_hops: int
) -> Client:
    """``token``: the owner token the request presented (already checked), or None; ``api_key``:
    its X-API-Key header."""
    if api_key is not None:
        key_hash = hash_token(api_key.strip()) if len(api_key) <= MAX_API_KEY_LENGTH else None
        if key_hash is not None:
            async with db.transaction() as session:
                if await repository.api_key_active(session, key_hash):
                    return Client(key_hash, limited=False)
        # Told rather than silently limited: the client believes it holds a key.
        raise HTTPException(
            401,
            "this API key is unknown or revoked: ask the operator for a new one, or send none",
            headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'},
        )
    if token is not None:
        return Client(hash_token(token), limited=True)
    return address_client(peer_address(request, trusted_proxy_hops))
