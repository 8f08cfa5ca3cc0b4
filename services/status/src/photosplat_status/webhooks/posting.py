"""One POST of a notification: signed, to an address checked just before (DNS rebinding), that
address pinned for the connection (the name is resolved once, here, not again by the HTTP client),
no redirect followed, bounded in time as a whole."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from photosplat_libs.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    CallbackRefused,
    allowed_addresses,
    parse_callback_url,
    signature_header,
)
from photosplat_libs.webhooks.addresses import IPAddress

MAX_ERROR_CHARS = 500
USER_AGENT = "PhotoSplat-Webhooks/1"


@dataclass(frozen=True)
class Claimed:
    """A due delivery this sender holds until its lease passes."""

    delivery_id: str
    event: str
    payload: str
    url: str
    secret: str


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    seconds: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def pinned_request(client: httpx.AsyncClient, claimed: Claimed, ip: IPAddress, sni_host: str) -> httpx.Request:
    body = claimed.payload.encode()
    original = httpx.URL(claimed.url)
    headers = {
        "Host": original.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(claimed.secret, body),
        DELIVERY_HEADER: claimed.delivery_id,
        EVENT_HEADER: claimed.event,
    }
    # TLS still names (SNI) and verifies the certificate of the host the URL names.
    extensions = {"sni_hostname": sni_host} if original.scheme == "https" else {}
    return client.build_request(
        "POST", original.copy_with(host=str(ip)), content=body, headers=headers, extensions=extensions
    )


def _error_of(response: httpx.Response) -> str | None:
    if response.is_success:
        return None
    if response.is_redirect:
        return f"HTTP {response.status_code}: redirects are not followed ({response.headers.get('location', '')[:200]})"
    return f"HTTP {response.status_code}"


async def post(client: httpx.AsyncClient, claimed: Claimed, *, allow_private: bool, timeout: float) -> Outcome:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            target = parse_callback_url(claimed.url)
            addresses = await allowed_addresses(target, allow_private=allow_private)
            request = pinned_request(client, claimed, addresses[0], target.host)
            # Streamed and closed unread: a receiver's body is of no interest and may be large.
            response = await client.send(request, stream=True)
            await response.aclose()
        return Outcome(response.status_code, _error_of(response), time.monotonic() - started)
    except CallbackRefused as error:
        message = f"refused by rule {error.rule}: {error.message}"
    except TimeoutError:
        message = f"no answer within {timeout:g} s"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as error:
        message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return Outcome(None, message[:MAX_ERROR_CHARS], time.monotonic() - started)
