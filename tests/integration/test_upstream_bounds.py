"""Time and size bounds on upstream calls, through `omen serve` and a raw-socket upstream that
misbehaves: a drip ends at `timeout`, an endless body at `max_response_size` with Omen's memory
flat, a stream cut short is an error for the client, and the pump that keeps reading after the
client hung up stops at `max_stream_duration`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.fakes.raw_http import CHUNKED_HEAD, LAST_CHUNK, RawServer, Reader, Writer, chunk, ok
from tests.integration.conftest import APP_KEY, Omen, wait_for_rows

pytestmark = pytest.mark.timeout(60)

MODELS = orjson.dumps({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})
HELLO = [{"role": "user", "content": "Hi"}]


def sse_chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    event = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return chunk(b"data: " + orjson.dumps(event) + b"\n\n")


class Misbehaving:
    """A raw upstream: /v1/models answers well, every POST does `behaviour`."""

    def __init__(self) -> None:
        self.behaviour = "drip"
        self.hung_up_at: float | None = None  # when Omen closed a trickled stream
        self.server = RawServer(self._connection)

    async def _connection(self, server: RawServer, reader: Reader, writer: Writer) -> None:
        while (request := await server.read_request(reader)) is not None:
            if request.startswith(b"GET "):
                writer.write(ok(MODELS, b"Content-Type: application/json"))
                await writer.drain()
                continue
            await getattr(self, f"_{self.behaviour}")(writer)
            return

    async def _drip(self, writer: Writer) -> None:
        body = orjson.dumps({"id": "x", "object": "chat.completion", "choices": []})
        for byte in ok(body):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)

    async def _endless(self, writer: Writer) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        block = b" " * 65536
        while not writer.is_closing():
            writer.write(block)
            await writer.drain()

    async def _truncated(self, writer: Writer) -> None:
        # A clean end (last chunk sent) without a finish_reason: [DONE] alone is no finish.
        writer.write(CHUNKED_HEAD + sse_chunk({"role": "assistant", "content": "Hel"}))
        writer.write(chunk(b"data: [DONE]\n\n") + LAST_CHUNK)
        await writer.drain()

    async def _trickle(self, writer: Writer) -> None:
        writer.write(CHUNKED_HEAD + sse_chunk({"role": "assistant", "content": "Hi"}))
        try:
            while True:
                await asyncio.sleep(0.2)
                writer.write(sse_chunk({"content": "."}))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.hung_up_at = time.monotonic()


@pytest.fixture
def upstream() -> Iterator[Misbehaving]:
    misbehaving = Misbehaving()
    with misbehaving.server.running():
        yield misbehaving


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], upstream: Misbehaving) -> Omen:
    return omen_factory(
        f"""
[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{upstream.server.url}/v1"
models = ["gpt-4o"]
health_check_interval = "1h"
timeout = "3s"
idle_timeout = "2s"
max_stream_duration = "3s"
max_response_size = "4MiB"

[containers.app]
api_key = "env:TEST_APP_KEY"
"""
    )


def chat(omen: Omen, *, stream: bool = False, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": stream},
        timeout=timeout,
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_upstream_dripping_a_byte_every_half_second_is_answered_by_the_timeout(
    omen: Omen, upstream: Misbehaving, stream: bool
) -> None:
    upstream.behaviour = "drip"
    started = time.monotonic()
    response = chat(omen, stream=stream)
    took = time.monotonic() - started

    assert response.status_code == 504, response.text
    assert took < 4.0  # timeout = "3s", whatever the drip
    rows = wait_for_rows(omen.database, 1)
    assert rows[-1].status == 504  # type: ignore[attr-defined]


def test_an_endless_body_is_a_502_and_omen_memory_stays_flat(
    omen: Omen, upstream: Misbehaving
) -> None:
    upstream.behaviour = "endless"
    before = rss_mib(omen.process.pid)
    statuses = [chat(omen).status_code for _ in range(5)]
    after = rss_mib(omen.process.pid)

    assert statuses == [502] * 5
    assert after - before < 100


def test_a_stream_ended_before_a_finish_reason_ends_with_an_error_event(
    omen: Omen, upstream: Misbehaving
) -> None:
    upstream.behaviour = "truncated"
    with httpx.stream(
        "POST",
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        timeout=10,
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]

    assert events[-1] != "data: [DONE]"
    assert "truncated" in orjson.loads(events[-1][5:])["error"]["message"]
    rows = wait_for_rows(omen.database, 1)
    assert "truncated" in (rows[-1].error or "")  # type: ignore[attr-defined]


def test_after_the_client_hangs_up_the_upstream_is_read_no_longer_than_max_stream_duration(
    omen: Omen, upstream: Misbehaving
) -> None:
    upstream.behaviour = "trickle"
    started = time.monotonic()
    with httpx.stream(
        "POST",
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        timeout=10,
    ) as response:
        next(response.iter_lines())  # the first event, then hang up
    deadline = time.monotonic() + 6
    while upstream.hung_up_at is None and time.monotonic() < deadline:
        time.sleep(0.05)

    assert upstream.hung_up_at is not None
    assert upstream.hung_up_at - started < 4.0  # max_stream_duration = "3s"
