"""Store writer throughput: enqueue N request records as fast as possible, then close().

Prints, per scenario: what one record_request() call costs the caller (mean, p99, max —
the max is a GIL hand-off: the caller waits up to sys.getswitchinterval(), which a started
StoreWriter lowers to 1 ms, while the writer thread encodes a batch), how many rows/s the
writer commits (N / time from the first enqueue to close() returning), and how long close()
takes to flush what is still queued.
Bodies are redacted and JSON-encoded on the writer thread, never on the caller's.

    .venv/bin/python bench/store_writer.py [--n 200000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from omen_store import RequestRecord, StoreReader, StoreWriter

BODY: dict[str, Any] = {
    "model": "auto",
    "stream": True,
    "messages": [
        {"role": "system", "content": "You are a careful assistant. " * 8},
        {"role": "user", "content": "Summarise this diff and point out risky changes. " * 12},
    ],
    "metadata": {"container_id": "app", "intent": "code", "authorization": "Bearer abcdefgh1234"},
}


def make_records(n: int) -> list[RequestRecord]:
    start = time.time() - 3600
    containers = [f"container-{i}" for i in range(50)]
    return [
        RequestRecord(
            id=f"bench-{i:08d}",
            ts=start + i * 0.01,
            container=containers[i % 50],
            key_id="key-1",
            kind="chat",
            requested_model="auto",
            model=("llama3.1:8b", "gpt-4o-mini", "claude-sonnet-4")[i % 3],
            provider=("ollama", "openai", "anthropic")[i % 3],
            endpoint="http://gpu-1:11434",
            intent="code",
            strategy="balanced",
            stream=bool(i % 2),
            status=200 if i % 50 else 502,
            latency_ms=120.0 + i % 37,
            ttft_ms=35.0,
            prompt_tokens=420,
            completion_tokens=180,
            cost_usd=0.00123,
            reason="balanced: lowest weighted score",
            decision={
                "intent": {"label": "code", "signals": ["```", "diff"]},
                "candidates": [
                    {"provider": "ollama", "model": "llama3.1:8b", "score": 0.21},
                    {"provider": "openai", "model": "gpt-4o-mini", "score": 0.34},
                ],
                "attempts": [{"provider": "ollama", "status": 200, "ms": 120}],
            },
        )
        for i in range(n)
    ]


def run(n: int, with_body: bool) -> dict[str, float]:
    records = make_records(n)
    # 200,000 pre-built records would make the cyclic GC pause for ~0.3 s mid-loop (seen
    # here), which no daemon holding ~0.1 s of records would; keep them out of its sight.
    gc.collect()
    gc.freeze()
    body = BODY if with_body else None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        writer = StoreWriter(path)
        writer.start()
        record = writer.record_request
        clock = time.perf_counter_ns
        costs = [0] * n
        began = time.perf_counter()
        for i, rec in enumerate(records):
            t = clock()
            record(rec, body)
            costs[i] = clock() - t
        enqueued = time.perf_counter()
        committed_before_close = writer.stats().committed
        writer.close(timeout=600)
        closed = time.perf_counter()
        with StoreReader(path) as reader:
            assert reader.max_rowid() == n, "not every record was committed"
        size_mb = path.stat().st_size / 1e6
    del records
    gc.unfreeze()
    costs.sort()
    return {
        "enqueue_mean_us": statistics.fmean(costs) / 1000,
        "enqueue_p99_us": costs[int(n * 0.99)] / 1000,
        "enqueue_max_us": costs[-1] / 1000,
        "enqueue_total_s": enqueued - began,
        "committed_during_enqueue": committed_before_close,
        "rows_per_s": n / (closed - began),
        "close_s": closed - enqueued,
        "db_mb": size_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    header = (
        f"{'scenario':<18} {'enqueue µs':>10} {'p99 µs':>8} {'max µs':>9} "
        f"{'enqueue s':>9} {'rows/s':>9} {'close() s':>9} {'db MB':>7}"
    )
    print(f"store writer, N={args.n:,} request records (50 containers, 3 providers)")
    print(header)
    print("-" * len(header))
    for name, with_body in (("records", False), ("records + bodies", True)):
        r = run(args.n, with_body)
        print(
            f"{name:<18} {r['enqueue_mean_us']:>10.2f} {r['enqueue_p99_us']:>8.2f} "
            f"{r['enqueue_max_us']:>9.0f} {r['enqueue_total_s']:>9.2f} "
            f"{r['rows_per_s']:>9,.0f} {r['close_s']:>9.2f} {r['db_mb']:>7.1f}"
        )


if __name__ == "__main__":
    main()
