"""Per-container spend against budgets and quotas: meters, burn rate, forecast, soft/hard status.

Built from `GET /admin/containers` when the daemon answers (its live counters, in its time
zone), otherwise from the store's rollups and persisted budget overrides (history only: no
quota counters, configured budgets unknown). The burn rate is always the store's last hour
(spend_minutely), so a forecast reacts to what is being spent now, not the day's average.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omen_store import BudgetOverrideRow, ContainerSpend
from omen_tui.model.cache import CacheUse
from omen_tui.model.periods import PERIODS, Periods

SOFT = 0.9  # the daemon warns at 90% of any quota or budget

# (label, limit key in the daemon's limits, usage key, is money)
QUOTAS = (
    ("req/hour", "max_requests_per_hour", "requests_hour", False),
    ("req/day", "max_requests_per_day", "requests_day", False),
    ("tokens/day", "max_tokens_per_day", "tokens_day", False),
    ("tokens/min", "tokens_per_minute", "tokens_minute", False),
    ("cost/day", "max_cost_per_day", "cost_day", True),
)
BUDGET_LABELS = {"daily": "today", "weekly": "week", "monthly": "month"}


@dataclass(slots=True)
class Meter:
    """One used-of-limit gauge; `limit` None means unlimited."""

    label: str
    used: float
    limit: float | None
    money: bool = False
    forecast: float | None = None  # end-of-period projection (budgets only)
    known: bool = True  # False: the limit lives in the daemon's config, which is not reachable

    @property
    def fraction(self) -> float | None:
        if self.limit is None:
            return None
        if self.limit <= 0:
            return 1.0 if self.used > 0 else 0.0
        return self.used / self.limit

    @property
    def level(self) -> str:
        """ "none" (unlimited), "ok", "soft" (≥ 90%) or "hard" (≥ 100%)."""
        fraction = self.fraction
        if fraction is None:
            return "none"
        if fraction >= 1.0:
            return "hard"
        return "soft" if fraction >= SOFT else "ok"

    @property
    def forecast_over(self) -> bool:
        return self.limit is not None and self.forecast is not None and self.forecast > self.limit


@dataclass(slots=True)
class ContainerStatus:
    name: str
    spend: dict[str, float]  # period -> USD spent
    budgets: list[Meter]  # daily, weekly, monthly
    quotas: list[Meter] = field(default_factory=list)
    requests_day: int = 0
    errors_day: int = 0
    tokens_day: int = 0
    burn_per_hour: float = 0.0  # USD per hour over the last hour
    sessions_today: int | None = None  # distinct agent sessions today; None: not read
    on_exceed: str | None = None
    pressure: float = 0.0
    rate_limit: str | None = None  # e.g. "5/s burst 10"
    live: bool = False  # from the daemon (True) or the store's history (False)
    # Why not live, in the card's words: the daemon is down, or it is up but refused us.
    offline: str = "daemon down"
    # period -> prompt-cache use, always from the store's rollups (UTC days)
    cache: dict[str, CacheUse] = field(default_factory=dict)

    @property
    def meters(self) -> list[Meter]:
        return [*self.budgets, *self.quotas]

    @property
    def status(self) -> str:
        levels = {meter.level for meter in self.meters}
        if "hard" in levels:
            return "hard"
        if "soft" in levels:
            return "soft"
        return "ok"

    @property
    def worst(self) -> Meter | None:
        """The meter closest to (or furthest past) its limit."""
        limited = [m for m in self.meters if m.fraction is not None]
        return max(limited, key=lambda m: m.fraction or 0.0, default=None)


def forecast(spent: float, burn_per_hour: float, periods: Periods, period: str) -> float:
    """Spend at the end of the period if the last hour's burn rate goes on: what is spent
    plus the burn over the hours left. (The period's average would hide a burst that
    started a minute ago behind a quiet morning.)"""
    hours_left = max(0.0, periods.ends[period] - periods.now) / 3600
    return spent + burn_per_hour * hours_left


def build_statuses(
    periods: Periods,
    spend_by_period: dict[str, list[ContainerSpend]],
    overrides: dict[str, BudgetOverrideRow],
    daemon: dict[str, Any] | None,
    *,
    burn: dict[str, float] | None = None,
    sessions: dict[str, int] | None = None,
) -> list[ContainerStatus]:
    """Every container the daemon or the store knows, sorted by name.

    `burn`: USD per hour over the last hour per container; `sessions`: distinct sessions
    today per container (None: not known, shown as such).
    """
    from_store: dict[str, dict[str, ContainerSpend]] = {}
    for period, rows in spend_by_period.items():
        for row in rows:
            from_store.setdefault(row.container, {})[period] = row
    live = {c["container"]: c for c in (daemon or {}).get("containers", [])}
    names = sorted(set(from_store) | set(live) | set(overrides))
    burn = burn or {}
    statuses = []
    for name in names:
        status = _status(
            name,
            periods,
            from_store.get(name, {}),
            overrides.get(name),
            live.get(name),
            burn.get(name, 0.0),
        )
        if sessions is not None:
            status.sessions_today = sessions.get(name, 0)
        statuses.append(status)
    return statuses


def _status(
    name: str,
    periods: Periods,
    stored: dict[str, ContainerSpend],
    override: BudgetOverrideRow | None,
    live: dict[str, Any] | None,
    burn_per_hour: float,
) -> ContainerStatus:
    today = stored.get("daily")
    totals = today.totals if today else None
    if live is not None:
        spend_live = live.get("spend") or {}
        spend = {p: float(spend_live.get(p) or 0.0) for p in PERIODS}
        limits = live.get("limits") or {}
        budget_limits = {p: _number(limits.get(f"budget_{p}")) for p in PERIODS}
    else:
        spend = {p: stored[p].totals.cost_usd if p in stored else 0.0 for p in PERIODS}
        limits = {}
        budget_limits = {p: getattr(override, p) if override else None for p in PERIODS}
    budgets = [
        Meter(
            BUDGET_LABELS[p],
            spend[p],
            budget_limits[p],
            money=True,
            forecast=forecast(spend[p], burn_per_hour, periods, p),
            # Without the daemon only overrides are known; a configured budget is not.
            known=live is not None or budget_limits[p] is not None,
        )
        for p in PERIODS
    ]
    status = ContainerStatus(
        name=name,
        spend=spend,
        budgets=budgets,
        requests_day=totals.requests if totals else 0,
        errors_day=totals.errors if totals else 0,
        tokens_day=(totals.prompt_tokens + totals.completion_tokens) if totals else 0,
        burn_per_hour=burn_per_hour,
        live=live is not None,
        cache={p: CacheUse.of(stored[p].totals) if p in stored else CacheUse() for p in PERIODS},
    )
    if live is not None:
        usage = live.get("usage") or {}
        status.quotas = [
            Meter(label, float(usage.get(used_key) or 0), _number(limits.get(limit_key)), money)
            for label, limit_key, used_key, money in QUOTAS
            if limits.get(limit_key) is not None
        ]
        status.requests_day = int(usage.get("requests_day") or status.requests_day)
        status.tokens_day = int(usage.get("tokens_day") or status.tokens_day)
        status.on_exceed = limits.get("on_exceed")
        status.pressure = float(live.get("budget_pressure") or 0.0)
        rps = limits.get("requests_per_second")
        if rps is not None:
            burst = limits.get("burst")
            status.rate_limit = f"{rps:g}/s" + (f" burst {burst}" if burst else "")
    return status


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
