"""``GET /recon/jobs/{id}/events``: the job's progress as Server-Sent Events (docs/architecture.md §1).

Authorised exactly as the status route: the owner's client token or the admin token as Bearer;
no token answers 401, a job of another client 404 like a missing one. ``Last-Event-ID`` (sent by
a reconnecting client) resumes after that event, on any replica. A client that already got the
final event gets 204, which tells an EventSource not to reconnect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response, Security, status
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from photosplat_libs.api_errors import error_responses
from photosplat_libs.db import Database
from photosplat_status.api import CLIENT_OR_ADMIN_TOKEN, HIDDEN, NOT_FOUND, UNAUTHORIZED
from photosplat_status.auth import caller_of
from photosplat_status.changes import JobChanges
from photosplat_status.job_stream import JobStream
from photosplat_status.settings import StatusSettings
from photosplat_status.stream_events import CURSOR_SHAPE, Cursor

_DESCRIPTION = (
    "Server-Sent Events: `state` (where the job stands), `log` (new log lines), `curve` (new training "
    "curve points; `reset` means the whole curve), then `final` (the ended job), after which the "
    "stream closes. A stream also ends after a while without `final`: reconnect with the last id as "
    "`Last-Event-ID` to get only what came later."
)
_STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx (the gateway) would otherwise buffer the stream
    "X-Accel-Buffering": "no",
}


@dataclass
class JobEventsApi:
    settings: StatusSettings
    db: Database
    changes: JobChanges
    stream: JobStream = field(init=False)

    def __post_init__(self) -> None:
        # Reads run outside a transaction, as the status route's (see api.py).
        reads: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.db.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self.stream = JobStream(self.settings, reads, self.changes)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["jobs"], dependencies=[Security(CLIENT_OR_ADMIN_TOKEN)])
        router.add_api_route(
            "/recon/jobs/{job_id}/events",
            self.job_events,
            methods=["GET"],
            operation_id="stream_job_events",
            response_class=StreamingResponse,
            responses={
                200: {"description": _DESCRIPTION, "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                204: {"description": "The client already got the final event (Last-Event-ID): nothing follows."},
                **error_responses({400: "a malformed Last-Event-ID", **UNAUTHORIZED, **HIDDEN}),
            },
        )
        return router

    async def job_events(
        self,
        job_id: uuid.UUID,
        request: Request,
        last_event_id: Annotated[
            str | None, Header(alias="Last-Event-ID", description=f"The last event's id ({CURSOR_SHAPE})")
        ] = None,
    ) -> Response:
        caller = caller_of(self.settings, request)
        try:
            cursor = Cursor() if last_event_id is None else Cursor.parse(last_event_id)
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        snapshot = await self.stream.snapshot(job_id, caller)
        if snapshot is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, NOT_FOUND)
        first = await self.stream.news(job_id, snapshot, cursor, fresh=last_event_id is None)
        if snapshot.terminal and not first.frames:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return StreamingResponse(
            self.stream.follow(job_id, caller, first), media_type="text/event-stream", headers=_STREAM_HEADERS
        )
