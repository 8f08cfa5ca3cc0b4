"""One call per route of the PhotoSplat API, answered as the typed models of :mod:`.models`."""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from photosplat_client import events
from photosplat_client.events import EventFollower
from photosplat_client.models import Declaration, JobStatus, SceneFile, SceneFiles, Submission, UploadSlot

M = TypeVar("M", bound=BaseModel)
CHUNK_BYTES = 256 * 1024
# How often `wait` asks for the status on a server without the event stream.
DEFAULT_POLL_SECONDS = 2.0
ByteCallback = Callable[[int], None]


@dataclass(frozen=True)
class FileProblem:
    """One photo the server refused, with the rule it broke."""

    file: str | None
    rule: str
    message: str


class ApiError(Exception):
    """A 4xx/5xx answer; ``message`` is the server's own explanation where it gave one."""

    def __init__(self, status_code: int, detail: Any, *, retry_after: str | None = None) -> None:
        self.status_code, self.detail, self.retry_after = status_code, detail, retry_after
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if isinstance(self.detail, str) and self.detail:
            text = self.detail
        elif isinstance(self.detail, dict) and isinstance(self.detail.get("message"), str):
            text = self.detail["message"]
        elif isinstance(self.detail, list) and self.detail:
            # FastAPI's request validation errors
            text = "; ".join(str(e.get("msg", e)) if isinstance(e, dict) else str(e) for e in self.detail)
        else:
            text = f"the server answered HTTP {self.status_code}"
        return f"{text} (retry after {self.retry_after} s)" if self.retry_after else text

    @property
    def problems(self) -> list[FileProblem]:
        """The per-photo refusals of a 400 from ingest."""
        errors = self.detail.get("errors") if isinstance(self.detail, dict) else None
        return [
            FileProblem(e.get("file"), str(e.get("rule", "")), str(e.get("message", "")))
            for e in errors or []
            if isinstance(e, dict)
        ]

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
            detail = body.get("detail", body) if isinstance(body, dict) else body
        except ValueError:
            # Not our JSON: an object store's XML error (its Code and Message say it) or a proxy's page.
            text = response.text
            found = {tag: re.search(f"<{tag}>([^<]*)</{tag}>", text) for tag in ("Code", "Message")}
            parts = [m.group(1) for m in found.values() if m]
            detail = ": ".join(parts) if parts else text.strip()[:300]
        return cls(response.status_code, detail, retry_after=response.headers.get("retry-after"))


@dataclass(frozen=True)
class PhotoToDeclare:
    name: str
    size: int
    content_type: str = ""


class PhotoSplatClient:
    """The API of one server (``server`` is its public base URL, e.g. ``http://127.0.0.1:8000``).

    ``token`` is the client token the server issued: it is sent with every call and, when absent,
    the first declaration gets one (kept in :attr:`token`). Safe to share between threads (httpx's
    client is), which the parallel uploads rely on.
    """

    def __init__(
        self, server: str, token: str | None = None, *, timeout: float = 60.0, http: httpx.Client | None = None
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self._http = http or httpx.Client(timeout=timeout, follow_redirects=True)

    def __enter__(self) -> PhotoSplatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _call(self, method: str, path: str, model: type[M], **kwargs: Any) -> M:
        headers = {"Accept": "application/json", **self._auth(), **kwargs.pop("headers", {})}
        response = self._http.request(method, self.server + path, headers=headers, **kwargs)
        if response.is_error:
            raise ApiError.of(response)
        return model.model_validate_json(response.content)

    def declare_uploads(
        self,
        photos: Sequence[PhotoToDeclare],
        *,
        preset: str = "standard",
        original_resolution: bool = False,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> Declaration:
        """A new job waiting for ``photos``; a retry with the same ``idempotency_key`` gets the same
        job (and URLs) back instead of a second one. ``callback_url``: POSTed the job's end (signed;
        the answer's ``webhook_secret`` verifies it)."""
        body: dict[str, object] = {
            "files": [{"name": p.name, "size": p.size, "content_type": p.content_type} for p in photos],
            "preset": preset,
            "original_resolution": original_resolution,
        }
        if callback_url:
            body["callback_url"] = callback_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        declaration = self._call("POST", "/recon/uploads", Declaration, json=body, headers=headers)
        self.token = declaration.token
        return declaration

    def put_file(self, slot: UploadSlot, path: Path, on_bytes: ByteCallback | None = None) -> str:
        """Upload ``path`` to its presigned ``slot``; the SHA-256 of the bytes sent. The store's
        URL carries its own signature: our token is never sent there."""
        digest = hashlib.sha256()
        size = os.stat(path).st_size

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    digest.update(chunk)
                    yield chunk
                    if on_bytes is not None:
                        on_bytes(len(chunk))

        # An explicit Content-Length: the URL was signed for exactly this size, and without it a
        # streamed body would go out chunked, which stores refuse for a presigned PUT.
        headers = {**slot.headers, "Content-Length": str(size)}
        response = self._http.request(slot.method, slot.url, content=chunks(), headers=headers)
        if response.is_error:
            raise ApiError.of(response)
        return digest.hexdigest()

    def submit(self, job_id: uuid.UUID | str, *, idempotency_key: str | None = None) -> Submission:
        """Check the uploaded photos and start the job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", f"/recon/jobs/{job_id}/submit", Submission, headers=headers)

    def status(self, job_id: uuid.UUID | str) -> JobStatus:
        return self._call("GET", f"/recon/jobs/{job_id}/status", JobStatus)

    def wait(
        self,
        job_id: uuid.UUID | str,
        *,
        interval: float = DEFAULT_POLL_SECONDS,
        timeout: float | None = None,
        on_status: Callable[[JobStatus], None] | None = None,
    ) -> JobStatus:
        """The job's status once it is DONE, FAILED or CANCELLED; ``on_status`` sees every state.

        It follows the job's Server-Sent Events (``GET /recon/jobs/{id}/events``), reconnecting
        with ``Last-Event-ID`` when a stream ends early; it polls the status route every
        ``interval`` seconds on a server without that route.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        follower = EventFollower(self._http, f"{self.server}/recon/jobs/{job_id}/events", self._auth(), deadline)
        last: list[JobStatus] = []

        def on_event(kind: str, data: str) -> None:
            if kind in (events.STATE, events.FINAL):
                last[:] = [JobStatus.model_validate_json(data)]
                if on_status is not None:
                    on_status(last[0])

        try:
            follower.follow(on_event)
        except events.StreamUnavailable:
            return self._poll(job_id, interval, deadline, timeout, on_status)
        except events.StreamRefused as exc:
            raise ApiError.of(exc.response) from None
        except TimeoutError:
            where = f"still {last[-1].status} ({last[-1].stage})" if last else "not finished"
            raise TimeoutError(f"job {job_id} is {where} after {timeout} s") from None
        # The whole answer (log tail and all) of the ended job.
        return self.status(job_id)

    def _poll(
        self,
        job_id: uuid.UUID | str,
        interval: float,
        deadline: float | None,
        timeout: float | None,
        on_status: Callable[[JobStatus], None] | None,
    ) -> JobStatus:
        while True:
            status = self.status(job_id)
            if on_status is not None:
                on_status(status)
            if status.status.terminal:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {status.status} ({status.stage}) after {timeout} s")
            time.sleep(interval)

    def scene_files(self, job_id: uuid.UUID | str) -> list[SceneFile]:
        """The downloads of a finished job (its status names the scene's public key)."""
        status = self.status(job_id)
        if status.pub_key is None:
            raise ApiError(409, f"job {job_id} has no scene to download: it is {status.status} ({status.stage})")
        return self._call("GET", f"/v/{status.pub_key}/files.json", SceneFiles).files

    def download(
        self, job_id: uuid.UUID | str, fmt: str, dest: Path, on_bytes: Callable[[int, int | None], None] | None = None
    ) -> Path:
        """Write the scene in format ``fmt`` (spz, ply, splat, sog) to ``dest``, a file or an
        existing folder (then under the server's file name); the path written. ``on_bytes`` gets
        (bytes so far, total or None)."""
        files = self.scene_files(job_id)
        found = next((f for f in files if f.format == fmt), None)
        if found is None:
            offered = ", ".join(f.format for f in files) or "none"
            raise ApiError(404, f"job {job_id} has no {fmt!r} file (it offers: {offered})")
        target = dest / found.filename if dest.is_dir() else dest
        partial = target.with_name(target.name + ".part")
        with self._http.stream("GET", self.server + found.href) as response:
            if response.is_error:
                response.read()
                raise ApiError.of(response)
            total = int(response.headers["content-length"]) if "content-length" in response.headers else found.bytes
            done = 0
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    out.write(chunk)
                    done += len(chunk)
                    if on_bytes is not None:
                        on_bytes(done, total)
        # Only a complete file takes the final name: an interrupted download leaves a .part behind.
        os.replace(partial, target)
        return target
