"""Spend rollups: per-batch deltas for spend_daily, spend_hourly and spend_minutely.

The writer adds each request of a batch here and upserts the summed deltas in the same
transaction as the request rows, so the rollups always equal sums over the request table.
Buckets are by the request's start time, in UTC.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TypeVar

_COUNTERS = (
    "requests, errors, prompt_tokens, completion_tokens, cost_usd, latency_ms_sum, "
    "cached_tokens, cache_write_tokens, cache_saved_usd"
)
_PLACES = ", ".join("?" * len(_COUNTERS.split(", ")))
_ADD_COUNTERS = ", ".join(f"{name} = {name} + excluded.{name}" for name in _COUNTERS.split(", "))

UPSERT_DAILY = f"""
    INSERT INTO spend_daily (day, container, provider, model, {_COUNTERS})
    VALUES (?, ?, ?, ?, {_PLACES})
    ON CONFLICT (day, container, provider, model) DO UPDATE SET {_ADD_COUNTERS}
"""
UPSERT_HOURLY = f"""
    INSERT INTO spend_hourly (hour, container, provider, {_COUNTERS})
    VALUES (?, ?, ?, {_PLACES})
    ON CONFLICT (hour, container, provider) DO UPDATE SET {_ADD_COUNTERS}
"""
UPSERT_MINUTELY = f"""
    INSERT INTO spend_minutely (minute, container, provider, {_COUNTERS})
    VALUES (?, ?, ?, {_PLACES})
    ON CONFLICT (minute, container, provider) DO UPDATE SET {_ADD_COUNTERS}
"""

# In _COUNTERS' order.
Counters = list[float]
K = TypeVar("K", bound=tuple[object, ...])

_day_names: dict[int, str] = {}
_hour_names: dict[int, str] = {}


def day_name(ts: float) -> str:
    """'YYYY-MM-DD' of a unix time, in UTC."""
    number = int(ts // 86400)
    name = _day_names.get(number)
    if name is None:
        name = _day_names[number] = time.strftime("%Y-%m-%d", time.gmtime(number * 86400))
    return name


def hour_name(ts: float) -> str:
    """'YYYY-MM-DDTHH' of a unix time, in UTC."""
    number = int(ts // 3600)
    name = _hour_names.get(number)
    if name is None:
        if len(_hour_names) > 10_000:  # a long-lived daemon must not grow this forever
            _hour_names.clear()
        name = _hour_names[number] = time.strftime("%Y-%m-%dT%H", time.gmtime(number * 3600))
    return name


class SpendRollups:
    """Summed counters of one batch, keyed by rollup bucket."""

    __slots__ = ("daily", "hourly", "minutely")

    def __init__(self) -> None:
        self.daily: dict[tuple[str, str, str, str], Counters] = {}
        self.hourly: dict[tuple[str, str, str], Counters] = {}
        self.minutely: dict[tuple[int, str, str], Counters] = {}

    def add(
        self,
        *,
        ts: float,
        container: str,
        provider: str | None,
        model: str | None,
        is_error: bool,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        latency_ms: float,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_saved_usd: float = 0.0,
    ) -> None:
        provider_key = provider or ""
        deltas = (
            1,
            1 if is_error else 0,
            prompt_tokens,
            completion_tokens,
            cost_usd,
            latency_ms,
            cached_tokens,
            cache_write_tokens,
            cache_saved_usd,
        )
        _accumulate(self.daily, (day_name(ts), container, provider_key, model or ""), deltas)
        _accumulate(self.hourly, (hour_name(ts), container, provider_key), deltas)
        minute = int(ts // 60) * 60
        _accumulate(self.minutely, (minute, container, provider_key), deltas)

    def write(self, conn: sqlite3.Connection) -> None:
        """Upsert the deltas; the caller holds the transaction."""
        if self.daily:
            conn.executemany(UPSERT_DAILY, [(*k, *v) for k, v in self.daily.items()])
            conn.executemany(UPSERT_HOURLY, [(*k, *v) for k, v in self.hourly.items()])
            conn.executemany(UPSERT_MINUTELY, [(*k, *v) for k, v in self.minutely.items()])


def _accumulate(buckets: dict[K, Counters], key: K, deltas: tuple[float, ...]) -> None:
    counters = buckets.get(key)
    if counters is None:
        buckets[key] = list(deltas)
    else:
        for i, delta in enumerate(deltas):
            counters[i] += delta
