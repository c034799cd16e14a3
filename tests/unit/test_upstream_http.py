"""Upstream HTTP against a raw-socket server that misbehaves on purpose: every answer bounded
in bytes and time, malformed answers refused, nothing unsafe sent, proxies and TLS settings
honoured, and a stream that ends without its protocol's last event reported as truncated."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from omen.config import ProviderConfig
from omen.providers import NativeCall, UnsupportedProvider, build_provider
from omen.providers.base import UpstreamError
from omen.providers.http import (
    MiB,
    Upstream,
    UpstreamSettings,
    UpstreamSetupError,
    fetch,
    iter_lines,
    open_stream,
    post_json,
)
from tests.fakes.bedrock_upstream import event_frame
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

pytestmark = pytest.mark.timeout(30)


async def post(client: Upstream, headers: dict[str, str] | None = None) -> bytes:
    body, _ = await post_json(
        client, "/", {}, headers=headers or {}, where="test", on_error=never_called
    )
    return body


async def read_stream(client: Upstream) -> list[bytes]:
    async with open_stream(client, "/", {}, headers={}, where="t", on_error=never_called) as s:
        return [line async for line in iter_lines(s, "t")]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- bytes: endless bodies, bombs ---------------------------------------------------------


async def endless(server: RawServer, reader: Reader, writer: Writer) -> None:
    await server.read_request(reader)
    writer.write(CHUNKED_HEAD)
    piece = chunk(b"data: " + b"x" * 65536 + b"\n\n")
    while not writer.is_closing():
        writer.write(piece)
        await writer.drain()


async def test_an_endless_body_is_a_502_at_max_response_size_and_memory_stays_bounded() -> None:
    before = rss_bytes()
    async with (
        RawServer(endless) as server,
        upstream(server.url, max_response_size=16 * MiB) as client,
    ):
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert (caught.value.status, caught.value.code) == (502, "response_too_large")
    assert rss_bytes() - before < 100 * MiB


async def test_an_endless_stream_is_a_mid_stream_502_at_max_response_size() -> None:
    async with (
        RawServer(endless) as server,
        upstream(server.url, max_response_size=4 * MiB) as client,
    ):
        with pytest.raises(UpstreamError) as caught:
            await read_stream(client)

    assert (caught.value.status, caught.value.code) == (502, "response_too_large")
    assert caught.value.mid_stream is True


async def test_a_body_announced_larger_than_the_limit_is_refused_unread() -> None:
    async def huge(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n{")
        await writer.drain()
        await server.released.wait()

    async with RawServer(huge) as server, upstream(server.url, max_response_size=MiB) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert caught.value.code == "response_too_large"
    assert time.monotonic() - started < 1.0


def gzip_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    return b"".join(packer.compress(block) for _ in range(size // MiB)) + packer.flush()


def gzip_answer(body: bytes) -> bytes:
    return ok(body, b"Content-Encoding: gzip")


async def test_a_gzip_bomb_sent_unasked_is_cut_at_max_response_size() -> None:
    bomb = gzip_of_zeros(256 * MiB)  # ~250 KB on the wire

    async def bombs(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(gzip_answer(bomb))
        await writer.drain()
        await server.released.wait()

    before = rss_bytes()
    async with RawServer(bombs) as server, upstream(server.url, max_response_size=8 * MiB) as c:
        with pytest.raises(UpstreamError) as caught:
            await post(c)

    assert (caught.value.status, caught.value.code) == (502, "response_too_large")
    assert rss_bytes() - before < 100 * MiB
    assert b"accept-encoding: identity" in server.requests[0].lower()


async def test_a_small_gzip_body_sent_unasked_is_decoded() -> None:
    async def gzips(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        writer.write(gzip_answer(packer.compress(b'{"ok":true}') + packer.flush()))
        await writer.drain()
        await server.released.wait()

    async with RawServer(gzips) as server, upstream(server.url) as client:
        assert await post(client) == b'{"ok":true}'


# --- time: drips, stalls, streams that never end ------------------------------------------


def dripping(answer: bytes, every: float) -> Any:
    async def drip(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        for byte in answer:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every)

    return drip


async def test_a_dripping_answer_ends_at_timeout_as_a_504() -> None:
    answer = ok(b'{"choices": []}')
    async with (
        RawServer(dripping(answer, 0.05)) as server,
        upstream(server.url, timeout=0.5) as client,
    ):
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await post(client)
        took = time.monotonic() - started

    assert (caught.value.status, caught.value.type) == (504, "timeout")
    assert 0.45 < took < 0.9


async def test_a_dripping_body_after_prompt_headers_still_ends_at_timeout() -> None:
    async def drip_body(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with RawServer(drip_body) as server, upstream(server.url, timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await post(client)
        took = time.monotonic() - started

    assert caught.value.status == 504
    assert 0.45 < took < 0.9


async def test_a_dripping_stream_ends_at_first_byte_timeout_before_any_event() -> None:
    answer = CHUNKED_HEAD + chunk(b"data: {}\n\n") + LAST_CHUNK
    async with (
        RawServer(dripping(answer, 0.05)) as server,
        upstream(server.url, timeout=0.5) as client,
    ):
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await read_stream(client)
        took = time.monotonic() - started

    assert (caught.value.status, caught.value.type, caught.value.mid_stream) == (
        504,
        "timeout",
        False,
    )
    assert 0.45 < took < 0.9


async def test_a_stream_that_keeps_trickling_ends_at_max_stream_duration() -> None:
    async def trickles(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: first\n\n"))
        while not writer.is_closing():
            writer.write(chunk(b":\n"))
            await writer.drain()
            await asyncio.sleep(0.05)

    async with (
        RawServer(trickles) as server,
        upstream(server.url, max_stream_duration=0.6, idle_timeout=5) as client,
    ):
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await read_stream(client)
        took = time.monotonic() - started

    assert (caught.value.status, caught.value.mid_stream) == (504, True)
    assert "max_stream_duration" in caught.value.message
    assert 0.55 < took < 1.0


async def test_time_spent_by_the_reader_between_reads_is_not_idle_time() -> None:
    async def two_events(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") + LAST_CHUNK)
        await writer.drain()
        await server.released.wait()

    lines: list[bytes] = []
    async with (
        RawServer(two_events) as server,
        upstream(server.url, idle_timeout=0.1) as client,
        open_stream(client, "/", {}, headers={}, where="t", on_error=never_called) as stream,
    ):
        async for line in iter_lines(stream, "t"):
            lines.append(line)
            await asyncio.sleep(0.2)  # a slow client: what already arrived is still read

    assert lines == [b"data: 1", b"", b"data: 2", b""]


# --- malformed answers -------------------------------------------------------------------


def answering(answer: bytes, *, then_close: bool = False) -> Any:
    async def answers(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()
        if then_close:
            writer.close()
            return
        await server.released.wait()

    return answers


async def test_informational_answers_are_skipped_for_the_final_one() -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + ok(b"final")
    )
    async with RawServer(answering(answer)) as server, upstream(server.url) as client:
        assert await post(client) == b"final"


async def test_a_body_shorter_than_its_content_length_is_an_error_not_a_short_success() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"a":1}'
    async with RawServer(answering(answer, then_close=True)) as server, upstream(server.url) as c:
        with pytest.raises(UpstreamError) as caught:
            await post(c)

    assert caught.value.status == 502


@pytest.mark.parametrize("name", [b"Transfer-Encoding: Chunked", b"transfer-encoding: CHUNKED"])
async def test_chunked_in_any_case_is_decoded_and_a_cut_one_is_an_error(name: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + name + b"\r\n\r\n"
    whole = head + chunk(b'{"a":') + chunk(b"1}") + LAST_CHUNK
    cut = head + chunk(b'{"a":') + chunk(b"1}")
    async with RawServer(answering(whole)) as server, upstream(server.url) as client:
        assert await post(client) == b'{"a":1}'
    async with RawServer(answering(cut, then_close=True)) as server, upstream(server.url) as c:
        with pytest.raises(UpstreamError) as caught:
            await post(c)

    assert caught.value.status == 502


async def test_a_connection_closed_after_the_headers_is_an_error() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    async with RawServer(answering(head, then_close=True)) as server, upstream(server.url) as c:
        with pytest.raises(UpstreamError) as caught:
            await post(c)
    async with (
        RawServer(answering(CHUNKED_HEAD, then_close=True)) as server,
        upstream(server.url) as c,
    ):
        with pytest.raises(UpstreamError) as cut_stream:
            await read_stream(c)

    assert caught.value.status == 502
    assert (cut_stream.value.status, cut_stream.value.mid_stream) == (502, False)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 9000 + b"\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\nok",
        b"HTTP/1.1 999 Whatever\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["header-line-over-8190-bytes", "over-128-headers", "status-999"],
)
async def test_an_answer_head_out_of_bounds_is_a_502(answer: bytes) -> None:
    async with RawServer(answering(answer)) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert caught.value.status == 502


async def test_an_endless_header_block_is_a_502_without_waiting_for_its_end() -> None:
    async def endless_headers(server: RawServer, reader: Reader, writer: Writer) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(100_000):
            writer.write(b"X-%d: v\r\n" % i)
            await writer.drain()

    async with RawServer(endless_headers) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert caught.value.status == 502


# --- what Omen sends ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["sk-key\r\nInjected: yes", "sk-key\n", "sk\rkey"])
async def test_a_header_value_with_cr_or_lf_is_never_sent(value: str) -> None:
    async with RawServer(keep_alive_ok) as server, upstream(server.url) as client:
        with pytest.raises(UpstreamError) as caught:
            await post(client, {"authorization": value})

    assert caught.value.status == 502
    assert "sk-key" not in caught.value.message
    assert server.requests == []


# --- proxies from the environment ---------------------------------------------------------


def proxy_env(monkeypatch: pytest.MonkeyPatch, proxy: str, no_proxy: str = "") -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)


async def test_http_proxy_from_the_environment_carries_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with RawServer(answering(ok(b"via proxy"))) as proxy:
        proxy_env(monkeypatch, proxy.url)
        async with upstream("http://upstream.invalid:8000/v1") as client:
            body, _ = await post_json(
                client, "/chat/completions", {}, headers={}, where="t", on_error=never_called
            )

    assert body == b"via proxy"
    assert proxy.requests[0].startswith(
        b"POST http://upstream.invalid:8000/v1/chat/completions HTTP/1.1\r\n"
    )


async def test_no_proxy_sends_the_request_straight_to_the_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with RawServer(answering(ok(b"via proxy"))) as proxy, RawServer(keep_alive_ok) as up:
        proxy_env(monkeypatch, proxy.url, no_proxy="127.0.0.1")
        async with upstream(up.url) as client:
            assert await post(client) == b"ok"

    assert proxy.requests == []
    assert len(up.requests) == 1


# --- TLS: a private CA, a client certificate ------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def issue(name: str, usage: str, san: str, cwd: Path) -> None:
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=cwd)
    subject = f"/CN={name}"
    openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(
        f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectKeyIdentifier=hash\n"
        f"authorityKeyIdentifier=keyid,issuer\n{san}"
    )
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    root = tmp_path_factory.mktemp("pki")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=root)
    openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Omen Test CA", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem",
        cwd=root,
    )  # fmt: skip
    issue("server", "serverAuth", "subjectAltName=IP:127.0.0.1", root)
    issue("client", "clientAuth", "", root)
    return root


def server_tls(pki: Path, *, require_client: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    if require_client:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki / "ca.pem")
    return context


async def test_ca_bundle_trusts_a_private_ca(pki: Path) -> None:
    async with (
        RawServer(keep_alive_ok, tls=server_tls(pki)) as server,
        upstream(server.url, ca_bundle=pki / "ca.pem") as client,
    ):
        assert await post(client) == b"ok"


async def test_a_certificate_from_an_unknown_ca_is_refused(pki: Path) -> None:
    async with (
        RawServer(keep_alive_ok, tls=server_tls(pki)) as server,
        upstream(server.url) as client,
    ):
        with pytest.raises(UpstreamError) as caught:
            await post(client)

    assert caught.value.status == 502
    assert "certificate" in caught.value.message.lower()
    assert server.requests == []


async def test_client_cert_is_presented_to_a_server_that_requires_one(pki: Path) -> None:
    tls = server_tls(pki, require_client=True)
    async with RawServer(keep_alive_ok, tls=tls) as server:
        async with upstream(
            server.url,
            ca_bundle=pki / "ca.pem",
            client_cert=pki / "client.pem",
            client_key=pki / "client.key",
        ) as client:
            assert await post(client) == b"ok"
        async with upstream(server.url, ca_bundle=pki / "ca.pem") as client:
            with pytest.raises(UpstreamError) as caught:
                await post(client)

    assert caught.value.status == 502
    assert len(server.requests) == 1


def test_a_missing_tls_file_stops_the_provider_at_start(tmp_path: Path) -> None:
    with pytest.raises(UpstreamSetupError):
        UpstreamSettings(ca_bundle=tmp_path / "missing.pem").ssl_context()
    config = ProviderConfig.model_validate(
        {"name": "openai", "api_key": "sk-x", "client_cert": str(tmp_path / "missing.pem")}
    )
    with pytest.raises(UnsupportedProvider, match="TLS settings unusable"):
        build_provider(config)


# --- truncation: a clean end without the protocol's last event ------------------------------


def sse(*events: Any, event_names: bool = False) -> bytes:
    out = b""
    for event in events:
        if event_names:
            out += b"event: " + event["type"].encode() + b"\n"
        out += b"data: " + orjson.dumps(event) + b"\n\n"
    return out


ANTHROPIC_START = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4",
            "content": [],
            "usage": {"input_tokens": 3, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
]
OPENAI_CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "gpt-4o",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
}
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def bedrock_chunk(event: Any) -> bytes:
    return event_frame("chunk", {"bytes": base64.b64encode(orjson.dumps(event)).decode()})


TRUNCATED: dict[str, tuple[str, str, bytes]] = {
    # case: (provider type, call, body that ends cleanly before the terminator)
    "openai-chat": ("openai", "stream", sse(OPENAI_CHUNK) + b"data: [DONE]\n\n"),
    "openai-responses": (
        "openai",
        "responses",
        sse(
            {"type": "response.created", "response": {"id": "r1", "model": "gpt-4o"}},
            {"type": "response.output_text.delta", "delta": "Hi"},
            event_names=True,
        ),
    ),
    "anthropic-chat": ("anthropic", "stream", sse(*ANTHROPIC_START, event_names=True)),
    "anthropic-messages": ("anthropic", "messages", sse(*ANTHROPIC_START, event_names=True)),
    "ollama-chat": (
        "ollama",
        "stream",
        b'{"model":"llama3","message":{"role":"assistant","content":"Hi"},"done":false}\n',
    ),
    "ollama-messages": ("ollama", "messages", sse(*ANTHROPIC_START, event_names=True)),
    "gemini-chat": (
        "gemini",
        "stream",
        sse({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}),
    ),
    "bedrock-converse": (
        "bedrock",
        "stream",
        event_frame("messageStart", {"role": "assistant"})
        + event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
    ),
    "bedrock-invoke": ("bedrock", "messages", b"".join(bedrock_chunk(e) for e in ANTHROPIC_START)),
}


def stream_answer(body: bytes) -> bytes:
    return CHUNKED_HEAD + chunk(body) + LAST_CHUNK


async def call(provider: Any, kind: str, url: str) -> list[Any]:
    model = BEDROCK_MODEL if provider.name == "bedrock" else "m"
    messages = [{"role": "user", "content": "Hi"}]
    if kind == "stream":
        body = {"model": model, "messages": messages, "stream": True}
        return [chunk async for chunk in provider.stream(url, body)]
    wire = "responses" if kind == "responses" else "messages"
    native = {"model": model, "stream": True, "max_tokens": 10}
    native |= {"input": "Hi"} if wire == "responses" else {"messages": messages}
    relayed = provider.native_stream(url, NativeCall(wire, native))
    return [event async for event in relayed]


@pytest.mark.parametrize("case", list(TRUNCATED))
async def test_a_stream_ended_before_its_terminator_is_a_truncation_error(case: str) -> None:
    kind, which, body = TRUNCATED[case]
    async with RawServer(answering(stream_answer(body))) as server:
        table: dict[str, Any] = {"name": kind, "api_key": "k", "models": ["m"]}
        table |= {"passthrough": ["messages"]} if kind == "ollama" else {}
        provider = build_provider(ProviderConfig.model_validate(table))
        try:
            with pytest.raises(UpstreamError) as caught:
                await call(provider, which, server.url)
        finally:
            await provider.aclose()

    assert caught.value.status == 502
    assert caught.value.code == "stream_truncated"
    assert "(truncated)" in caught.value.message
    assert caught.value.mid_stream is True


async def test_an_openai_stream_with_a_finish_reason_but_no_done_is_complete() -> None:
    finish = {**OPENAI_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    async with RawServer(answering(stream_answer(sse(OPENAI_CHUNK, finish)))) as server:
        provider = build_provider(ProviderConfig.model_validate({"name": "openai", "api_key": "k"}))
        try:
            chunks = await call(provider, "stream", server.url)
        finally:
            await provider.aclose()

    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]


async def test_an_empty_stream_is_truncated_before_the_first_byte_so_it_may_fail_over() -> None:
    async with RawServer(answering(stream_answer(b"\n"))) as server:
        provider = build_provider(ProviderConfig.model_validate({"name": "openai", "api_key": "k"}))
        try:
            with pytest.raises(UpstreamError) as caught:
                await call(provider, "stream", server.url)
        finally:
            await provider.aclose()

    assert (caught.value.code, caught.value.mid_stream, caught.value.retryable) == (
        "stream_truncated",
        False,
        True,
    )


async def test_fetch_never_follows_a_redirect() -> None:
    moved = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://example.invalid/\r\n"
    answer = moved + b"Content-Length: 0\r\n\r\n"
    async with RawServer(answering(answer)) as server, upstream(server.url) as client:
        body, response = await fetch(
            client, "GET", "/", headers={}, where="t", on_error=never_called
        )

    assert (response.status, body) == (307, b"")
