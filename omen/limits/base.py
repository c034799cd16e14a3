"""The limits contract: what a container may spend, what one request asks for, the verdict.

Windows: requests per hour and tokens per minute are sliding (the last 3,600 / 60 seconds);
requests and tokens per day, the cost quota and the daily/weekly/monthly budgets are calendar
windows in `server.time_zone` (weeks start on Monday). A request reserves before it leaves
Omen — one request, its estimated tokens (prompt estimate + max output) and its estimated
cost at the chosen candidate's price — and settles to the real usage afterwards, or releases
the reservation if the upstream failed. Check-and-reserve is atomic in both backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

SOFT_LIMIT = 0.9  # at 90% of any quota or budget the answer carries x-omen-quota-warning

QUOTA = "quota_exceeded"
BUDGET = "budget_exceeded"
RATE = "rate_limit_exceeded"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One container's limits, from its config and any budget override."""

    container: str
    max_requests_per_hour: int | None = None
    max_requests_per_day: int | None = None
    max_tokens_per_day: int | None = None
    max_cost_per_day: float | None = None
    budget_daily: float | None = None
    budget_weekly: float | None = None
    budget_monthly: float | None = None
    on_exceed: str = "deny"
    alert_at_percent: float | None = None
    requests_per_second: float | None = None
    burst: int | None = None
    tokens_per_minute: int | None = None

    @property
    def limited(self) -> bool:
        return any(
            v is not None
            for v in (
                self.max_requests_per_hour,
                self.max_requests_per_day,
                self.max_tokens_per_day,
                self.max_cost_per_day,
                self.budget_daily,
                self.budget_weekly,
                self.budget_monthly,
                self.requests_per_second,
                self.tokens_per_minute,
            )
        )

    def budgets(self) -> list[tuple[str, float]]:
        """(period, limit) for each configured budget."""
        return [
            (period, limit)
            for period, limit in (
                ("daily", self.budget_daily),
                ("weekly", self.budget_weekly),
                ("monthly", self.budget_monthly),
            )
            if limit is not None
        ]


@dataclass(frozen=True, slots=True)
class Periods:
    """The calendar windows a moment falls in, and when each ends (unix seconds)."""

    now: float
    day: str
    week: str
    month: str
    day_ends: float
    week_ends: float
    month_ends: float
    day_starts: float
    week_starts: float
    month_starts: float

    @classmethod
    def at(cls, now: float, tz: ZoneInfo) -> Periods:
        local = datetime.fromtimestamp(now, tz)
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
        week0 = day0 - timedelta(days=day0.weekday())
        month0 = day0.replace(day=1)
        # Aware arithmetic on a ZoneInfo datetime is wall-clock arithmetic: "tomorrow at
        # midnight" stays local midnight across a DST change.
        next_month = (month0 + timedelta(days=32)).replace(day=1)
        iso = local.isocalendar()
        return cls(
            now=now,
            day=day0.strftime("%Y-%m-%d"),
            week=f"{iso.year}-W{iso.week:02d}",
            month=month0.strftime("%Y-%m"),
            day_ends=(day0 + timedelta(days=1)).timestamp(),
            week_ends=(week0 + timedelta(days=7)).timestamp(),
            month_ends=next_month.timestamp(),
            day_starts=day0.timestamp(),
            week_starts=week0.timestamp(),
            month_starts=month0.timestamp(),
        )


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request reserves."""

    request_id: str
    tokens: int
    cost_usd: float
    free: bool = False  # a zero-cost (local) model: cost budgets do not apply


@dataclass(slots=True)
class Verdict:
    admitted: bool
    kind: str | None = None  # QUOTA | BUDGET | RATE when refused
    limit: str | None = None  # e.g. "max_requests_per_hour", "budget_daily"
    message: str = ""
    retry_after: float | None = None
    warnings: list[tuple[str, float]] = field(default_factory=list)  # (limit, % used) ≥ 90%
    over_budget: list[str] = field(default_factory=list)  # admitted past a budget (warn/ignore)
    alerts: list[tuple[str, float, float]] = field(default_factory=list)  # (period, spent, limit)

    def warning_header(self) -> str | None:
        if not self.warnings:
            return None
        return ", ".join(f"{name}={pct:.0f}%" for name, pct in self.warnings)


@dataclass(slots=True)
class Usage:
    """What a container has used in each window (reservations in flight included)."""

    requests_hour: int = 0
    requests_day: int = 0
    tokens_day: int = 0
    tokens_minute: int = 0
    cost_day: float = 0.0
    cost_week: float = 0.0
    cost_month: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "requests_hour": self.requests_hour,
            "requests_day": self.requests_day,
            "tokens_day": self.tokens_day,
            "tokens_minute": self.tokens_minute,
            "cost_day": round(self.cost_day, 6),
            "cost_week": round(self.cost_week, 6),
            "cost_month": round(self.cost_month, 6),
        }


class LimitsUnavailable(Exception):
    """The shared backend cannot be reached (Redis down)."""


class LimitBackend(Protocol):
    name: str

    async def admit(self, spec: LimitSpec, ask: Ask, periods: Periods) -> Verdict:
        """Check every limit and, only if all pass (or on_exceed allows), reserve atomically."""
        ...

    async def settle(
        self, spec: LimitSpec, ask: Ask, periods: Periods, tokens: int, cost_usd: float
    ) -> None:
        """Replace the reservation by what the request really used."""
        ...

    async def release(self, spec: LimitSpec, ask: Ask, periods: Periods) -> None:
        """Give the whole reservation back (the upstream failed; nothing was used)."""
        ...

    async def usage(self, spec: LimitSpec, periods: Periods) -> Usage: ...

    async def aclose(self) -> None: ...
