"""A small keep-alive HTTP/1.1 load generator for the benchmarks (raw asyncio streams, uvloop).

It speaks just enough HTTP for our servers: Content-Length and chunked bodies. For streamed
requests it records the time to the first SSE event as well as the full response time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Result:
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    first_event_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @staticmethod
    def pct(values: list[float], p: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self, which: str = "latency") -> dict[str, float]:
        values = self.first_event_ms if which == "ttft" else self.latencies_ms
        return {
            "p50": self.pct(values, 50),
            "p95": self.pct(values, 95),
            "p99": self.pct(values, 99),
            "mean": statistics.fmean(values) if values else float("nan"),
        }


async def _read_response(reader: asyncio.StreamReader, started: float, result: Result) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value)
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        await reader.readexactly(length)
        return status
    if not chunked:
        raise RuntimeError("response without length or chunking")
    first = True
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return status
        if first and b"data:" in data:
            first = False
            result.first_event_ms.append((time.perf_counter() - started) * 1000)


async def _connection(
    host: str, port: int, request: bytes, stop_at: float, result: Result, limit: int | None
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at and (
            limit is None or result.ok + result.failed < limit
        ):
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader, started, result)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status == 200:
                result.ok += 1
            else:
                result.failed += 1
    finally:
        writer.close()


async def run_load(
    url: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    api_key: str = "sk-bench",
    limit: int | None = None,
) -> Result:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    result = Result()
    began = time.perf_counter()
    stop_at = began + seconds
    await asyncio.gather(
        *(_connection(host, port, request, stop_at, result, limit) for _ in range(connections))
    )
    result.seconds = time.perf_counter() - began
    return result
