"""A new job's webhook (docs/architecture.md §5.12): the callback URL the request names, checked
now (scheme, and every address of its host public unless the operator allows private ones), else
the default of the request's API key; and the secret its notifications are signed with: the API
key's, else one derived from the owner token, so every job of a client is signed alike."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from photosplat_libs.db.models import ApiKey, JobWebhook
from photosplat_libs.security import seal_pub_key
from photosplat_libs.webhooks import CallbackRefused, check_callback_url, secret_of_token
from photosplat_libs.webhooks.addresses import MAX_URL_LENGTH

from photosplat_ingest import repository
from photosplat_ingest.clients import Client
from photosplat_ingest.context import IngestContext
from photosplat_ingest.validation import FileError, Rule, ValidationFailed

FIELD = "callback_url"


@dataclass(frozen=True)
class Callback:
    url: str
    secret: str

    def row(self, job_id: uuid.UUID, links: dict[str, str | None]) -> JobWebhook:
        """Status writes the notification without the owner token or ingest's settings, so the
        links go with the callback. The viewer link is sealed with the secret: out of plain sight
        (a query console, a dump read by eye), though not from whoever holds the whole database."""
        viewer_url = links["viewer_url"] or ""
        return JobWebhook(
            job_id=job_id,
            url=self.url,
            secret=self.secret,
            status_url=links["status_url"] or "",
            viewer_url_sealed=seal_pub_key(viewer_url, self.secret, str(job_id)) if viewer_url else "",
            created_at=datetime.now(timezone.utc),
        )

    def response_fields(self) -> dict[str, str]:
        return {"callback_url": self.url, "webhook_secret": self.secret}


def refused(message: str) -> ValidationFailed:
    return ValidationFailed([FileError(None, Rule.CALLBACK_URL, f"{FIELD}: {message}")])


async def callback_for(ctx: IngestContext, client: Client, token: str, requested: object) -> Callback | None:
    """``requested``: the request's ``callback_url`` (a form field or JSON value; None or "" when
    absent). Raises :class:`ValidationFailed` naming the field and the rule it breaks."""
    if requested is not None and not isinstance(requested, str):
        raise refused("a text field is expected, not a file")
    key = await _api_key(ctx, client)
    if requested:
        try:
            await check_callback_url(requested, allow_private=ctx.settings.webhook_allow_private_addresses)
        except CallbackRefused as error:
            raise refused(f"refused by rule {error.rule}: {error.message}") from None
        url = requested
    elif key is not None and key.callback_url:
        # Checked when the operator set it; status checks every address again before each post.
        url = key.callback_url
    else:
        return None
    secret = key.webhook_secret if key is not None and key.webhook_secret else secret_of_token(token)
    return Callback(url, secret)


async def _api_key(ctx: IngestContext, client: Client) -> ApiKey | None:
    if client.limited:  # only a client known by its API key is exempt from limits
        return None
    async with ctx.db.transaction() as session:
        return await repository.active_api_key(session, client.id)


CALLBACK_URL_SCHEMA = {
    "type": "string",
    "maxLength": MAX_URL_LENGTH,
    "description": (
        "Optional: where the end of the job (DONE, FAILED, CANCELLED) is announced by a signed POST "
        "(header PhotoSplat-Signature, see the README). http or https to a public address."
    ),
}
