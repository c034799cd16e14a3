"""A lean HTTP/1.1 keep-alive transport for httpx, built on asyncio protocols and httptools.

httpx's default transport (httpcore on anyio) costs about 0.5 ms a request here and degrades
badly with 50 concurrent requests on one pool; a gateway whose whole budget is under a
millisecond cannot afford that. httpx lets the transport be swapped, so the adapters keep
httpx's client API and this module owns the sockets: one pool per origin, responses
streamed as they arrive, chunked bodies decoded by httptools, httpx's exceptions raised.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httptools  # type: ignore[import-untyped,unused-ignore]
import httpx

_HIGH_WATER = 1 << 20  # pause reading when this many response bytes wait unread


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._reset()

    def _reset(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._status = 0
        self._head: asyncio.Future[None] = self._loop.create_future()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._wakeup: asyncio.Future[None] | None = None
        self.complete = False
        self.received_any = False
        self._error: BaseException | None = None
        self._paused = False
        self._reusable = False
        self._head_only = False
        self._delimited = False  # Content-Length or chunked; else the body runs to EOF

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # pragma: no cover - never asked for
            self._fail(httpx.RemoteProtocolError("unexpected upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._head.done() and not self._delimited and not self.complete and exc is None:
            # A body with neither length nor chunking ends when the server closes.
            self.complete = True
            self._wake()
        if not self.complete:
            if not self.received_any:
                self._fail(httpx.RemoteProtocolError("server closed the connection"))
            else:
                self._fail(httpx.ReadError("connection closed before the response ended"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lname = name.lower()
        if lname == b"content-length" or (lname == b"transfer-encoding" and b"chunked" in value):
            self._delimited = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._status in (204, 304) or 100 <= self._status < 200:
            self._delimited = True  # no body by definition
        if not self._head.done():
            self._head.set_result(None)
        if self._head_only:
            # The answer to HEAD has headers only, whatever Content-Length says; the parser
            # would wait for that body, so this connection is not reused.
            self.complete = True
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and self.transport and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        # Asked now: once the message is complete the parser resets and always says no.
        self._reusable = bool(self._parser.should_keep_alive())
        self.complete = True
        self._wake()

    # used by the transport
    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
            self._head.exception()  # mark retrieved; the caller re-raises it
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def start(self, data: bytes, *, head_only: bool = False) -> None:
        self._reset()
        self._head_only = head_only
        assert self.transport is not None
        self.transport.write(data)

    async def head(self, timeout: float | None) -> tuple[int, list[tuple[bytes, bytes]]]:
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._head)
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the response headers") from None
        return self._status, self._headers

    async def body(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _HIGH_WATER // 2 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            if self.complete:
                return
            if self._error is not None:
                raise self._error
            self._wakeup = self._loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup
            except TimeoutError:
                raise httpx.ReadTimeout("timed out reading the response body") from None
            finally:
                self._wakeup = None

    @property
    def keep_alive(self) -> bool:
        return self.complete and self._reusable and not self.closed and not self._head_only

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    """Idle connections to one origin, and a cap on how many may be open at once."""

    def __init__(self, max_connections: int) -> None:
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(
        self, transport: FastTransport, key: str, conn: _Connection, timeout: float | None
    ):
        self._transport = transport
        self._key = key
        self._conn = conn
        self._timeout = timeout
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._conn.body(self._timeout):
                yield chunk
        except GeneratorExit:
            # The reader stopped early. An abandoned generator is finalised later, maybe
            # after the connection went back to the pool and on to another request: leave
            # the decision to aclose(), which knows whether the response was complete.
            raise
        except BaseException:
            if not self._released:
                self._conn.close()
            raise

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._transport._release(self._key, self._conn)


class FastTransport(httpx.AsyncBaseTransport):
    """httpx transport: HTTP/1.1 with keep-alive pools per origin; http and https."""

    def __init__(self, *, max_connections: int = 200, verify: bool | ssl.SSLContext = True):
        self._pools: dict[str, _Pool] = {}
        self._max_connections = max_connections
        if isinstance(verify, ssl.SSLContext):
            self._ssl: ssl.SSLContext = verify
        else:
            self._ssl = ssl.create_default_context()
            if not verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        url = request.url
        scheme, host = url.scheme, url.host
        port = url.port or (443 if scheme == "https" else 80)
        key = f"{scheme}://{host}:{port}"
        body = await request.aread()
        head = self._serialise_head(request, host, port, scheme, len(body))
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self._max_connections)
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await pool.slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in the pool") from None
        try:
            for attempt in (1, 2):
                conn = await self._checkout(pool, scheme, host, port, timeouts.get("connect"))
                conn.start(head + body, head_only=request.method == "HEAD")
                try:
                    status, headers = await conn.head(timeouts.get("read"))
                    break
                except httpx.RemoteProtocolError:
                    conn.close()
                    # A kept-alive connection the server closed while idle: send once more
                    # on a fresh one. Nothing of a response arrived, so nothing was lost.
                    if attempt == 2 or not conn.reused or conn.received_any:
                        raise
                except BaseException:
                    conn.close()
                    raise
        except BaseException:
            pool.slots.release()
            raise
        stream = _ResponseStream(self, key, conn, timeouts.get("read"))
        return httpx.Response(status, headers=headers, stream=stream, extensions={})

    def _serialise_head(
        self, request: httpx.Request, host: str, port: int, scheme: str, length: int
    ) -> bytes:
        target = request.url.raw_path
        lines = [request.method.encode() + b" " + target + b" HTTP/1.1"]
        has_host = False
        for name, value in request.headers.raw:
            lname = name.lower()
            if lname in (b"content-length", b"transfer-encoding", b"connection"):
                continue
            if lname == b"host":
                has_host = True
            lines.append(name + b": " + value)
        if not has_host:
            default = port == (443 if scheme == "https" else 80)
            lines.append(b"Host: " + (host if default else f"{host}:{port}").encode())
        if length or request.method not in ("GET", "HEAD"):
            lines.append(b"Content-Length: " + str(length).encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _checkout(
        self, pool: _Pool, scheme: str, host: str, port: int, timeout: float | None
    ) -> _Connection:
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    host,
                    port,
                    ssl=self._ssl if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    def _release(self, key: str, conn: _Connection) -> None:
        pool = self._pools.get(key)
        if pool is None:
            conn.close()
            return
        if conn.keep_alive:
            pool.idle.append(conn)
        else:
            conn.close()
        pool.slots.release()

    async def aclose(self) -> None:
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()
        self._pools.clear()
