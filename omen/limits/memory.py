"""In-process limits: one daemon's counters, exact because check-and-reserve never awaits.

Everything happens between two awaits of the event loop, so 200 concurrent requests see each
other's reservations. Counters survive a restart: `restore` reloads today's, this week's and
this month's usage and the last hour's requests from the store.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from omen.limits.base import (
    BUDGET,
    QUOTA,
    RATE,
    SOFT_LIMIT,
    Ask,
    LimitSpec,
    Periods,
    Usage,
    Verdict,
)


@dataclass(slots=True)
class _Calendar:
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0


@dataclass(slots=True)
class _Counters:
    hour: deque[tuple[float, str]] = field(default_factory=deque)
    minute: deque[list[object]] = field(default_factory=deque)  # [ts, request id, tokens]
    minute_sum: int = 0
    minute_index: dict[str, list[object]] = field(default_factory=dict)
    days: dict[str, _Calendar] = field(default_factory=dict)
    weeks: dict[str, float] = field(default_factory=dict)
    months: dict[str, float] = field(default_factory=dict)
    bucket: float | None = None
    bucket_ts: float = 0.0

    def day(self, key: str) -> _Calendar:
        day = self.days.get(key)
        if day is None:
            self.days.clear()  # only the current day matters; yesterday is the store's
            day = self.days[key] = _Calendar()
        return day

    def trim(self, now: float) -> None:
        while self.hour and self.hour[0][0] <= now - 3600:
            self.hour.popleft()
        while self.minute and float(self.minute[0][0]) <= now - 60:  # type: ignore[arg-type]
            entry = self.minute.popleft()
            self.minute_sum -= int(entry[2])  # type: ignore[call-overload]
            self.minute_index.pop(str(entry[1]), None)

    def add_minute(self, now: float, request_id: str, tokens: int) -> None:
        entry: list[object] = [now, request_id, tokens]
        self.minute.append(entry)
        self.minute_index[request_id] = entry
        self.minute_sum += tokens

    def adjust_minute(self, request_id: str, delta: int) -> None:
        entry = self.minute_index.get(request_id)
        if entry is not None:
            new = max(0, int(entry[2]) + delta)  # type: ignore[call-overload]
            self.minute_sum += new - int(entry[2])  # type: ignore[call-overload]
            entry[2] = new

    def drop(self, request_id: str) -> None:
        """Forget a released request in both sliding windows (rare: upstream failures)."""
        entry = self.minute_index.pop(request_id, None)
        if entry is not None:
            self.minute_sum -= int(entry[2])  # type: ignore[call-overload]
            self.minute.remove(entry)
        self.hour = deque(e for e in self.hour if e[1] != request_id)


def _over(spent: float, ask: float, limit: float) -> bool:
    """Money compared in whole micro-dollars, as the Redis backend stores it: 0.1 + 0.2 fits 0.3."""
    return round(spent * 1e6) + round(ask * 1e6) > round(limit * 1e6)


def bucket_capacity(spec: LimitSpec) -> float:
    assert spec.requests_per_second is not None
    return float(spec.burst or max(1, int(spec.requests_per_second)))


def judge(
    spec: LimitSpec,
    ask: Ask,
    periods: Periods,
    *,
    requests_hour: int,
    oldest_hour: float | None,
    requests_day: int,
    tokens_day: int,
    tokens_minute: int,
    oldest_minute: float | None,
    cost_day: float,
    cost_week: float,
    cost_month: float,
    bucket: float | None,
) -> Verdict:
    """Decide on one request from the usage before it. Pure: both backends' reference."""
    now = periods.now
    if spec.requests_per_second is not None and bucket is not None and bucket < 1.0:
        return Verdict(
            False,
            RATE,
            "requests_per_second",
            f"rate limit of {spec.requests_per_second:g} requests/s "
            f"(burst {bucket_capacity(spec):g}) reached",
            retry_after=(1.0 - bucket) / spec.requests_per_second,
        )
    if spec.tokens_per_minute is not None and tokens_minute + ask.tokens > spec.tokens_per_minute:
        wait = (oldest_minute + 60 - now) if oldest_minute is not None else 60.0
        return Verdict(
            False,
            RATE,
            "tokens_per_minute",
            f"{tokens_minute} of {spec.tokens_per_minute} tokens used in the last minute; "
            f"this request needs about {ask.tokens}",
            retry_after=max(wait, 0.0),
        )
    if spec.max_requests_per_hour is not None and requests_hour + 1 > spec.max_requests_per_hour:
        wait = (oldest_hour + 3600 - now) if oldest_hour is not None else 3600.0
        return Verdict(
            False,
            QUOTA,
            "max_requests_per_hour",
            f"{requests_hour} of {spec.max_requests_per_hour} requests used in the last hour",
            retry_after=max(wait, 0.0),
        )
    if spec.max_requests_per_day is not None and requests_day + 1 > spec.max_requests_per_day:
        return Verdict(
            False,
            QUOTA,
            "max_requests_per_day",
            f"{requests_day} of {spec.max_requests_per_day} requests used today",
            retry_after=periods.day_ends - now,
        )
    if spec.max_tokens_per_day is not None and tokens_day + ask.tokens > spec.max_tokens_per_day:
        return Verdict(
            False,
            QUOTA,
            "max_tokens_per_day",
            f"{tokens_day} of {spec.max_tokens_per_day} tokens used today; "
            f"this request needs about {ask.tokens}",
            retry_after=periods.day_ends - now,
        )
    if (
        not ask.free
        and spec.max_cost_per_day is not None
        and (cost_day + ask.cost_usd > spec.max_cost_per_day)
    ):
        return Verdict(
            False,
            QUOTA,
            "max_cost_per_day",
            f"${cost_day:.4f} of ${spec.max_cost_per_day:.2f} spent today; this request "
            f"may cost ${ask.cost_usd:.4f}",
            retry_after=periods.day_ends - now,
        )
    verdict = Verdict(True)
    spent = {"daily": cost_day, "weekly": cost_week, "monthly": cost_month}
    ends = {"daily": periods.day_ends, "weekly": periods.week_ends, "monthly": periods.month_ends}
    if not ask.free:
        for period, limit in spec.budgets():
            if _over(spent[period], ask.cost_usd, limit):
                if spec.on_exceed == "deny":
                    return Verdict(
                        False,
                        BUDGET,
                        f"budget_{period}",
                        f"${spent[period]:.4f} of the ${limit:.2f} {period} budget spent; this "
                        f"request may cost ${ask.cost_usd:.4f}",
                        retry_after=ends[period] - now,
                    )
                verdict.over_budget.append(f"budget_{period}")
    # Admitted: what the usage will be with this request, for warnings and alerts.
    after: dict[str, tuple[float, float | int | None]] = {
        "max_requests_per_hour": (requests_hour + 1, spec.max_requests_per_hour),
        "max_requests_per_day": (requests_day + 1, spec.max_requests_per_day),
        "max_tokens_per_day": (tokens_day + ask.tokens, spec.max_tokens_per_day),
        "tokens_per_minute": (tokens_minute + ask.tokens, spec.tokens_per_minute),
        "max_cost_per_day": (cost_day + (0 if ask.free else ask.cost_usd), spec.max_cost_per_day),
    }
    for period, limit in spec.budgets():
        after[f"budget_{period}"] = (spent[period] + (0.0 if ask.free else ask.cost_usd), limit)
    for name, (used, cap) in after.items():
        if cap and used >= SOFT_LIMIT * cap:
            verdict.warnings.append((name, 100.0 * used / cap))
    if spec.alert_at_percent is not None and not ask.free:
        for period, limit in spec.budgets():
            threshold = spec.alert_at_percent / 100 * limit
            if spent[period] + ask.cost_usd >= threshold:
                verdict.alerts.append((period, spent[period] + ask.cost_usd, limit))
    return verdict


class MemoryLimits:
    name = "memory"

    def __init__(self) -> None:
        self._containers: dict[str, _Counters] = {}
        self._held: dict[str, Ask] = {}

    def _counters(self, container: str) -> _Counters:
        counters = self._containers.get(container)
        if counters is None:
            counters = self._containers[container] = _Counters()
        return counters

    def _refill(self, spec: LimitSpec, c: _Counters, now: float) -> float | None:
        if spec.requests_per_second is None:
            return None
        capacity = bucket_capacity(spec)
        if c.bucket is None:
            c.bucket = capacity
        else:
            c.bucket = min(capacity, c.bucket + (now - c.bucket_ts) * spec.requests_per_second)
        c.bucket_ts = now
        return c.bucket

    async def admit(self, spec: LimitSpec, ask: Ask, periods: Periods) -> Verdict:
        return self.admit_now(spec, ask, periods)

    def admit_now(self, spec: LimitSpec, ask: Ask, periods: Periods) -> Verdict:
        c = self._counters(spec.container)
        now = periods.now
        c.trim(now)
        day = c.day(periods.day)
        verdict = judge(
            spec,
            ask,
            periods,
            requests_hour=len(c.hour),
            oldest_hour=c.hour[0][0] if c.hour else None,
            requests_day=day.requests,
            tokens_day=day.tokens,
            tokens_minute=c.minute_sum,
            oldest_minute=float(c.minute[0][0]) if c.minute else None,  # type: ignore[arg-type]
            cost_day=day.cost,
            cost_week=c.weeks.get(periods.week, 0.0),
            cost_month=c.months.get(periods.month, 0.0),
            bucket=self._refill(spec, c, now),
        )
        if not verdict.admitted:
            return verdict
        if c.bucket is not None:
            c.bucket -= 1.0
        c.hour.append((now, ask.request_id))
        c.add_minute(now, ask.request_id, ask.tokens)
        cost = 0.0 if ask.free else ask.cost_usd
        day.requests += 1
        day.tokens += ask.tokens
        day.cost += cost
        c.weeks = {periods.week: c.weeks.get(periods.week, 0.0) + cost}
        c.months = {periods.month: c.months.get(periods.month, 0.0) + cost}
        self._held[ask.request_id] = ask
        return verdict

    async def settle(
        self, spec: LimitSpec, ask: Ask, periods: Periods, tokens: int, cost_usd: float
    ) -> None:
        self._adjust(
            spec,
            ask,
            periods,
            tokens - ask.tokens,
            cost_usd - (0.0 if ask.free else ask.cost_usd),
            0,
        )

    async def release(self, spec: LimitSpec, ask: Ask, periods: Periods) -> None:
        if ask.request_id not in self._held:
            return  # settled or released already: it stays counted
        self._counters(spec.container).drop(ask.request_id)
        self._adjust(spec, ask, periods, -ask.tokens, -(0.0 if ask.free else ask.cost_usd), -1)

    def _adjust(
        self, spec: LimitSpec, ask: Ask, periods: Periods, tokens: int, cost: float, requests: int
    ) -> None:
        if self._held.pop(ask.request_id, None) is None:
            return  # settled or released already
        c = self._counters(spec.container)
        c.adjust_minute(ask.request_id, tokens)
        day = c.days.get(periods.day)
        if day is not None:
            day.requests += requests
            day.tokens += tokens
            day.cost += cost
        if periods.week in c.weeks:
            c.weeks[periods.week] += cost
        if periods.month in c.months:
            c.months[periods.month] += cost

    async def usage(self, spec: LimitSpec, periods: Periods) -> Usage:
        c = self._counters(spec.container)
        c.trim(periods.now)
        day = c.days.get(periods.day) or _Calendar()
        return Usage(
            requests_hour=len(c.hour),
            requests_day=day.requests,
            tokens_day=day.tokens,
            tokens_minute=c.minute_sum,
            cost_day=day.cost,
            cost_week=c.weeks.get(periods.week, 0.0),
            cost_month=c.months.get(periods.month, 0.0),
        )

    def restore(
        self,
        container: str,
        periods: Periods,
        *,
        hour_timestamps: list[float],
        requests_day: int,
        tokens_day: int,
        cost_day: float,
        cost_week: float,
        cost_month: float,
    ) -> None:
        """Seed the counters from the store after a restart."""
        c = self._counters(container)
        c.hour = deque((ts, f"restored-{i}") for i, ts in enumerate(sorted(hour_timestamps)))
        c.days = {periods.day: _Calendar(requests_day, tokens_day, cost_day)}
        c.weeks = {periods.week: cost_week}
        c.months = {periods.month: cost_month}

    async def aclose(self) -> None:
        return None
