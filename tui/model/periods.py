"""The calendar windows budgets count in: day, week (from Monday) and month, in a time zone.

The daemon counts budgets in `server.time_zone`; the spend rollups in the store are by UTC
day. The console uses the daemon's figures when it can reach it and the rollups otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("daily", "weekly", "monthly")


@dataclass(frozen=True, slots=True)
class Periods:
    now: float
    starts: dict[str, float]
    ends: dict[str, float]

    @classmethod
    def at(cls, now: float, tz: ZoneInfo) -> Periods:
        local = datetime.fromtimestamp(now, tz)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
        week0 = day0 - timedelta(days=day0.weekday())
        month0 = day0.replace(day=1)
        next_month = (month0 + timedelta(days=32)).replace(day=1)
        return cls(
            now=now,
            starts={
                "daily": day0.timestamp(),
                "weekly": week0.timestamp(),
                "monthly": month0.timestamp(),
            },
            ends={
                "daily": (day0 + timedelta(days=1)).timestamp(),
                "weekly": (week0 + timedelta(days=7)).timestamp(),
                "monthly": next_month.timestamp(),
            },
        )

    def elapsed_fraction(self, period: str) -> float:
        start, end = self.starts[period], self.ends[period]
        return min(1.0, max(0.0, (self.now - start) / (end - start)))

    def hours_elapsed(self, period: str) -> float:
        return max(0.0, self.now - self.starts[period]) / 3600


def utc_day(ts: float) -> str:
    """The spend rollups' day name for a moment."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
