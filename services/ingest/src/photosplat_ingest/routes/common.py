"""What every route of ingest does at its edge: who the caller is (owner token, API key), the
headers it may send, and how a refused request maps to a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Header, HTTPException, Request
from fastapi.security import HTTPBearer

from photosplat_libs.api_errors import error_responses
from photosplat_libs.security import hash_token, looks_like_token, new_token

from photosplat_ingest import repository
from photosplat_ingest.clients import Client, identify
from photosplat_ingest.context import IngestContext
from photosplat_ingest.quotas import QuotaExceeded
from photosplat_ingest.validation import Rule, ValidationFailed


def presented_bearer(request: Request) -> str | None:
    """The value of a Bearer Authorization header; other schemes (a proxy's Basic credentials) are
    not ours and count as none."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def bearer_token(request: Request) -> str | None:
    value = presented_bearer(request)
    return value if value is not None and looks_like_token(value) else None


async def owner_token(ctx: IngestContext, request: Request) -> str:
    """The token a new job is filed under. Only the server mints tokens (256 bits): a client may
    present one it was given with an earlier job, but a token no job of this server carries (chosen
    by the client, mistyped, or whose jobs were all deleted) is refused rather than adopted, so no
    job ever gets a weak or shared owner token."""
    presented = presented_bearer(request)
    if presented is None:
        return new_token()
    if looks_like_token(presented):
        async with ctx.db.transaction() as session:
            if await repository.owner_known(session, hash_token(presented)):
                return presented
    raise HTTPException(
        401,
        "this token was not issued by this server (or all its jobs were deleted): "
        "send the request without an Authorization header to get a new token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def client_of(ctx: IngestContext, request: Request, token: str | None, api_key: str | None) -> Client:
    hops = ctx.settings.trusted_proxy_hops
    return await identify(ctx.db, request, token=token, api_key=api_key, trusted_proxy_hops=hops)


async def creating_client(ctx: IngestContext, request: Request, api_key: str | None) -> tuple[str, Client]:
    """The owner token of a job being created and the client it is charged to: its API key, else
    the token it presented, else its address (a token minted now identifies nobody yet)."""
    token = await owner_token(ctx, request)
    client = await client_of(ctx, request, token if presented_bearer(request) is not None else None, api_key)
    return token, client


def _rejected(exc: ValidationFailed) -> HTTPException:
    too_large = any(e.rule is Rule.MAX_REQUEST_BYTES for e in exc.errors)
    return HTTPException(status_code=413 if too_large else 400, detail=exc.detail())


@contextmanager
def as_http() -> Iterator[None]:
    try:
        yield
    except ValidationFailed as exc:
        raise _rejected(exc) from exc
    except QuotaExceeded as exc:
        raise exc.http() from exc


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="a random key (a UUID): a retry with the same key gets the first response, not a second job",
    ),
]
ApiKeyHeader = Annotated[
    str | None, Header(alias="X-API-Key", description="a key from the operator: no rate limits apply")
]
# The refusals of ingest's routes, for the API description; each answers the error body (ApiError).
_REFUSALS = {
    400: "a file or field breaks a rule: every bad one is named with the rule and the limit, nothing is kept "
    "(or a malformed Idempotency-Key)",
    401: "an owner token or API key this server did not issue",
    422: "an Idempotency-Key already used for a different request, or a malformed parameter",
}
IDEMPOTENT: dict[int | str, dict[str, Any]] = error_responses(_REFUSALS)
LIMITED: dict[int | str, dict[str, Any]] = error_responses(
    {
        **_REFUSALS,
        413: "the request is larger than a limit (request size, or a daily upload limit)",
        429: "a rate limit: the body names it and when it resets; see the Retry-After header",
    }
)
SUBMIT_REFUSALS: dict[int | str, dict[str, Any]] = error_responses(
    {
        **_REFUSALS,
        401: "no owner token (Authorization: Bearer), or an API key this server did not issue",
        404: "no such job, or not this token's (the same answer)",
        409: "the job was already submitted",
        410: "the upload window closed: declare the files again",
    }
)

# Documents the token in the OpenAPI schema only: auto_error=False never refuses a request, the
# routes read and check the header themselves (a missing token is fine when creating a job).
CLIENT_TOKEN = HTTPBearer(
    scheme_name="clientToken",
    description="The client token answered by POST /recon/jobs or POST /recon/uploads.",
    auto_error=False,
)
# FastAPI appends this list to the route's [{clientToken: []}]: the token may also be left out.
TOKEN_OPTIONAL: dict[str, Any] = {"security": [{}]}
