"""Webhooks (docs/architecture.md §5.12): the notification a client's callback URL receives when a
job ends, how it is signed, and where a callback may point."""

from photosplat_libs.webhooks.addresses import (
    CallbackRefused,
    CallbackTarget,
    address_problem,
    allowed_addresses,
    check_callback_url,
    parse_callback_url,
)
from photosplat_libs.webhooks.notification import JobEnded, WebhookEvent
from photosplat_libs.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    new_secret,
    secret_of_token,
    signature_header,
    verify,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "CallbackRefused",
    "CallbackTarget",
    "JobEnded",
    "WebhookEvent",
    "address_problem",
    "allowed_addresses",
    "check_callback_url",
    "new_secret",
    "parse_callback_url",
    "secret_of_token",
    "signature_header",
    "verify",
]
