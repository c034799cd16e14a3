"""FastTransport and the helpers over it (omen/providers/http.py), against small real HTTP/1.1
servers on 127.0.0.1 that count their connections and misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import httpx
import pytest

from omen.providers.base import UpstreamError
from omen.providers.http import iter_lines, open_stream, post_json, transport_error
from omen.providers.transport import FastTransport
from tests.fakes import refusing_url

Writer = asyncio.StreamWriter
Handler = Callable[["RawServer", asyncio.StreamReader, Writer], Awaitable[None]]


def ok(body: bytes = b"ok", *headers: bytes) -> bytes:
    head = [b"HTTP/1.1 200 OK", b"Content-Length: " + str(len(body)).encode(), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
LAST_CHUNK = b"0\r\n\r\n"


class RawServer:
    """An asyncio TCP server speaking just enough HTTP/1.1 for one test's `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []  # every request head and body, in arrival order
        self.released = asyncio.Event()  # handlers that stall wait on this
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), or None when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for header in head.split(b"\r\n"):
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.released.set()
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.sleep(0.01)  # let handler tasks see the close and finish


def client(timeout: float = 2.0, max_connections: int = 200) -> httpx.AsyncClient:
    transport = FastTransport(max_connections=max_connections)
    return httpx.AsyncClient(transport=transport, timeout=timeout)


async def keep_alive_ok(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
    while await server.read_request(reader) is not None:
        writer.write(ok())
        await writer.drain()


# --- keep-alive and pooling --------------------------------------------------------------


async def test_sequential_requests_share_one_kept_alive_connection() -> None:
    async with RawServer(keep_alive_ok) as server, client() as http:
        statuses = [(await http.get(server.url + "/v1/models")).status_code for _ in range(20)]

    assert statuses == [200] * 20
    assert server.connections == 1
    assert len(server.requests) == 20


async def test_concurrent_requests_open_several_connections_and_all_succeed() -> None:
    async def slow(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        while (request := await server.read_request(reader)) is not None:
            await asyncio.sleep(0.05)
            writer.write(ok(request.split(b" ")[1]))  # echo the path
            await writer.drain()

    async with RawServer(slow) as server, client() as http:
        responses = await asyncio.gather(*(http.get(f"{server.url}/{i}") for i in range(8)))

    assert [r.content for r in responses] == [f"/{i}".encode() for i in range(8)]
    assert server.connections == 8  # all were in flight at once


async def test_connections_opened_for_a_burst_are_reused_by_the_next_burst() -> None:
    async def slow(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(ok())
            await writer.drain()

    async with RawServer(slow) as server, client() as http:
        await asyncio.gather(*(http.get(server.url) for _ in range(8)))
        await asyncio.gather(*(http.get(server.url) for _ in range(8)))

    assert server.connections == 8


async def test_pool_cap_queues_requests_beyond_it() -> None:
    busy, most_busy = 0, 0

    async def slow(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        nonlocal busy, most_busy
        while await server.read_request(reader) is not None:
            busy += 1
            most_busy = max(most_busy, busy)
            await asyncio.sleep(0.02)
            busy -= 1
            writer.write(ok())
            await writer.drain()

    async with RawServer(slow) as server, client(max_connections=2) as http:
        responses = await asyncio.gather(*(http.get(server.url) for _ in range(6)))

    assert [r.status_code for r in responses] == [200] * 6
    assert most_busy == 2


async def test_connection_close_response_is_not_reused() -> None:
    # The server says "Connection: close" but leaves the socket open: reusing it would work
    # here by accident, so only the header can keep the transport from doing so.
    async def says_close(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(ok(b"ok", b"Connection: close"))
            await writer.drain()

    async with RawServer(says_close) as server, client() as http:
        statuses = [(await http.get(server.url)).status_code for _ in range(3)]

    assert statuses == [200] * 3
    assert server.connections == 3


async def test_partly_read_streamed_response_does_not_return_its_connection() -> None:
    async def two_part(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(CHUNKED_HEAD + chunk(b"one"))
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(chunk(b"two") + LAST_CHUNK)
            await writer.drain()

    async with RawServer(two_part) as server, client() as http:
        async with http.stream("GET", server.url) as response:
            async for _ in response.aiter_raw():
                break  # the client walks away mid-body
        again = await http.get(server.url)

    assert again.content == b"onetwo"
    assert server.connections == 2


# --- bodies ------------------------------------------------------------------------------


async def test_content_length_body_is_read_whole() -> None:
    body = b'{"object":"list","data":[]}' * 1000

    async def big(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(ok(body, b"Content-Type: application/json"))
        await writer.drain()
        await server.released.wait()

    async with RawServer(big) as server, client() as http:
        response = await http.get(server.url)

    assert response.headers["content-type"] == "application/json"
    assert response.content == body


async def test_chunked_body_is_decoded() -> None:
    parts = [b'{"a":', b"1}\n", b"x" * 5000, b"\n"]

    async def chunked(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + b"".join(chunk(p) for p in parts) + LAST_CHUNK)
        await writer.drain()
        await server.released.wait()

    async with RawServer(chunked) as server, client() as http:
        response = await http.get(server.url)

    assert response.content == b"".join(parts)
    assert b"\r\n" not in response.content


async def test_streamed_body_arrives_before_the_server_finishes() -> None:
    gate = asyncio.Event()

    async def gated(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        await gate.wait()  # the rest only once the client has seen the first event
        writer.write(chunk(b"data: [DONE]\n\n") + LAST_CHUNK)
        await writer.drain()

    async with (
        RawServer(gated) as server,
        client() as http,
        http.stream("POST", server.url, content=b"{}") as response,
    ):
        pieces = response.aiter_raw()
        first = await asyncio.wait_for(anext(pieces), 1.0)
        gate.set()
        rest = [piece async for piece in pieces]

    assert first == b"data: first\n\n"
    assert b"".join(rest) == b"data: [DONE]\n\n"


async def test_request_carries_host_length_and_body() -> None:
    async with RawServer(keep_alive_ok) as server, client() as http:
        await http.post(server.url + "/v1/chat?api-version=1", content=b'{"model":"m"}')

    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /v1/chat?api-version=1 http/1.1"
    assert b"content-length: 13" in lines
    assert any(line.startswith(b"host: 127.0.0.1:") for line in lines)
    assert body == b'{"model":"m"}'


async def test_body_delimited_by_connection_close_is_read_to_the_end() -> None:
    async def until_eof(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe whole body")
        await writer.drain()
        writer.close()

    async with RawServer(until_eof) as server, client() as http:
        response = await http.get(server.url)

    assert response.content == b"the whole body"


async def test_head_response_has_no_body() -> None:
    async def head_ok(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n")
            await writer.drain()

    async with RawServer(head_ok) as server, client(timeout=0.3) as http:
        response = await http.head(server.url)

    assert response.status_code == 200
    assert response.content == b""


# --- failures ----------------------------------------------------------------------------


async def test_refused_connection_raises_connect_error() -> None:
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(refusing_url())


async def test_silent_server_raises_read_timeout_waiting_for_headers() -> None:
    async def silent(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        await server.released.wait()

    async with RawServer(silent) as server, client(timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url)


async def test_stalled_body_raises_read_timeout() -> None:
    async def stalls(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: one\n\n"))
        await writer.drain()
        await server.released.wait()

    async with (
        RawServer(stalls) as server,
        client(timeout=0.2) as http,
        http.stream("GET", server.url) as response,
    ):
        with pytest.raises(httpx.ReadTimeout):
            async for _ in response.aiter_raw():
                pass


async def test_server_closing_mid_content_length_body_raises_read_error() -> None:
    async def cut(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    async with RawServer(cut) as server, client() as http:
        with pytest.raises(httpx.ReadError):
            await asyncio.wait_for(http.get(server.url), 2.0)


async def test_server_closing_mid_chunked_stream_raises_read_error_after_the_data() -> None:
    async def cut(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: one\n\n"))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()

    received: list[bytes] = []
    async with (
        RawServer(cut) as server,
        client() as http,
        http.stream("GET", server.url) as response,
    ):
        with pytest.raises(httpx.ReadError):
            async for piece in response.aiter_raw():
                received.append(piece)

    assert received == [b"data: one\n\n"]


async def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def one_per_connection(
        server: RawServer, reader: asyncio.StreamReader, writer: Writer
    ) -> None:
        await server.read_request(reader)
        writer.write(ok())  # no "Connection: close": the client keeps it in the pool
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.close()

    async with RawServer(one_per_connection) as server, client() as http:
        first = await http.get(server.url)
        await asyncio.sleep(0.1)  # the close reaches the client while the connection idles
        second = await http.get(server.url)

    assert (first.status_code, second.status_code) == (200, 200)
    assert server.connections == 2


async def test_request_on_a_connection_the_server_just_closed_is_sent_again() -> None:
    # The race keep-alive pools must survive: the server drops the idle connection at the
    # moment a request goes out on it, before sending any response byte.
    async def drops_second(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(ok(b"first"))
            await writer.drain()
            await server.read_request(reader)
            return  # closes without answering
        while await server.read_request(reader) is not None:
            writer.write(ok(b"fresh"))
            await writer.drain()

    async with RawServer(drops_second) as server, client() as http:
        await http.get(server.url)
        retried = await http.post(server.url, content=b'{"n":2}')

    assert retried.content == b"fresh"
    assert server.connections == 2
    assert [r.endswith(b'{"n":2}') for r in server.requests] == [False, True, True]


async def test_fresh_connection_closed_without_a_response_is_not_retried() -> None:
    async def hangs_up(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)

    async with RawServer(hangs_up) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(server.url, content=b"{}")

    assert server.connections == 1
    assert len(server.requests) == 1


async def test_malformed_response_raises_remote_protocol_error() -> None:
    async def garbage(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await server.released.wait()

    async with RawServer(garbage) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await asyncio.wait_for(http.get(server.url), 2.0)


# --- omen.providers.http over the transport ----------------------------------------------


class Pieces(httpx.AsyncByteStream):
    """A response body that arrives in exactly these pieces, then optionally fails."""

    def __init__(self, *pieces: bytes, fail: httpx.HTTPError | None = None) -> None:
        self.pieces = pieces
        self.fail = fail

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.fail is not None:
            raise self.fail


async def lines_of(*pieces: bytes, fail: httpx.HTTPError | None = None) -> list[bytes]:
    response = httpx.Response(200, stream=Pieces(*pieces, fail=fail))
    return [line async for line in iter_lines(response, "test upstream")]


async def test_iter_lines_splits_on_lf_across_pieces() -> None:
    lines = await lines_of(b'{"a":1}\n{"b"', b":2}\n", b"\n", b'{"c":3}\n')

    assert lines == [b'{"a":1}', b'{"b":2}', b"", b'{"c":3}']


async def test_iter_lines_strips_crlf_even_when_cr_and_lf_arrive_apart() -> None:
    lines = await lines_of(b"data: one\r\n\r\ndata: two\r", b"\n\r\n")

    assert lines == [b"data: one", b"", b"data: two", b""]


async def test_iter_lines_yields_a_last_line_without_newline() -> None:
    assert await lines_of(b"a\nlast") == [b"a", b"last"]


async def test_iter_lines_turns_a_broken_body_into_a_mid_stream_upstream_error() -> None:
    with pytest.raises(UpstreamError) as caught:
        await lines_of(b"a\n", fail=httpx.ReadError("connection reset"))

    assert caught.value.mid_stream is True
    assert caught.value.status == 502
    assert "test upstream" in caught.value.message


def test_timeouts_map_to_504_and_other_failures_to_502_both_retryable() -> None:
    timed_out = transport_error(httpx.ReadTimeout("slow"), "openai https://x")
    refused = transport_error(httpx.ConnectError("refused"), "openai https://x")

    assert (timed_out.status, timed_out.type, timed_out.retryable) == (504, "timeout", True)
    assert (refused.status, refused.type, refused.retryable) == (
        502,
        "upstream_unreachable",
        True,
    )
    assert "openai https://x" in refused.message


def never_called(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    raise AssertionError("no HTTP error was expected")


def as_upstream_error(status: int, body: bytes, headers: httpx.Headers) -> UpstreamError:
    return UpstreamError(status, body.decode())


async def test_post_json_to_a_refused_port_is_upstream_unreachable() -> None:
    async with client() as http:
        with pytest.raises(UpstreamError) as caught:
            await post_json(
                http, refusing_url(), {}, headers={}, where="here", on_error=never_called
            )

    assert (caught.value.status, caught.value.type) == (502, "upstream_unreachable")


async def test_post_json_sends_json_and_returns_the_raw_bytes() -> None:
    async with RawServer(keep_alive_ok) as server, client() as http:
        raw, response = await post_json(
            http,
            server.url + "/api/chat",
            {"model": "m", "stream": False},
            headers={"content-type": "application/json"},
            where="here",
            on_error=never_called,
        )

    assert raw == b"ok" and response.status_code == 200
    assert server.requests[0].endswith(b'{"model":"m","stream":false}')


async def test_open_stream_hands_an_http_error_body_to_the_error_mapper() -> None:
    async def refuses(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        body = b'{"error":"model \\"x\\" not found"}'
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        await server.released.wait()

    async with RawServer(refuses) as server, client() as http:
        with pytest.raises(UpstreamError) as caught:
            async with open_stream(
                http, server.url, {}, headers={}, where="here", on_error=as_upstream_error
            ):
                pass

    assert caught.value.status == 404
    assert caught.value.message == '{"error":"model \\"x\\" not found"}'


async def test_open_stream_times_out_as_504() -> None:
    async def silent(server: RawServer, reader: asyncio.StreamReader, writer: Writer) -> None:
        await server.read_request(reader)
        await server.released.wait()

    async with RawServer(silent) as server, client(timeout=0.2) as http:
        with pytest.raises(UpstreamError) as caught:
            async with open_stream(
                http, server.url, {}, headers={}, where="here", on_error=never_called
            ):
                pass

    assert (caught.value.status, caught.value.type) == (504, "timeout")


async def test_a_body_iterator_finalised_late_does_not_close_the_connections_next_request() -> None:
    # Regression: an adapter that stops reading at [DONE] leaves its body iterator to be
    # finalised later; that finalisation used to close the connection, which by then had
    # gone back to the pool and was carrying the next request.
    from tests.fakes import FakeState, TextReply, make_openai_app, run_fake

    fake = FakeState(record=False)
    fake.script.default = TextReply("a slow streamed answer", chunk_delay=0.01)
    transport = FastTransport()
    with run_fake(make_openai_app(fake)) as server:
        url = f"{server.url}/v1/chat/completions"
        body = (
            b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
        )
        first = await transport.handle_async_request(httpx.Request("POST", url, content=body))
        abandoned = first.stream.__aiter__()  # type: ignore[union-attr]
        while not first.stream._conn.complete:  # type: ignore[union-attr]
            await abandoned.__anext__()
        await first.aclose()  # complete: the connection goes back to the pool
        second = await transport.handle_async_request(httpx.Request("POST", url, content=body))
        assert second.stream._conn is first.stream._conn  # type: ignore[union-attr]
        await abandoned.aclose()  # the late finalisation
        data = b"".join([part async for part in second.stream])  # type: ignore[union-attr]
        await second.aclose()
    await transport.aclose()
    assert data.rstrip().endswith(b"data: [DONE]")
