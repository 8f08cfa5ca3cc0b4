"""Test support shared by the services' test suites (no test framework imported here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from photosplat_libs.bus import Delivery
from photosplat_libs.events import Envelope

E = TypeVar("E", bound=Envelope)


class EventRecorder:
    """Every event a bus consumer hands it, in order; tests wait for the one they expect."""

    def __init__(self, default_timeout: float = 15.0) -> None:
        self.events: list[Envelope] = []
        self.default_timeout = default_timeout
        self._changed = asyncio.Event()

    async def handler(self, event: Envelope, _delivery: Delivery) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, predicate: Callable[[Envelope], bool], timeout: float | None = None) -> Envelope:
        async with asyncio.timeout(self.default_timeout if timeout is None else timeout):
            while True:
                found = next((e for e in self.events if predicate(e)), None)
                if found is not None:
                    return found
                self._changed.clear()
                await self._changed.wait()


class CuttableProxy:
    """A TCP relay to the broker whose connections can be cut, as a network failure would."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
