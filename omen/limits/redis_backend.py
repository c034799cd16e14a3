"""Redis limits: one set of counters shared by every Omen instance, exact because each
check-and-reserve is one Lua script, which Redis runs atomically.

One round trip per call: `admit` is one EVALSHA that trims the sliding windows, refills the
token bucket, evaluates every limit in `memory.judge`'s order and with its rules and, only when
admitted, reserves. `settle` and `release` are one EVALSHA each, idempotent per request id
through the reservation hash. `usage` is one pipeline. The script decides; Python only turns
its answer into the same `Verdict` (messages, warnings, alerts) that `judge` would give.

The clock is the caller's (`Periods.now`), never Redis TIME, so both backends agree and tests
can move time. Money is kept in integer micro-dollars (no float drift across thousands of
INCRBYs): a cost is rounded to the nearest micro-dollar when reserved or settled.

Keys, per container (the `{container}` hash tag keeps one container's keys in one cluster slot):

    {prefix}:{<container>}:hour            ZSET request id, score = time (sliding 3,600 s)
    {prefix}:{<container>}:minute          ZSET "id|tokens", score = time (sliding 60 s)
    {prefix}:{<container>}:minute:tokens   running sum of the minute set's tokens
    {prefix}:{<container>}:day:<day>       HASH requests, tokens, cost (µ$)
    {prefix}:{<container>}:week:<week>     cost (µ$)
    {prefix}:{<container>}:month:<month>   cost (µ$)
    {prefix}:{<container>}:bucket          HASH tokens, ts (requests_per_second)
    {prefix}:{<container>}:held:<id>       HASH tokens, cost (µ$): one reservation

Calendar keys live a day past the end of their period, sliding sets as long as their window,
the bucket until it would be full again, a reservation a day. Commands are never retried: a
timed-out EVALSHA may have run, and a retry could reserve twice; the caller fails open or
closed on `LimitsUnavailable` instead.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from omen.limits.base import (
    BUDGET,
    QUOTA,
    RATE,
    Ask,
    LimitSpec,
    LimitsUnavailable,
    Periods,
    Usage,
    Verdict,
)
from omen.limits.memory import judge

MICRO = 1_000_000
HOUR = 3600
MINUTE = 60
_DAY_S = 86_400
_HELD_TTL = _DAY_S

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)

# KEYS: 1 hour zset, 2 minute zset, 3 minute token sum, 4 day hash, 5 week cost,
#       6 month cost, 7 bucket hash, 8 reservation hash
# ARGV: 1 now, 2 request id, 3 tokens, 4 cost µ$ (0 when free), 5 free,
#       6 requests/s, 7 bucket capacity, 8 tokens/minute, 9 requests/hour, 10 requests/day,
#       11 tokens/day, 12 cost/day µ$, 13-15 daily/weekly/monthly budget µ$, 16 deny,
#       17-19 day/week/month TTL, 20 bucket TTL, 21 reservation TTL   ('' = no limit)
_ADMIT = """
local now = tonumber(ARGV[1])
local id = ARGV[2]
local tokens = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local free = ARGV[5] == '1'
local function opt(i)
  if ARGV[i] == '' then return nil end
  return tonumber(ARGV[i])
end
local rps, capacity, tpm = opt(6), opt(7), opt(8)
local max_hour, max_day, max_tokens_day, max_cost_day = opt(9), opt(10), opt(11), opt(12)
local budgets = {{'daily', opt(13)}, {'weekly', opt(14)}, {'monthly', opt(15)}}
local deny = ARGV[16] == '1'

-- Sliding hour: entries leave when they are 3,600 s old (memory: ts <= now - 3600).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600)
local requests_hour = redis.call('ZCARD', KEYS[1])
local oldest_hour = ''
if requests_hour > 0 then
  oldest_hour = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end

-- Sliding minute with a running token sum (O(expired) per call, not O(window)).
local function member_tokens(m) return tonumber(string.match(m, '|(%d+)$')) or 0 end
local cutoff = now - 60
local sum = redis.call('GET', KEYS[3])
local stored_sum = sum
if sum then
  sum = tonumber(sum)
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)) do
    sum = sum - member_tokens(m)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
local in_minute = redis.call('ZCARD', KEYS[2])
local oldest_minute = ''
if in_minute == 0 then
  sum = 0
else
  if not sum then
    sum = 0
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do sum = sum + member_tokens(m) end
  end
  oldest_minute = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
end
-- The set and its sum change together, refused or not.
if in_minute == 0 then
  if stored_sum then redis.call('DEL', KEYS[3]) end
elseif not stored_sum then
  redis.call('SET', KEYS[3], sum, 'EX', 61)
elseif stored_sum ~= tostring(sum) then
  redis.call('SET', KEYS[3], sum, 'KEEPTTL')
end

-- Calendar windows.
local day = redis.call('HMGET', KEYS[4], 'requests', 'tokens', 'cost')
local requests_day = tonumber(day[1]) or 0
local tokens_day = tonumber(day[2]) or 0
local cost_day = tonumber(day[3]) or 0
local cost_week = tonumber(redis.call('GET', KEYS[5])) or 0
local cost_month = tonumber(redis.call('GET', KEYS[6])) or 0

-- Token bucket, refilled as memory's is (a clock that steps back refills nothing).
local bucket = nil
local bucket_ts = now
if rps then
  local b = redis.call('HMGET', KEYS[7], 'tokens', 'ts')
  if b[1] then
    local last = tonumber(b[2])
    local elapsed = now - last
    if elapsed < 0 then
      elapsed = 0
      bucket_ts = last
    end
    bucket = math.min(capacity, tonumber(b[1]) + elapsed * rps)
  else
    bucket = capacity
  end
end

-- Every limit, in judge()'s order.
local limit = ''
if rps and bucket < 1.0 then
  limit = 'requests_per_second'
elseif tpm and sum + tokens > tpm then
  limit = 'tokens_per_minute'
elseif max_hour and requests_hour + 1 > max_hour then
  limit = 'max_requests_per_hour'
elseif max_day and requests_day + 1 > max_day then
  limit = 'max_requests_per_day'
elseif max_tokens_day and tokens_day + tokens > max_tokens_day then
  limit = 'max_tokens_per_day'
elseif (not free) and max_cost_day and cost_day + cost > max_cost_day then
  limit = 'max_cost_per_day'
end
local over = {}
if limit == '' and not free then
  local spent = {daily = cost_day, weekly = cost_week, monthly = cost_month}
  for _, b in ipairs(budgets) do
    if b[2] and spent[b[1]] + cost > b[2] then
      if deny then
        limit = 'budget_' .. b[1]
        break
      end
      table.insert(over, b[1])
    end
  end
end
local admitted = limit == ''

if rps then
  local left = bucket
  if admitted then left = bucket - 1 end
  redis.call('HSET', KEYS[7], 'tokens', string.format('%.17g', left),
             'ts', string.format('%.17g', bucket_ts))
  redis.call('EXPIRE', KEYS[7], ARGV[20])
end

if admitted then
  redis.call('ZADD', KEYS[1], ARGV[1], id)
  redis.call('EXPIRE', KEYS[1], 3601)
  redis.call('ZADD', KEYS[2], ARGV[1], id .. '|' .. ARGV[3])
  redis.call('EXPIRE', KEYS[2], 61)
  redis.call('SET', KEYS[3], sum + tokens, 'EX', 61)
  redis.call('HINCRBY', KEYS[4], 'requests', 1)
  redis.call('HINCRBY', KEYS[4], 'tokens', ARGV[3])
  redis.call('HINCRBY', KEYS[4], 'cost', ARGV[4])
  redis.call('EXPIRE', KEYS[4], ARGV[17])
  redis.call('INCRBY', KEYS[5], ARGV[4])
  redis.call('EXPIRE', KEYS[5], ARGV[18])
  redis.call('INCRBY', KEYS[6], ARGV[4])
  redis.call('EXPIRE', KEYS[6], ARGV[19])
  redis.call('HSET', KEYS[8], 'tokens', ARGV[3], 'cost', ARGV[4])
  redis.call('EXPIRE', KEYS[8], ARGV[21])
end

local bucket_out = ''
if bucket then bucket_out = string.format('%.17g', bucket) end
return {admitted and 1 or 0, limit, table.concat(over, ','), requests_hour, oldest_hour,
        requests_day, tokens_day, sum, oldest_minute, cost_day, cost_week, cost_month,
        bucket_out}
"""

# KEYS: 1 hour zset, 2 minute zset, 3 minute token sum, 4 day hash, 5 week cost,
#       6 month cost, 7 reservation hash
# ARGV: 1 request id, 2 'settle' | 'release', 3 actual tokens, 4 actual cost µ$
_ADJUST = """
local held = redis.call('HMGET', KEYS[7], 'tokens', 'cost')
if not held[1] then return 0 end
redis.call('DEL', KEYS[7])
local id = ARGV[1]
local release = ARGV[2] == 'release'
local old_tokens, old_cost = tonumber(held[1]), tonumber(held[2])
local d_requests, d_tokens, d_cost
if release then
  -- 0 - x, not -x: Lua's -0 would reach Redis as "-0", which INCRBY rejects
  d_requests, d_tokens, d_cost = -1, 0 - old_tokens, 0 - old_cost
  redis.call('ZREM', KEYS[1], id)
else
  d_requests, d_tokens, d_cost = 0, tonumber(ARGV[3]) - old_tokens, tonumber(ARGV[4]) - old_cost
end

local member = id .. '|' .. held[1]
local score = redis.call('ZSCORE', KEYS[2], member)
if score then
  local new_tokens = 0
  if not release then new_tokens = math.max(0, old_tokens + d_tokens) end
  if release then
    redis.call('ZREM', KEYS[2], member)
  elseif new_tokens ~= old_tokens then
    -- add before removing, so the set never empties and keeps its TTL
    redis.call('ZADD', KEYS[2], score, id .. '|' .. string.format('%d', new_tokens))
    redis.call('ZREM', KEYS[2], member)
  end
  if redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('INCRBY', KEYS[3], new_tokens - old_tokens)
  end
end

if redis.call('EXISTS', KEYS[4]) == 1 then
  if d_requests ~= 0 then redis.call('HINCRBY', KEYS[4], 'requests', d_requests) end
  redis.call('HINCRBY', KEYS[4], 'tokens', d_tokens)
  redis.call('HINCRBY', KEYS[4], 'cost', d_cost)
end
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('INCRBY', KEYS[5], d_cost) end
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('INCRBY', KEYS[6], d_cost) end
return 1
"""

_KIND = {
    "requests_per_second": RATE,
    "tokens_per_minute": RATE,
    "max_requests_per_hour": QUOTA,
    "max_requests_per_day": QUOTA,
    "max_tokens_per_day": QUOTA,
    "max_cost_per_day": QUOTA,
    "budget_daily": BUDGET,
    "budget_weekly": BUDGET,
    "budget_monthly": BUDGET,
}


def micro(usd: float) -> int:
    """Dollars to integer micro-dollars (nearest)."""
    return round(usd * MICRO)


def _opt(value: float | None, scale: int = 1) -> str:
    if value is None:
        return ""
    return str(round(value * scale)) if scale != 1 else repr(value)


class RedisLimits:
    """Limits in Redis, shared by every Omen instance pointed at the same URL and prefix."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "omen",
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        # A blocking pool: a burst beyond max_connections waits for a connection (up to
        # `timeout`) instead of failing with "Too many connections", which would read as
        # Redis being down.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._prefix = prefix
        self._admit_script = self._redis.register_script(_ADMIT)
        self._adjust_script = self._redis.register_script(_ADJUST)
        kwargs = pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', 6379)}"
        self.where = f"{where}/{kwargs.get('db', 0)}"  # never the password

    # --- keys ----------------------------------------------------------------------------

    def _base(self, container: str) -> str:
        return f"{self._prefix}:{{{container}}}"

    def _window_keys(self, container: str, periods: Periods) -> list[str]:
        base = self._base(container)
        return [
            f"{base}:hour",
            f"{base}:minute",
            f"{base}:minute:tokens",
            f"{base}:day:{periods.day}",
            f"{base}:week:{periods.week}",
            f"{base}:month:{periods.month}",
        ]

    def _unavailable(self, exc: BaseException) -> LimitsUnavailable:
        return LimitsUnavailable(
            f"Redis limits backend at {self.where} unreachable ({type(exc).__name__}: {exc})"
        )

    # --- the protocol --------------------------------------------------------------------

    async def admit(self, spec: LimitSpec, ask: Ask, periods: Periods) -> Verdict:
        now = periods.now
        base = self._base(spec.container)
        cost = 0 if ask.free else micro(ask.cost_usd)
        capacity: float | None = None
        bucket_ttl = 1
        if spec.requests_per_second is not None:
            capacity = float(spec.burst or max(1, int(spec.requests_per_second)))
            bucket_ttl = math.ceil(capacity / spec.requests_per_second) + 1
        args: list[str | int] = [
            repr(float(now)),
            ask.request_id,
            int(ask.tokens),
            cost,
            1 if ask.free else 0,
            _opt(spec.requests_per_second),
            _opt(capacity),
            _opt(spec.tokens_per_minute),
            _opt(spec.max_requests_per_hour),
            _opt(spec.max_requests_per_day),
            _opt(spec.max_tokens_per_day),
            _opt(spec.max_cost_per_day, MICRO),
            _opt(spec.budget_daily, MICRO),
            _opt(spec.budget_weekly, MICRO),
            _opt(spec.budget_monthly, MICRO),
            1 if spec.on_exceed == "deny" else 0,
            math.ceil(periods.day_ends - now) + _DAY_S,
            math.ceil(periods.week_ends - now) + _DAY_S,
            math.ceil(periods.month_ends - now) + _DAY_S,
            bucket_ttl,
            _HELD_TTL,
        ]
        keys = [*self._window_keys(spec.container, periods), f"{base}:bucket"]
        keys.append(f"{base}:held:{ask.request_id}")
        try:
            out = await self._admit_script(keys=keys, args=args)
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from exc
        return _verdict(spec, replace(ask, cost_usd=cost / MICRO), periods, out)

    async def settle(
        self, spec: LimitSpec, ask: Ask, periods: Periods, tokens: int, cost_usd: float
    ) -> None:
        await self._adjust(spec, ask, periods, "settle", max(0, int(tokens)), micro(cost_usd))

    async def release(self, spec: LimitSpec, ask: Ask, periods: Periods) -> None:
        await self._adjust(spec, ask, periods, "release", 0, 0)

    async def _adjust(
        self, spec: LimitSpec, ask: Ask, periods: Periods, mode: str, tokens: int, cost: int
    ) -> None:
        keys = self._window_keys(spec.container, periods)
        keys.append(f"{self._base(spec.container)}:held:{ask.request_id}")
        try:
            await self._adjust_script(keys=keys, args=[ask.request_id, mode, tokens, cost])
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from exc

    async def usage(self, spec: LimitSpec, periods: Periods) -> Usage:
        hour, minute, _, day, week, month = self._window_keys(spec.container, periods)
        now = periods.now
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcount(hour, f"({now - HOUR!r}", "+inf")
                pipe.zrangebyscore(minute, f"({now - MINUTE!r}", "+inf")
                pipe.hmget(day, ["requests", "tokens", "cost"])
                pipe.get(week)
                pipe.get(month)
                requests_hour, in_minute, day_row, cost_week, cost_month = await pipe.execute()
        except _UNREACHABLE as exc:
            raise self._unavailable(exc) from exc
        return Usage(
            requests_hour=int(requests_hour),
            requests_day=int(day_row[0] or 0),
            tokens_day=int(day_row[1] or 0),
            tokens_minute=sum(int(m.rsplit("|", 1)[1]) for m in in_minute),
            cost_day=int(day_row[2] or 0) / MICRO,
            cost_week=int(cost_week or 0) / MICRO,
            cost_month=int(cost_month or 0) / MICRO,
        )

    async def aclose(self) -> None:
        await self._redis.aclose()


def _verdict(spec: LimitSpec, ask: Ask, periods: Periods, out: list[Any]) -> Verdict:
    """The script's decision as judge() would word it (messages, warnings, alerts)."""
    admitted = int(out[0]) == 1
    limit = str(out[1]) or None
    over = [f"budget_{period}" for period in str(out[2]).split(",") if period]
    numbers: dict[str, Any] = {
        "requests_hour": int(out[3]),
        "oldest_hour": float(out[4]) if out[4] else None,
        "requests_day": int(out[5]),
        "tokens_day": int(out[6]),
        "tokens_minute": int(out[7]) if spec.tokens_per_minute is not None else 0,
        "oldest_minute": float(out[8]) if out[8] else None,
        "cost_day": int(out[9]) / MICRO,
        "cost_week": int(out[10]) / MICRO,
        "cost_month": int(out[11]) / MICRO,
        "bucket": float(out[12]) if out[12] else None,
    }

    def agrees(v: Verdict) -> bool:
        return v.admitted == admitted and v.limit == limit and v.over_budget == over

    verdict = judge(spec, ask, periods, **numbers)
    if agrees(verdict):
        return verdict
    # judge() compares dollars as floats; the script compares integer micro-dollars. They
    # differ only where a sum lands exactly on a limit (0.1 + 0.2 > 0.3 in floats): word the
    # script's decision with each money limit moved up by a fraction of a micro-dollar.
    limits = {p: lim for p, lim in spec.budgets()}

    def nudge(value: float | None) -> float | None:
        return None if value is None else micro(value) / MICRO + 0.05 / MICRO

    nudged = replace(
        spec,
        max_cost_per_day=nudge(spec.max_cost_per_day),
        budget_daily=nudge(spec.budget_daily),
        budget_weekly=nudge(spec.budget_weekly),
        budget_monthly=nudge(spec.budget_monthly),
    )
    verdict = judge(nudged, ask, periods, **numbers)
    verdict.alerts = [(p, spent, limits[p]) for p, spent, _ in verdict.alerts]
    if agrees(verdict):
        return verdict
    ends = {
        "max_cost_per_day": periods.day_ends,
        "budget_daily": periods.day_ends,
        "budget_weekly": periods.week_ends,
        "budget_monthly": periods.month_ends,
    }
    if admitted:
        return Verdict(True, over_budget=over, warnings=verdict.warnings, alerts=verdict.alerts)
    name = limit or "limit"
    return Verdict(
        False,
        _KIND.get(name, QUOTA),
        name,
        f"{name} reached",
        retry_after=max(0.0, ends.get(name, periods.day_ends) - periods.now),
    )
