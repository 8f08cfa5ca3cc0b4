"""An ASGI app served over real HTTP inside the test's event loop.

httpx's ASGI transport hands a response over only once it is complete, so a stream that stays open
(Server-Sent Events) needs a real server to be read while it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from photosplat_testkit.harness import free_port


@asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """``app`` on ``port`` (else a free one) of 127.0.0.1 (its lifespan off: the caller started the
    services); yields the base URL. Close the responses you opened first: uvicorn waits for them to end."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
