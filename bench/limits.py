"""Added latency of the usage limits per request: admit + settle, both backends.

    python -m bench.limits [--memory-n 20000] [--redis-n 5000] [--concurrency 50]
                           [--rates 10,200] [--redis-url redis://127.0.0.1:6379/13]
                           [--loop uvloop|asyncio]

Each request does what the gateway does around an upstream call: build the `Periods` for
"now", `admit` (check every limit and reserve) and `settle` (replace the reservation by the
real usage). The container has every limit configured (quotas, budgets, requests/s with
burst, tokens/minute), set high enough that nothing is refused, so every check runs and every
counter is written. The clock is simulated at a steady per-container request rate (`--rates`),
so the sliding windows hold what they would in production at that rate: at 200 requests/s the
minute window holds 12,000 entries and the hour window up to 720,000.

Round trips are counted on the Redis client (every command it sends; a pipeline would count
once). Target (issue 4): in-process under 100 µs, Redis one round trip per call.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from omen.limits.base import Ask, LimitBackend, LimitSpec, Periods
from omen.limits.memory import MemoryLimits
from omen.limits.redis_backend import RedisLimits

UTC = ZoneInfo("UTC")
BIG = 10**12
SPEC = LimitSpec(
    "bench",
    max_requests_per_hour=BIG,
    max_requests_per_day=BIG,
    max_tokens_per_day=BIG,
    max_cost_per_day=1e9,
    budget_daily=1e9,
    budget_weekly=1e9,
    budget_monthly=1e9,
    alert_at_percent=80,
    requests_per_second=1e9,
    burst=10**9,
    tokens_per_minute=BIG,
)


@dataclass
class Row:
    backend: str
    mode: str
    rate: float
    n: int
    admit_p50: float
    p50: float
    p99: float
    round_trips: float | None
    per_s: float


class Counter:
    """Counts the commands a redis client sends (each is one round trip outside pipelines)."""

    def __init__(self, backend: RedisLimits) -> None:
        self.calls = 0
        client = backend._redis  # the bench looks inside; production code does not
        send: Callable[..., Awaitable[Any]] = client.execute_command

        async def counted(*args: Any, **options: Any) -> Any:
            self.calls += 1
            return await send(*args, **options)

        client.execute_command = counted  # type: ignore[method-assign]


async def one(backend: LimitBackend, now: float, i: int) -> tuple[int, int]:
    """One request; returns (admit ns, admit + settle ns)."""
    start = time.perf_counter_ns()
    periods = Periods.at(now, UTC)
    ask = Ask(f"b{i}", 700, 0.0021)
    verdict = await backend.admit(SPEC, ask, periods)
    admitted = time.perf_counter_ns()
    assert verdict.admitted, verdict
    await backend.settle(SPEC, ask, periods, 612, 0.00184)
    return admitted - start, time.perf_counter_ns() - start


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def run(backend: LimitBackend, label: str, n: int, rate: float, concurrency: int = 1) -> Row:
    counter = Counter(backend) if isinstance(backend, RedisLimits) else None
    t0 = time.time()
    warm = min(1000, n // 10)
    for i in range(warm):  # connections, script load, first-touch allocations
        await one(backend, t0 + i / rate, -i - 1)
    base = t0 + warm / rate
    if counter is not None:
        counter.calls = 0
    admit_ns: list[int] = []
    total_ns: list[int] = []
    started = time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            a, t = await one(backend, base + i / rate, i)
            admit_ns.append(a)
            total_ns.append(t)
    else:
        next_i = 0

        async def worker() -> None:
            nonlocal next_i
            while next_i < n:
                i = next_i
                next_i += 1
                a, t = await one(backend, base + i / rate, i)
                admit_ns.append(a)
                total_ns.append(t)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Row(
        backend=backend.name,
        mode=label,
        rate=rate,
        n=n,
        admit_p50=statistics.median(admit_ns) / 1000,
        p50=pct(total_ns, 0.5),
        p99=pct(total_ns, 0.99),
        round_trips=None if counter is None else counter.calls / n,
        per_s=n / elapsed,
    )


def table(rows: list[Row]) -> str:
    head = (
        f"{'backend':<8} {'mode':<14} {'req/s sim':>9} {'n':>6} {'admit p50':>10} "
        f"{'a+s p50 µs':>10} {'a+s p99 µs':>10} {'trips/req':>9} {'done/s':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        trips = "0 (local)" if r.round_trips is None else f"{r.round_trips:.2f}"
        lines.append(
            f"{r.backend:<8} {r.mode:<14} {r.rate:>9g} {r.n:>6} {r.admit_p50:>10.1f} "
            f"{r.p50:>10.1f} {r.p99:>10.1f} {trips:>9} {r.per_s:>8.0f}"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    rates = [float(r) for r in args.rates.split(",")]
    rows: list[Row] = []
    for rate in rates:
        rows.append(await run(MemoryLimits(), "sequential", args.memory_n, rate))
    for rate in rates:
        prefix = f"omen-bench-{uuid.uuid4().hex[:8]}"
        red = RedisLimits(args.redis_url, prefix=prefix, max_connections=args.concurrency)
        try:
            rows.append(await run(red, "sequential", args.redis_n, rate))
            rows.append(
                await run(
                    red, f"{args.concurrency} concurrent", args.redis_n, rate, args.concurrency
                )
            )
            keys = [k async for k in red._redis.scan_iter(match=f"{prefix}:*")]
            if keys:
                await red._redis.delete(*keys)
        finally:
            await red.aclose()
    print(table(rows))
    print(
        "\nadmit p50: Periods.at + admit; a+s: Periods.at + admit + settle. "
        "req/s sim: the simulated per-container rate (what the sliding windows hold)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--memory-n", type=int, default=20_000)
    parser.add_argument("--redis-n", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rates", default="10,200", help="simulated requests/s per container")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.loop == "uvloop":  # what `omen serve` runs on
        try:
            import uvloop

            loop_factory = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - platforms without uvloop
            print("uvloop not installed: plain asyncio")
    print(f"event loop: {args.loop if loop_factory else 'asyncio'}\n")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main_async(args))


if __name__ == "__main__":
    main()
