"""The upstream HTTP client (omen/providers/http.py, on aiohttp) against small real HTTP/1.1
servers on 127.0.0.1 that count their connections: pooling, errors as UpstreamError, timeouts
as 504, mid-stream failures, chunked bodies, LF and CRLF lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import pytest

from omen.providers.base import UpstreamError
from omen.providers.http import (
    Upstream,
    fetch,
    iter_lines,
    open_stream,
    post_json,
    sse_events,
    transport_error,
)
from tests.fakes import refusing_url
from tests.fakes.raw_http import (
    CHUNKED_HEAD,
    LAST_CHUNK,
    RawServer,
    Reader,
    Writer,
    chunk,
    keep_alive_ok,
    never_called,
    ok,
    upstream,
)

pytestmark = pytest.mark.timeout(20)


def as_upstream_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    return UpstreamError(status, body.decode())


async def get(client: Upstream, path: str = "/") -> bytes:
    body, _ = await fetch(client, "GET", path, headers={}, where="test", on_error=never_called)
    return body


async def post(client: Upstream, path: str = "/", payload: Any = None) -> bytes:
    body, _ = await post_json(
        client, path, payload or {}, headers={}, where="test", on_error=never_called
    )
    return body


# --- keep-alive and pooling --------------------------------------------------------------


async def test_sequential_requests_share_one_kept_alive_connection() -> None:
    async with RawServer(keep_alive_ok) as server, upstream(server.url) as client:
        bodies = [await get(client, "/v1/models") for _ in range(20)]

    assert bodies == [b"ok"] * 20
    assert server.connections == 1
    assert len(server.requests) == 20


async def test_concurrent_requests_open_several_connections_and_all_succeed() -> None:
    async def slow(server: RawServer, reader: Reader, writer: Writer) -> None:
        while (request := await server.read_request(reader)) is not None:
            await asyncio.sleep(0.05)
            writer.write(ok(request.split(b" ")[1]))  # echo the path
            await writer.drain()

    async with RawServer(slow) as server, upstream(server.url) as client:
        bodies = await asyncio.gather(*(get(client, f"/{i}") for i in range(8)))

    assert bodies == [f"/{i}".encode() for i in range(8)]
    assert server.connections == 8  # all were in flight at once


async def test_the_pool_caps_open_connections_at_max_connections() -> None:
    async def slow(server: RawServer, reader: Reader, writer: Writer) -> None:
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(ok())
            await writer.drain()

    async with RawServer(slow) as server, upstream(server.url, max_connections=2) as client:
        bodies = await asyncio.gather(*(get(client) for _ in range(6)))

    assert bodies == [b"ok"] * 6
    assert server.connections == 2


# --- what goes out and what comes back ---------------------------------------------------


async def test_post_json_sends_json_with_host_length_and_asks_for_no_compression() -> None:
    async with RawServer(keep_alive_ok) as server, upstream(server.url + "/v1") as client:
        raw, response = await post_json(
            client,
            "/chat",
            {"model": "m", "stream": False},
            headers={"content-type": "application/json", "authorization": "Bearer k"},
            params={"api-version": "1"},
            where="here",
            on_error=never_called,
        )

    assert raw == b"ok" and response.status == 200
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"post /v1/chat?api-version=1 http/1.1"
    assert b"content-length: 28" in lines
    assert b"accept-encoding: identity" in lines
    assert b"authorization: bearer k" in lines
    assert any(line.startswith(b"host: 127.0.0.1:") for line in lines)
    assert body == b'{"model":"m","stream":false}'


async def test_an_encoded_path_is_sent_as_the_adapter_encoded_it() -> None:
    async with RawServer(keep_alive_ok) as server, upstream(server.url) as client:
        await post(client, "/model/anthropic.claude-v1%3A0/converse")

    assert server.requests[0].startswith(b"POST /model/anthropic.claude-v1%3A0/converse ")


async def test_chunked_body_is_decoded() -> None:
    parts = [b'{"a":', b"1}\n", b"x" * 5000, b"\n"]

    async def chunked(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + b"".join(chunk(p) for p in parts) + LAST_CHUNK)
        await writer.drain()
        await server.released.wait()

    async with RawServer(chunked) as server, upstream(server.url) as client:
        body = await get(client)

    assert body == b"".join(parts)


async def test_body_delimited_by_connection_close_is_read_to_the_end() -> None:
    async def until_eof(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe whole body")
        await writer.drain()
        writer.close()

    async with RawServer(until_eof) as server, upstream(server.url) as client:
        assert await get(client) == b"the whole body"


async def test_streamed_body_arrives_before_the_server_finishes() -> None:
    gate = asyncio.Event()

    async def gated(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: first\n\n"))
        await writer.drain()
        await gate.wait()  # the rest only once the client has seen the first event
        writer.write(chunk(b"data: [DONE]\n\n") + LAST_CHUNK)
        await writer.drain()

    async with (
        RawServer(gated) as server,
        upstream(server.url) as client,
        open_stream(client, "/", {}, headers={}, where="t", on_error=never_called) as stream,
    ):
        events = sse_events(stream, "t")
        first = await asyncio.wait_for(anext(events), 1.0)
        gate.set()
        rest = [event async for event in events]

    assert first == b"data: first\n\n"
    assert rest == [b"data: [DONE]\n\n"]


async def test_a_stream_left_early_closes_its_connection_and_the_next_call_succeeds() -> None:
    async def endless_then_ok(server: RawServer, reader: Reader, writer: Writer) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(CHUNKED_HEAD)
            while True:
                writer.write(chunk(b"data: more\n\n"))
                await writer.drain()
                await asyncio.sleep(0.01)
        await keep_alive_ok(server, reader, writer)

    async with RawServer(endless_then_ok) as server, upstream(server.url) as client:
        async with open_stream(client, "/", {}, headers={}, where="t", on_error=never_called) as s:
            async for _ in s.aiter_raw():
                break
        assert await get(client) == b"ok"

    assert server.connections == 2


# --- failures ----------------------------------------------------------------------------


async def test_refused_connection_is_a_502_upstream_unreachable() -> None:
    async with upstream(refusing_url()) as client:
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert (caught.value.status, caught.value.type) == (502, "upstream_unreachable")
    assert caught.value.retryable is True


async def test_silent_server_is_a_504_timeout() -> None:
    async def silent(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        await server.released.wait()

    async with RawServer(silent) as server, upstream(server.url, timeout=0.2) as client:
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert (caught.value.status, caught.value.type, caught.value.retryable) == (
        504,
        "timeout",
        True,
    )


async def test_stalled_stream_after_its_first_event_is_a_mid_stream_504() -> None:
    async def stalls(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: one\n\n"))
        await writer.drain()
        await server.released.wait()

    received: list[bytes] = []
    async with (
        RawServer(stalls) as server,
        upstream(server.url, idle_timeout=0.2) as client,
        open_stream(client, "/", {}, headers={}, where="t", on_error=never_called) as stream,
    ):
        with pytest.raises(UpstreamError) as caught:
            async for event in sse_events(stream, "t"):
                received.append(event)

    assert received == [b"data: one\n\n"]
    assert (caught.value.status, caught.value.type, caught.value.mid_stream) == (
        504,
        "timeout",
        True,
    )
    assert "idle_timeout" in caught.value.message


async def test_server_closing_mid_content_length_body_is_a_502() -> None:
    async def cut(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    async with RawServer(cut) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            await get(client)

    assert caught.value.status == 502


async def test_server_closing_mid_chunked_stream_is_a_mid_stream_502_after_the_data() -> None:
    async def cut(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: one\n\n"))
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()

    received: list[bytes] = []
    async with (
        RawServer(cut) as server,
        upstream(server.url) as client,
        open_stream(client, "/", {}, headers={}, where="t", on_error=never_called) as stream,
    ):
        with pytest.raises(UpstreamError) as caught:
            async for line in iter_lines(stream, "t"):
                received.append(line)

    assert received == [b"data: one", b""]
    assert (caught.value.status, caught.value.mid_stream) == (502, True)


async def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def one_per_connection(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(ok())  # no "Connection: close": the client keeps it in the pool
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.close()

    async with RawServer(one_per_connection) as server, upstream(server.url) as client:
        first = await get(client)
        await asyncio.sleep(0.1)  # the close reaches the client while the connection idles
        second = await get(client)

    assert (first, second) == (b"ok", b"ok")
    assert server.connections == 2


async def test_a_post_on_a_connection_the_server_just_closed_is_not_sent_again() -> None:
    # The race keep-alive pools meet: the server drops the idle connection as a request goes
    # out on it. A POST may have been acted on (and billed): it fails, it is never re-sent.
    async def drops_second(server: RawServer, reader: Reader, writer: Writer) -> None:
        if server.connections == 1:
            await server.read_request(reader)
            writer.write(ok(b"first"))
            await writer.drain()
            await server.read_request(reader)
            return  # closes without answering
        await keep_alive_ok(server, reader, writer)

    async with RawServer(drops_second) as server, upstream(server.url) as client:
        assert await post(client, "/", {"n": 1}) == b"first"
        with pytest.raises(UpstreamError) as caught:
            await post(client, "/", {"n": 2})

    assert caught.value.status == 502
    assert server.connections == 1
    assert [r.endswith(b'{"n":2}') for r in server.requests] == [False, True]


async def test_malformed_response_is_a_502() -> None:
    async def garbage(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await server.released.wait()

    async with RawServer(garbage) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            await get(client)

    assert caught.value.status == 502


async def test_fetch_hands_an_http_error_body_to_the_error_mapper() -> None:
    async def refuses(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(ok(b'{"error":"model \\"x\\" not found"}', status=b"404 Not Found"))
        await writer.drain()
        await server.released.wait()

    async with RawServer(refuses) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            await fetch(client, "GET", "/", headers={}, where="t", on_error=as_upstream_error)

    assert caught.value.status == 404
    assert caught.value.message == '{"error":"model \\"x\\" not found"}'


async def test_open_stream_hands_an_http_error_body_to_the_error_mapper() -> None:
    async def refuses(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(ok(b"overloaded", status=b"529 Overloaded"))
        await writer.drain()
        await server.released.wait()

    async with RawServer(refuses) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            async with open_stream(
                client, "/", {}, headers={}, where="t", on_error=as_upstream_error
            ):
                pass

    assert (caught.value.status, caught.value.message) == (529, "overloaded")


async def test_open_stream_without_an_answer_is_a_504_before_the_first_byte() -> None:
    async def silent(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        await server.released.wait()

    async with RawServer(silent) as server, upstream(server.url, timeout=0.2) as client:
        with pytest.raises(UpstreamError) as caught:
            async with open_stream(client, "/", {}, headers={}, where="t", on_error=never_called):
                pass

    assert (caught.value.status, caught.value.type, caught.value.mid_stream) == (
        504,
        "timeout",
        False,
    )


def test_timeouts_map_to_504_and_other_failures_to_502_both_retryable() -> None:
    timed_out = transport_error(TimeoutError(), "openai https://x")
    refused = transport_error(ConnectionRefusedError("refused"), "openai https://x")

    assert (timed_out.status, timed_out.type, timed_out.retryable) == (504, "timeout", True)
    assert (refused.status, refused.type, refused.retryable) == (502, "upstream_unreachable", True)
    assert "openai https://x" in refused.message


# --- lines and events over any streamed body ---------------------------------------------


class Pieces:
    """A body that arrives in exactly these pieces, then optionally fails."""

    def __init__(self, *pieces: bytes, fail: UpstreamError | None = None) -> None:
        self.pieces = pieces
        self.fail = fail

    async def aiter_raw(self) -> AsyncGenerator[bytes, None]:
        for piece in self.pieces:
            yield piece
        if self.fail is not None:
            raise self.fail


async def lines_of(*pieces: bytes, fail: UpstreamError | None = None) -> list[bytes]:
    return [line async for line in iter_lines(Pieces(*pieces, fail=fail), "test upstream")]


async def test_iter_lines_splits_on_lf_across_pieces() -> None:
    lines = await lines_of(b'{"a":1}\n{"b"', b":2}\n", b"\n", b'{"c":3}\n')

    assert lines == [b'{"a":1}', b'{"b":2}', b"", b'{"c":3}']


async def test_iter_lines_strips_crlf_even_when_cr_and_lf_arrive_apart() -> None:
    lines = await lines_of(b"data: one\r\n\r\ndata: two\r", b"\n\r\n")

    assert lines == [b"data: one", b"", b"data: two", b""]


async def test_iter_lines_yields_a_last_line_without_newline() -> None:
    assert await lines_of(b"a\nla", b"st") == [b"a", b"last"]


async def test_iter_lines_passes_a_broken_body_on_as_its_upstream_error() -> None:
    broken = UpstreamError(502, "test upstream: connection reset", mid_stream=True)
    with pytest.raises(UpstreamError) as caught:
        await lines_of(b"a\n", fail=broken)

    assert caught.value is broken


@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"])
async def test_sse_events_keep_their_bytes_when_separators_straddle_pieces(
    separator: bytes,
) -> None:
    stream = b"data: 1" + separator + b"event: x\ndata: 2" + separator + b"data: 3" + separator
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]

    events = [event async for event in sse_events(Pieces(*pieces), "t")]

    assert b"".join(events) == stream
    assert len(events) == 3
