"""The limits contract, pinned for both backends: every case runs on MemoryLimits and on
RedisLimits (the real Redis, a test database, a fresh key prefix per test).

Time is never the wall clock: each case builds `Periods` from fixed timestamps, so windows,
retry-after values and rollovers are exact. Redis cases skip when Redis is unreachable, and
fail instead under OMEN_REQUIRE_REDIS=1 (CI); see tests/redis_support.py.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from omen.limits.base import (
    BUDGET,
    QUOTA,
    RATE,
    Ask,
    LimitBackend,
    LimitSpec,
    LimitsUnavailable,
    Periods,
    Usage,
    Verdict,
)
from omen.limits.memory import MemoryLimits
from omen.limits.redis_backend import RedisLimits
from tests.redis_support import redis_url_or_skip

UTC = ZoneInfo("UTC")
T0 = datetime(2024, 5, 15, 10, 0, tzinfo=UTC).timestamp()  # a Wednesday, 10:00 UTC
DAY_LEFT = 14 * 3600.0  # from T0 to midnight


def at(offset: float) -> Periods:
    return Periods.at(T0 + offset, UTC)


def ask(
    request_id: str | None = None, tokens: int = 10, cost: float = 0.0, *, free: bool = False
) -> Ask:
    return Ask(request_id or uuid.uuid4().hex, tokens, cost, free)


@asynccontextmanager
async def open_backend(kind: str, prefix: str | None = None) -> AsyncIterator[LimitBackend]:
    if kind == "memory":
        yield MemoryLimits()
        return
    url = redis_url_or_skip()
    prefix = prefix or f"omen-test-{uuid.uuid4().hex[:12]}"
    backend = RedisLimits(url, prefix=prefix)
    try:
        yield backend
    finally:
        await backend.aclose()
        client = aioredis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[LimitBackend]:
    async with open_backend(request.param) as opened:
        yield opened


async def admitted_count(backend: LimitBackend, spec: LimitSpec, n: int, offset: float) -> int:
    verdicts = [await backend.admit(spec, ask(), at(offset)) for _ in range(n)]
    return sum(v.admitted for v in verdicts)


def assert_refused(v: Verdict, kind: str, limit: str, retry_after: float) -> None:
    assert not v.admitted
    assert (v.kind, v.limit) == (kind, limit), v
    assert v.retry_after == pytest.approx(retry_after, abs=1e-6), v
    assert v.message


# --- quotas ------------------------------------------------------------------------------


async def test_requests_per_hour_is_exact(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_hour=50)
    for i in range(50):
        assert (await backend.admit(spec, ask(), at(i))).admitted
    v = await backend.admit(spec, ask(), at(100))
    assert_refused(v, QUOTA, "max_requests_per_hour", 3600 - 100)  # until t=0 leaves
    assert v.message == "50 of 50 requests used in the last hour"
    # The request at t=0 leaves the window exactly 3,600 s later.
    assert (await backend.admit(spec, ask(), at(3600))).admitted
    assert_refused(
        await backend.admit(spec, ask(), at(3600.5)), QUOTA, "max_requests_per_hour", 0.5
    )
    assert (await backend.usage(spec, at(3600.5))).requests_hour == 50


async def test_requests_per_day_refuses_until_midnight(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_day=3)
    assert await admitted_count(backend, spec, 3, 0) == 3
    v = await backend.admit(spec, ask(), at(60))
    assert_refused(v, QUOTA, "max_requests_per_day", DAY_LEFT - 60)
    assert v.message == "3 of 3 requests used today"


async def test_tokens_per_day(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_tokens_per_day=1000)
    assert (await backend.admit(spec, ask(tokens=400), at(0))).admitted
    assert (await backend.admit(spec, ask(tokens=400), at(1))).admitted
    v = await backend.admit(spec, ask(tokens=400), at(2))
    assert_refused(v, QUOTA, "max_tokens_per_day", DAY_LEFT - 2)
    assert "800 of 1000 tokens used today" in v.message
    assert (await backend.admit(spec, ask(tokens=200), at(3))).admitted  # exactly 1000
    assert (await backend.usage(spec, at(3))).tokens_day == 1000


async def test_cost_per_day_quota(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_cost_per_day=1.0)
    for i in range(4):
        assert (await backend.admit(spec, ask(cost=0.25), at(i))).admitted
    v = await backend.admit(spec, ask(cost=0.01), at(10))
    assert_refused(v, QUOTA, "max_cost_per_day", DAY_LEFT - 10)
    assert v.message.startswith("$1.0000 of $1.00 spent today")


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly"])
async def test_each_budget_refuses_until_its_period_ends(
    backend: LimitBackend, period: str
) -> None:
    spec = LimitSpec("c", **{f"budget_{period}": 1.0})  # type: ignore[arg-type]
    assert (await backend.admit(spec, ask(cost=0.5), at(0))).admitted
    assert (await backend.admit(spec, ask(cost=0.5), at(1))).admitted
    p = at(2)
    ends = {"daily": p.day_ends, "weekly": p.week_ends, "monthly": p.month_ends}[period]
    v = await backend.admit(spec, ask(cost=0.5), p)
    assert_refused(v, BUDGET, f"budget_{period}", ends - p.now)
    assert f"$1.0000 of the $1.00 {period} budget spent" in v.message
    assert (await backend.admit(spec, ask(cost=0.0), p)).admitted  # a free-of-charge ask fits


async def test_free_asks_ignore_cost_limits(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_cost_per_day=0.01, budget_daily=0.01, budget_monthly=0.01)
    for i in range(3):
        v = await backend.admit(spec, ask(cost=5.0, free=True), at(i))
        assert v.admitted and not v.warnings and not v.over_budget
    used = await backend.usage(spec, at(3))
    assert (used.requests_day, used.cost_day, used.cost_month) == (3, 0.0, 0.0)
    v = await backend.admit(spec, ask(cost=0.02), at(4))
    assert_refused(v, QUOTA, "max_cost_per_day", DAY_LEFT - 4)


@pytest.mark.parametrize("on_exceed", ["warn", "ignore"])
async def test_on_exceed_warn_and_ignore_admit_over_budget(
    backend: LimitBackend, on_exceed: str
) -> None:
    spec = LimitSpec("c", budget_daily=1.0, budget_weekly=1.5, on_exceed=on_exceed)
    first = await backend.admit(spec, ask(cost=0.8), at(0))
    assert first.admitted and first.over_budget == []
    second = await backend.admit(spec, ask(cost=0.8), at(1))
    assert second.admitted and second.over_budget == ["budget_daily", "budget_weekly"]
    for i in range(10):
        v = await backend.admit(spec, ask(cost=1.0), at(2 + i))
        assert v.admitted and v.over_budget == ["budget_daily", "budget_weekly"]
    assert (await backend.usage(spec, at(20))).cost_day == pytest.approx(11.6)


# --- soft limits and alerts ----------------------------------------------------------------


async def test_soft_warning_from_90_percent(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_hour=10)
    for i in range(8):
        assert (await backend.admit(spec, ask(), at(i))).warnings == []
    ninth = await backend.admit(spec, ask(), at(8))
    assert ninth.admitted and ninth.warnings == [("max_requests_per_hour", 90.0)]
    assert ninth.warning_header() == "max_requests_per_hour=90%"
    tenth = await backend.admit(spec, ask(), at(9))
    assert tenth.warning_header() == "max_requests_per_hour=100%"


async def test_soft_warning_names_budget(backend: LimitBackend) -> None:
    spec = LimitSpec("c", budget_daily=1.0, max_tokens_per_day=100)
    v = await backend.admit(spec, ask(tokens=50, cost=0.9), at(0))
    assert v.admitted
    assert [name for name, _ in v.warnings] == ["budget_daily"]
    assert v.warnings[0][1] == pytest.approx(90.0)
    v = await backend.admit(spec, ask(tokens=45, cost=0.0), at(1))
    assert v.warning_header() == "max_tokens_per_day=95%, budget_daily=90%"


async def test_alert_at_percent(backend: LimitBackend) -> None:
    spec = LimitSpec("c", budget_daily=1.0, budget_monthly=10.0, alert_at_percent=50)
    assert (await backend.admit(spec, ask(cost=0.25), at(0))).alerts == []
    v = await backend.admit(spec, ask(cost=0.25), at(1))
    assert v.alerts == [("daily", 0.5, 1.0)]
    assert (await backend.admit(spec, ask(cost=1.0, free=True), at(2))).alerts == []


# --- rate limits ---------------------------------------------------------------------------


async def test_token_bucket_burst_then_refill(backend: LimitBackend) -> None:
    spec = LimitSpec("c", requests_per_second=2, burst=3)
    assert await admitted_count(backend, spec, 3, 0) == 3
    assert_refused(await backend.admit(spec, ask(), at(0)), RATE, "requests_per_second", 0.5)
    assert_refused(await backend.admit(spec, ask(), at(0.25)), RATE, "requests_per_second", 0.25)
    assert (await backend.admit(spec, ask(), at(0.5))).admitted
    assert_refused(await backend.admit(spec, ask(), at(0.5)), RATE, "requests_per_second", 0.5)
    # A long pause refills to the burst, never beyond.
    assert await admitted_count(backend, spec, 5, 60) == 3


async def test_token_bucket_default_capacity_is_rps(backend: LimitBackend) -> None:
    spec = LimitSpec("c", requests_per_second=5)
    assert await admitted_count(backend, spec, 8, 0) == 5
    assert await admitted_count(backend, spec, 2, 0.2) == 1


async def test_tokens_per_minute_slides(backend: LimitBackend) -> None:
    spec = LimitSpec("c", tokens_per_minute=1000)
    assert (await backend.admit(spec, ask(tokens=600), at(0))).admitted
    v = await backend.admit(spec, ask(tokens=500), at(10))
    assert_refused(v, RATE, "tokens_per_minute", 50)
    assert (await backend.admit(spec, ask(tokens=400), at(10))).admitted  # exactly 1000
    assert (await backend.usage(spec, at(59))).tokens_minute == 1000
    # At t=60 the 600 leaves: 400 + 500 fits.
    assert (await backend.admit(spec, ask(tokens=500), at(60))).admitted
    assert (await backend.usage(spec, at(60))).tokens_minute == 900


# --- settle and release --------------------------------------------------------------------

RICH = LimitSpec(
    "c",
    max_requests_per_hour=100,
    max_requests_per_day=100,
    max_tokens_per_day=10_000,
    max_cost_per_day=10.0,
    budget_daily=10.0,
    budget_weekly=50.0,
    budget_monthly=100.0,
    requests_per_second=100,
    tokens_per_minute=10_000,
)


def usage_tuple(u: Usage) -> tuple[float, ...]:
    return tuple(round(float(v), 9) for v in asdict(u).values())


async def test_settle_replaces_the_reservation(backend: LimitBackend) -> None:
    a = ask("r1", tokens=1000, cost=0.5)
    assert (await backend.admit(RICH, a, at(0))).admitted
    await backend.settle(RICH, a, at(0), 300, 0.1)
    expected = Usage(1, 1, 300, 300, 0.1, 0.1, 0.1)
    assert usage_tuple(await backend.usage(RICH, at(1))) == usage_tuple(expected)
    await backend.settle(RICH, a, at(0), 5000, 3.0)  # a second settle is a no-op
    await backend.release(RICH, a, at(0))  # and so is a release after it (tokens, cost)
    used = await backend.usage(RICH, at(1))
    assert (used.tokens_day, used.tokens_minute, used.cost_day) == (300, 300, pytest.approx(0.1))


async def test_settle_can_exceed_the_reservation(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_tokens_per_day=1000, budget_daily=1.0)
    a = ask("r1", tokens=100, cost=0.1)
    assert (await backend.admit(spec, a, at(0))).admitted
    await backend.settle(spec, a, at(0), 900, 0.95)
    assert_refused(
        await backend.admit(spec, ask(tokens=200), at(1)),
        QUOTA,
        "max_tokens_per_day",
        DAY_LEFT - 1,
    )
    used = await backend.usage(spec, at(1))
    assert (used.tokens_day, used.cost_day) == (900, pytest.approx(0.95))


async def test_release_gives_everything_back_once(backend: LimitBackend) -> None:
    a = ask("r1", tokens=1000, cost=0.5)
    b = ask("r2", tokens=10, cost=0.01)
    assert (await backend.admit(RICH, a, at(0))).admitted
    assert (await backend.admit(RICH, b, at(1))).admitted
    await backend.release(RICH, a, at(0))
    after = usage_tuple(Usage(1, 1, 10, 10, 0.01, 0.01, 0.01))
    assert usage_tuple(await backend.usage(RICH, at(2))) == after
    await backend.release(RICH, a, at(0))  # idempotent
    await backend.settle(RICH, a, at(0), 99, 9.9)  # a settle after a release is a no-op
    assert usage_tuple(await backend.usage(RICH, at(2))) == after
    await backend.release(RICH, b, at(1))
    assert usage_tuple(await backend.usage(RICH, at(2))) == usage_tuple(Usage())


async def test_release_frees_the_hour_quota(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_hour=2)
    first, second = ask("r1"), ask("r2")
    assert (await backend.admit(spec, first, at(0))).admitted
    assert (await backend.admit(spec, second, at(1))).admitted
    assert not (await backend.admit(spec, ask(), at(2))).admitted
    await backend.release(spec, first, at(0))
    assert (await backend.admit(spec, ask(), at(3))).admitted


async def test_release_does_not_refund_the_rate_bucket(backend: LimitBackend) -> None:
    """Shared semantics (memory's): an attempt spends its rate token even if it fails."""
    spec = LimitSpec("c", requests_per_second=1)
    a = ask("r1")
    assert (await backend.admit(spec, a, at(0))).admitted
    await backend.release(spec, a, at(0))
    assert_refused(await backend.admit(spec, ask(), at(0.5)), RATE, "requests_per_second", 0.5)


@pytest.mark.parametrize(
    "backend",
    ["memory", "redis"],
    indirect=True,
)
async def test_release_after_settle_keeps_the_request_counted(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_hour=10)
    a = ask("r1")
    assert (await backend.admit(spec, a, at(0))).admitted
    await backend.settle(spec, a, at(0), 10, 0.0)
    await backend.release(spec, a, at(0))
    assert (await backend.usage(spec, at(1))).requests_hour == 1


@pytest.mark.parametrize(
    "backend",
    ["memory", "redis"],
    indirect=True,
)
async def test_tokens_per_minute_retry_after_ignores_released(backend: LimitBackend) -> None:
    spec = LimitSpec("c", tokens_per_minute=1000)
    gone = ask("r1", tokens=600)
    assert (await backend.admit(spec, gone, at(0))).admitted
    await backend.release(spec, gone, at(0))
    assert (await backend.admit(spec, ask(tokens=900), at(5))).admitted
    # Room only when the 900 from t=5 leaves, at t=65 — not at t=60.
    assert_refused(
        await backend.admit(spec, ask(tokens=200), at(10)), RATE, "tokens_per_minute", 55
    )


@pytest.mark.parametrize(
    "backend",
    ["memory", "redis"],
    indirect=True,
)
async def test_an_ask_that_exactly_fills_the_budget_is_admitted(backend: LimitBackend) -> None:
    spec = LimitSpec("c", budget_daily=0.3)
    assert (await backend.admit(spec, ask(cost=0.1), at(0))).admitted
    v = await backend.admit(spec, ask(cost=0.2), at(1))
    assert v.admitted and v.over_budget == []
    assert not (await backend.admit(spec, ask(cost=0.000001), at(2))).admitted


async def test_rate_message_names_the_effective_burst(backend: LimitBackend) -> None:
    spec = LimitSpec("c", requests_per_second=10)  # no burst configured: capacity 10
    assert await admitted_count(backend, spec, 10, 0) == 10
    v = await backend.admit(spec, ask(), at(0))
    assert v.message == "rate limit of 10 requests/s (burst 10) reached"


# --- exactness under concurrency -----------------------------------------------------------


async def test_200_concurrent_admits_exactly_50(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_hour=50)
    p = at(0)
    verdicts = await asyncio.gather(*(backend.admit(spec, ask(), p) for _ in range(200)))
    assert sum(v.admitted for v in verdicts) == 50
    assert {(v.kind, v.limit) for v in verdicts if not v.admitted} == {
        (QUOTA, "max_requests_per_hour")
    }
    assert (await backend.usage(spec, p)).requests_hour == 50


async def test_concurrent_cost_budget_never_overspent(backend: LimitBackend) -> None:
    spec = LimitSpec("c", budget_daily=1.0)
    p = at(0)
    verdicts = await asyncio.gather(*(backend.admit(spec, ask(cost=0.03), p) for _ in range(200)))
    assert sum(v.admitted for v in verdicts) == 33
    assert (await backend.usage(spec, p)).cost_day == pytest.approx(0.99)


async def test_two_redis_clients_share_one_limit() -> None:
    prefix = f"omen-test-{uuid.uuid4().hex[:12]}"
    spec = LimitSpec("c", max_requests_per_hour=50)
    p = at(0)
    async with open_backend("redis", prefix) as one, open_backend("redis", prefix) as two:
        asks = [(one if i % 2 else two).admit(spec, ask(), p) for i in range(200)]
        verdicts = await asyncio.gather(*asks)
        assert sum(v.admitted for v in verdicts) == 50
        assert (await one.usage(spec, p)).requests_hour == 50
        assert (await two.usage(spec, p)).requests_hour == 50


# --- calendar windows ----------------------------------------------------------------------


async def test_calendar_rollover_keeps_the_sliding_hour(backend: LimitBackend) -> None:
    spec = LimitSpec("c", max_requests_per_day=3, max_requests_per_hour=5)
    before_midnight = DAY_LEFT - 60  # 23:59:00
    assert await admitted_count(backend, spec, 3, before_midnight) == 3
    assert_refused(
        await backend.admit(spec, ask(), at(before_midnight + 1)),
        QUOTA,
        "max_requests_per_day",
        59,
    )
    tomorrow = at(DAY_LEFT + 30)  # 00:00:30 the next day
    assert tomorrow.day != at(0).day
    assert (await backend.admit(spec, ask(), tomorrow)).admitted
    used = await backend.usage(spec, tomorrow)
    assert (used.requests_day, used.requests_hour) == (1, 4)
    assert (await backend.admit(spec, ask(), tomorrow)).admitted
    v = await backend.admit(spec, ask(), tomorrow)
    assert_refused(v, QUOTA, "max_requests_per_hour", before_midnight + 3600 - (DAY_LEFT + 30))


async def test_week_and_month_roll_over(backend: LimitBackend) -> None:
    spec = LimitSpec("c", budget_weekly=1.0, budget_monthly=2.0)
    p = at(0)
    assert (await backend.admit(spec, ask(cost=1.0), p)).admitted
    next_week = Periods.at(p.week_ends + 1, UTC)  # Monday, same month
    assert next_week.month == p.month
    assert (await backend.admit(spec, ask(cost=1.0), next_week)).admitted
    v = await backend.admit(spec, ask(cost=0.5), next_week)
    assert_refused(v, BUDGET, "budget_weekly", next_week.week_ends - next_week.now)
    next_month = Periods.at(p.month_ends + 1, UTC)
    used = await backend.usage(spec, next_month)
    assert (used.cost_week, used.cost_month) == (0.0, 0.0)


# --- both backends give the same answers ---------------------------------------------------


@pytest.mark.parametrize("seed", [4, 5, 6])
async def test_backends_agree_verdict_for_verdict(seed: int) -> None:
    """A long random run on a spec with every limit: identical verdicts and usage."""
    spec = LimitSpec(
        "c",
        max_requests_per_hour=120,
        max_requests_per_day=200,
        max_tokens_per_day=60_000,
        max_cost_per_day=6.0,
        budget_daily=5.0,
        budget_weekly=7.0,
        budget_monthly=9.0,
        on_exceed="deny",
        alert_at_percent=80,
        requests_per_second=0.5,
        burst=4,
        tokens_per_minute=3000,
    )
    rng = random.Random(seed)
    async with open_backend("memory") as mem, open_backend("redis") as red:
        now = 0.0
        held: list[tuple[Ask, Periods]] = []
        for i in range(600):
            now += rng.choice([0.0, 0.1, 0.7, 2.0, 5.0, 30.0])
            p = at(now)
            a = ask(f"q{i}", rng.randint(1, 900), rng.randint(0, 40) / 64, free=rng.random() < 0.1)
            vm, vr = await mem.admit(spec, a, p), await red.admit(spec, a, p)
            assert vr == vm, (i, vm, vr)
            if vm.admitted:
                held.append((a, p))
            if held and rng.random() < 0.5:
                # Settles only here; releases are pinned by their own tests.
                done, dp = held.pop(rng.randrange(len(held)))
                tokens, cost = rng.randint(0, 1200), rng.randint(0, 60) / 64
                await mem.settle(spec, done, dp, tokens, cost)
                await red.settle(spec, done, dp, tokens, cost)
            um, ur = await mem.usage(spec, p), await red.usage(spec, p)
            assert usage_tuple(ur) == usage_tuple(um), (i, um, ur)


# --- Redis specifics -----------------------------------------------------------------------


async def test_redis_keys_expire() -> None:
    url = redis_url_or_skip()
    prefix = f"omen-test-{uuid.uuid4().hex[:12]}"
    async with open_backend("redis", prefix) as red:
        assert (await red.admit(RICH, ask("r1", tokens=5, cost=0.1), at(0))).admitted
        client = aioredis.from_url(url, decode_responses=True)
        try:
            ttls = {
                key.split(":", 2)[2]: await client.ttl(key)
                async for key in client.scan_iter(match=f"{prefix}:*")
            }
        finally:
            await client.aclose()
    p = at(0)
    assert 0 < ttls["hour"] <= 3601 and 0 < ttls["minute"] <= 61
    assert 0 < ttls["minute:tokens"] <= 61 and 0 < ttls["bucket"] <= 3
    assert 0 < ttls["held:r1"] <= 86_400
    assert DAY_LEFT < ttls[f"day:{p.day}"] <= DAY_LEFT + 86_400
    assert p.week_ends - p.now < ttls[f"week:{p.week}"] <= p.week_ends - p.now + 86_400
    assert p.month_ends - p.now < ttls[f"month:{p.month}"] <= p.month_ends - p.now + 86_400


async def test_redis_unreachable_raises_limits_unavailable() -> None:
    red = RedisLimits("redis://:secret@127.0.0.1:1/13")  # nothing listens on port 1
    started = time.monotonic()
    try:
        with pytest.raises(LimitsUnavailable, match=r"127\.0\.0\.1:1/13 unreachable") as info:
            await red.admit(RICH, ask(), at(0))
        assert "secret" not in str(info.value)
        with pytest.raises(LimitsUnavailable):
            await red.settle(RICH, ask(), at(0), 1, 0.0)
        with pytest.raises(LimitsUnavailable):
            await red.release(RICH, ask(), at(0))
        with pytest.raises(LimitsUnavailable):
            await red.usage(RICH, at(0))
    finally:
        await red.aclose()
    assert time.monotonic() - started < 5


async def test_redis_timeout_raises_limits_unavailable() -> None:
    """A server that accepts but never answers: the 1 s operation timeout fires."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    red = RedisLimits(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        with pytest.raises(LimitsUnavailable, match="Timeout"):
            await red.admit(RICH, ask(), at(0))
    finally:
        await red.aclose()
        server.close()


async def test_redis_minute_sum_survives_a_lost_sum_key() -> None:
    """The running token sum is a cache of the minute set: if it goes, it is recomputed."""
    url = redis_url_or_skip()
    prefix = f"omen-test-{uuid.uuid4().hex[:12]}"
    spec = LimitSpec("c", tokens_per_minute=1000)
    async with open_backend("redis", prefix) as red:
        assert (await red.admit(spec, ask(tokens=700), at(0))).admitted
        client = aioredis.from_url(url)
        try:
            await client.delete(f"{prefix}:{{c}}:minute:tokens")
        finally:
            await client.aclose()
        assert_refused(await red.admit(spec, ask(tokens=400), at(1)), RATE, "tokens_per_minute", 59)
        assert (await red.admit(spec, ask(tokens=300), at(2))).admitted


async def test_redis_one_round_trip_per_call() -> None:
    spec = LimitSpec("c", max_requests_per_hour=10, budget_daily=1.0, tokens_per_minute=10_000)
    async with open_backend("redis") as red:
        assert isinstance(red, RedisLimits)
        await red.admit(spec, ask("warm"), at(0))  # loads the scripts
        await red.settle(spec, ask("warm"), at(0), 1, 0.0)
        client = red._redis
        sent: list[str] = []
        send = client.execute_command

        async def counted(*args: object, **options: object) -> object:
            sent.append(str(args[0]))
            return await send(*args, **options)

        client.execute_command = counted  # type: ignore[method-assign]
        a, b = ask("r1", cost=0.1), ask("r2", cost=0.1)
        assert (await red.admit(spec, a, at(1))).admitted
        assert (await red.admit(spec, b, at(1))).admitted
        await red.settle(spec, a, at(1), 5, 0.05)
        await red.release(spec, b, at(1))
        await red.release(spec, b, at(1))
        assert sent == ["EVALSHA"] * 5
