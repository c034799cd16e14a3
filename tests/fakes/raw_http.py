"""A raw-socket HTTP/1.1 server for transport tests: each test's handler writes exactly the
bytes it wants, well-formed or not, and the server counts connections and records requests.

In the test's own event loop: ``async with RawServer(handler) as server: ... server.url``.
For a daemon in another process: ``with RawServer(handler).running() as server: ...`` (a
thread with its own loop).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any

from omen.providers.base import UpstreamError
from omen.providers.http import Upstream, UpstreamClients, UpstreamSettings

Writer = asyncio.StreamWriter
Reader = asyncio.StreamReader
Handler = Callable[["RawServer", Reader, Writer], Awaitable[None]]

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


def ok(body: bytes = b"ok", *headers: bytes, status: bytes = b"200 OK") -> bytes:
    head = [b"HTTP/1.1 " + status, b"Content-Length: " + str(len(body)).encode(), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class RawServer:
    """An asyncio TCP (or TLS) server speaking just enough HTTP/1.1 for one test's handler."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.requests: list[bytes] = []  # every request head and body, in arrival order
        self.released = asyncio.Event()  # handlers that stall wait on this
        self.loop: asyncio.AbstractEventLoop | None = None
        self._writers: list[Writer] = []
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def read_request(self, reader: Reader) -> bytes | None:
        """One request (head and Content-Length body), or None when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        length = 0
        for header in head.split(b"\r\n"):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        try:
            body = await reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.requests.append(head + body)
        return head + body

    async def _accept(self, reader: Reader, writer: Writer) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self) -> RawServer:
        self.loop = asyncio.get_running_loop()
        self.released = asyncio.Event()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def stop(self) -> None:
        self.released.set()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        await asyncio.sleep(0.01)  # let handler tasks see the close and finish

    async def _stop_all(self) -> None:
        await self.stop()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def __aenter__(self) -> RawServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextmanager
    def running(self) -> Iterator[RawServer]:
        """Serve from a thread of its own (for a daemon in another process)."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=lambda: (asyncio.set_event_loop(loop), loop.run_forever()), daemon=True
        )
        thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=5)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self._stop_all(), loop).result(timeout=5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()


async def keep_alive_ok(server: RawServer, reader: Reader, writer: Writer) -> None:
    while await server.read_request(reader) is not None:
        writer.write(ok())
        await writer.drain()


@asynccontextmanager
async def upstream(url: str, **settings: Any) -> AsyncIterator[Upstream]:
    """Omen's upstream client for `url` (2 s timeout unless said), closed afterwards."""
    clients = UpstreamClients(UpstreamSettings(**{"timeout": 2.0, **settings}))
    try:
        yield clients.get(url)
    finally:
        await clients.aclose()


def never_called(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """An error mapper for calls that must not fail."""
    raise AssertionError("no HTTP error was expected")
