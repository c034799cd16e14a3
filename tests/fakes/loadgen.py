"""A tiny keep-alive HTTP/1.1 load generator, to check a fake upstream keeps up with a benchmark::

    python -m tests.fakes.loadgen --url http://127.0.0.1:9001 --connections 50 --seconds 5

Raw asyncio streams (uvloop when available) so the client is not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

DEFAULT_BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    latencies: list[float] = field(default_factory=list)


def _request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer sk-bench\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _one_connection(
    host: str, port: int, request: bytes, stop_at: float, tally: Tally
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - started)
            if head[9:12] == b"200":
                tally.ok += 1
            else:
                tally.failed += 1
    finally:
        writer.close()


async def run_load(url: str, path: str, connections: int, seconds: float, body: bytes) -> Tally:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request_bytes(host, port, path, body)
    tally = Tally()
    stop_at = time.perf_counter() + seconds
    await asyncio.gather(
        *(_one_connection(host, port, request, stop_at, tally) for _ in range(connections))
    )
    return tally


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.loadgen", description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:9001")
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.perf_counter()
    tally = asyncio.run(
        run_load(args.url, args.path, args.connections, args.seconds, orjson.dumps(DEFAULT_BODY))
    )
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies) or [0.0]
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"requests  ok={tally.ok} failed={tally.failed} in {elapsed:.2f}s")
    print(f"rate      {(tally.ok + tally.failed) / elapsed:,.0f} req/s")
    print(f"latency   p50={p50:.2f}ms p99={p99:.2f}ms")


if __name__ == "__main__":
    main()
