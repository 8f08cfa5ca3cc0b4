"""Where a webhook may be sent (server-side request forgery): http or https to a host whose every
address is public. The check runs when a callback is registered, to refuse it with a clear answer,
and again before each delivery, on the addresses the request then connects to: a name that
resolved to a public address at registration may resolve to an internal one later (DNS
rebinding). An operator may allow private addresses (an intranet receiver, a test on loopback);
link-local ones (cloud metadata services answer at 169.254.169.254), multicast and unspecified
ones are refused even then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0
SCHEMES = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """``rule``: a short name of the rule (``scheme``, ``private_address``, ...)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule, self.message = rule, message


@dataclass(frozen=True)
class CallbackTarget:
    scheme: str
    # as the URL writes it, lower case, without an IPv6 literal's brackets
    host: str
    port: int


def parse_callback_url(url: str) -> CallbackTarget:
    """The scheme, host and port of a callback URL, or :class:`CallbackRefused`."""
    if len(url) > MAX_URL_LENGTH:
        raise CallbackRefused("length", f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise CallbackRefused("format", "the URL contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise CallbackRefused("format", f"not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise CallbackRefused("scheme", f"the scheme must be http or https, not {scheme[:20]!r}")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("credentials", "the URL must not carry credentials: the signature authenticates us")
    if not parts.hostname:
        raise CallbackRefused("host", "the URL names no host")
    return CallbackTarget(scheme, parts.hostname.lower(), port if port is not None else SCHEMES[scheme])


def address_problem(ip: IPAddress, *, allow_private: bool) -> CallbackRefused | None:
    """Why a webhook may not go to ``ip``, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return CallbackRefused("unspecified_address", f"{ip} is an unspecified address")
    if ip.is_multicast:
        return CallbackRefused("multicast_address", f"{ip} is a multicast address")
    if ip.is_link_local:
        return CallbackRefused("link_local_address", f"{ip} is a link-local address (cloud metadata answers there)")
    if ip.is_global or allow_private:
        return None
    kind = "a loopback" if ip.is_loopback else "a private" if ip.is_private else "a non-public"
    return CallbackRefused("private_address", f"{ip} is {kind} address (an operator may allow private addresses)")


async def _lookup(target: CallbackTarget) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(target.host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as error:
        raise CallbackRefused("unresolvable", f"the host {target.host[:100]!r} does not resolve ({error})") from None
    found: list[IPAddress] = []
    for info in infos:
        # The scope of an IPv6 link-local address ("fe80::1%eth0") is not part of the address.
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in found:
            found.append(ip)
    return found


async def allowed_addresses(target: CallbackTarget, *, allow_private: bool) -> list[IPAddress]:
    """Every address of the target's host, all allowed; refused if any is not (an attacker may
    mix a public address with an internal one and hope the client picks the second)."""
    found = await _lookup(target)
    for ip in found:
        if (problem := address_problem(ip, allow_private=allow_private)) is not None:
            if target.host != str(ip):
                problem.message = f"{target.host[:100]} resolves to {problem.message}"
            raise problem
    if not found:
        raise CallbackRefused("unresolvable", f"the host {target.host[:100]!r} has no address")
    return found


async def check_callback_url(url: str, *, allow_private: bool) -> CallbackTarget:
    """Registration's check: the URL's shape, then the addresses its host has now."""
    target = parse_callback_url(url)
    await allowed_addresses(target, allow_private=allow_private)
    return target
