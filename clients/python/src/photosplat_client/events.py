"""Following a job's Server-Sent Events (``GET /recon/jobs/{id}/events``) until its final event.

A stream that ends early (the server ends each after a while, a replica stops, the network drops)
is opened again with ``Last-Event-ID``: the server then sends only what came later. A server
without the route (404) or that does not answer with an event stream raises
:class:`StreamUnavailable`, and so do repeated failures to connect: the caller polls instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource, SSEError

# The kinds the server sends (its photosplat_status.stream_events.EventKind).
STATE, LOG, CURVE, FINAL = "state", "log", "curve", "final"
KINDS = frozenset({STATE, LOG, CURVE, FINAL})
# Until the server says otherwise (its ``retry`` field, milliseconds).
DEFAULT_RETRY_SECONDS = 1.0
# Connection attempts in a row that may fail before the caller falls back to polling.
MAX_FAILURES = 3
# Longest wait for the next byte: the server sends a comment at least every 15 s.
READ_TIMEOUT_SECONDS = 45.0

OnEvent = Callable[[str, str], None]


class StreamUnavailable(Exception):
    """No event stream to follow here: poll the status route instead."""


class StreamRefused(Exception):
    """A 4xx other than 404 (no token, a bad Last-Event-ID): polling would be refused alike."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


@dataclass
class EventFollower:
    http: httpx.Client
    url: str
    headers: dict[str, str]
    # time.monotonic() past which following raises TimeoutError; None: no limit
    deadline: float | None = None
    last_event_id: str | None = None
    retry_seconds: float = DEFAULT_RETRY_SECONDS

    def follow(self, on_event: OnEvent) -> None:
        """Calls ``on_event(kind, data)`` for each event, in order, until the final one (or the
        server's 204: nothing follows the last id)."""
        failures = 0
        while True:
            before = self.last_event_id
            try:
                if self._connect(on_event):
                    return
            except (httpx.TransportError, _ServerTrouble) as exc:
                if isinstance(exc, httpx.TimeoutException) and self._past_deadline():
                    raise TimeoutError("the job did not end in time") from None
                # Failures in a row count: a connection that brought events starts the count again.
                failures = 1 if self.last_event_id != before else failures + 1
                if failures >= MAX_FAILURES:
                    raise StreamUnavailable(f"the event stream failed {failures} times: {exc}") from exc
            else:
                failures = 0
            if self._past_deadline():
                raise TimeoutError("the job did not end in time")
            time.sleep(self.retry_seconds)

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _read_timeout(self) -> float:
        if self.deadline is None:
            return READ_TIMEOUT_SECONDS
        return max(0.1, min(READ_TIMEOUT_SECONDS, self.deadline - time.monotonic()))

    def _connect(self, on_event: OnEvent) -> bool:
        """One connection; True once the job's stream ended (the final event, or 204)."""
        headers = {**self.headers, "Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        timeout = httpx.Timeout(30.0, read=self._read_timeout())
        with self.http.stream("GET", self.url, headers=headers, timeout=timeout) as response:
            return self._read(response, on_event)

    def _read(self, response: httpx.Response, on_event: OnEvent) -> bool:
        if response.status_code == 204:
            return True
        if response.status_code == 404:
            raise StreamUnavailable("the server has no event stream for this job")
        if response.status_code >= 500:
            raise _ServerTrouble(f"HTTP {response.status_code}")
        if response.is_error:
            response.read()
            raise StreamRefused(response)
        try:
            for sse in EventSource(response).iter_sse():
                if sse.retry is not None:
                    self.retry_seconds = sse.retry / 1000
                if sse.event not in KINDS:
                    continue  # the opening comment and retry, or a kind this client does not know
                self.last_event_id = sse.id or self.last_event_id
                on_event(sse.event, sse.data)
                if sse.event == FINAL:
                    return True
        except SSEError as exc:  # answered, but not with an event stream (a proxy's page)
            raise StreamUnavailable(str(exc)) from exc
        return False


class _ServerTrouble(Exception):
    """A 5xx: worth another try."""
