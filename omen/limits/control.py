"""Usage control for the gateway: each container's limits, admission, settlement, overrides.

Owns the backend (in-process or Redis), the budget overrides set through the admin API, the
alerter, and a per-container "budget pressure" (the largest share of any budget used) that
routing reads to steer a container near its budget to cheaper candidates before it is refused.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from omen.config import ContainerConfig, OmenConfig
from omen.limits.alerts import Alerter
from omen.limits.base import (
    Ask,
    LimitBackend,
    LimitSpec,
    LimitsUnavailable,
    Periods,
    Usage,
    Verdict,
)
from omen.limits.memory import MemoryLimits
from omen_store import BudgetOverrideRow, StoreReader, StoreWriter

log = logging.getLogger("omen.limits")


@dataclass(slots=True)
class Admission:
    spec: LimitSpec
    ask: Ask
    periods: Periods
    verdict: Verdict
    counted: bool = True  # False when Redis was down and the request was let through


class Refused(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


class Unavailable(Exception):
    """Limits could not be checked and `redis_fail_open` is false."""


def spec_for(
    name: str, container: ContainerConfig, overrides: dict[str, float | None]
) -> LimitSpec:
    q, b, r = container.quotas, container.budget, container.rate_limit

    def budget(period: str, configured: float | None) -> float | None:
        return overrides.get(period, configured)

    return LimitSpec(
        container=name,
        max_requests_per_hour=q.max_requests_per_hour,
        max_requests_per_day=q.max_requests_per_day,
        max_tokens_per_day=q.max_tokens_per_day,
        max_cost_per_day=q.max_cost_per_day,
        budget_daily=budget("daily", b.daily),
        budget_weekly=budget("weekly", b.weekly),
        budget_monthly=budget("monthly", b.monthly),
        on_exceed=b.on_exceed,
        alert_at_percent=b.alert_at_percent,
        requests_per_second=r.requests_per_second,
        burst=r.burst,
        tokens_per_minute=r.tokens_per_minute,
    )


class UsageControl:
    def __init__(self, config: OmenConfig, backend: LimitBackend, writer: StoreWriter) -> None:
        self.config = config
        self.backend = backend
        self.writer = writer
        self.tz = ZoneInfo(config.server.time_zone)
        self.fail_open = config.server.redis_fail_open
        self.overrides: dict[str, dict[str, float | None]] = {}
        self.specs: dict[str, LimitSpec] = {}
        self.pressure: dict[str, float] = {}
        self.alerter = Alerter(writer)
        self.status = "ok"
        self._rebuild()

    def _rebuild(self) -> None:
        self.specs = {
            name: spec_for(name, container, self.overrides.get(name, {}))
            for name, container in self.config.containers.items()
        }

    def reconfigure(self, config: OmenConfig) -> None:
        """A reloaded config: new limits at once; counters, overrides and pressure stay."""
        self.config = config
        self.tz = ZoneInfo(config.server.time_zone)
        self.fail_open = config.server.redis_fail_open
        self._rebuild()

    def periods(self, now: float | None = None) -> Periods:
        return Periods.at(time.time() if now is None else now, self.tz)

    # --- startup -------------------------------------------------------------------------

    def restore(self, reader: StoreReader) -> None:
        """Overrides and alerts from the store; counters too for the in-process backend."""
        for name, row in reader.budget_overrides().items():
            self._override_from(name, row)
        self._rebuild()
        if not isinstance(self.backend, MemoryLimits):
            return  # Redis holds its own counters
        periods = self.periods()
        for name, spec in self.specs.items():
            if not spec.limited:
                continue
            today, _ = reader.admitted_since(name, periods.day_starts)
            _, hour_times = reader.admitted_since(
                name, periods.now - 3600, times_limit=spec.max_requests_per_hour or 0
            )
            day = reader.spend_window(name, periods.day_starts)
            week = reader.spend_window(name, periods.week_starts)
            month = reader.spend_window(name, periods.month_starts)
            self.backend.restore(
                name,
                periods,
                hour_timestamps=hour_times,
                requests_day=today,
                tokens_day=day.prompt_tokens + day.completion_tokens,
                cost_day=day.cost_usd,
                cost_week=week.cost_usd,
                cost_month=month.cost_usd,
            )

    # --- the request path ----------------------------------------------------------------

    def spec(self, container: str) -> LimitSpec | None:
        spec = self.specs.get(container)
        return spec if spec is not None and spec.limited else None

    async def admit(self, container: str, ask: Ask) -> Admission | None:
        """None when the container has no limits; raises Refused (429) or Unavailable."""
        spec = self.spec(container)
        if spec is None:
            return None
        periods = self.periods()
        try:
            verdict = await self.backend.admit(spec, ask, periods)
        except LimitsUnavailable as exc:
            self._unavailable(exc)
            if self.fail_open:
                return Admission(spec, ask, periods, Verdict(True), counted=False)
            raise Unavailable(str(exc)) from exc
        self.status = "ok"
        if not verdict.admitted:
            raise Refused(verdict)
        self._after(spec, periods, verdict)
        return Admission(spec, ask, periods, verdict)

    def _after(self, spec: LimitSpec, periods: Periods, verdict: Verdict) -> None:
        budget_shares = [pct / 100 for name, pct in verdict.warnings if name.startswith("budget_")]
        self.pressure[spec.container] = max(budget_shares, default=0.0)
        container = self.config.containers.get(spec.container)
        for period, spent, limit in verdict.alerts:
            key = {"daily": periods.day, "weekly": periods.week, "monthly": periods.month}[period]
            self.alerter.maybe_send(
                container=spec.container,
                webhook=container.budget.alert_webhook if container else None,
                period=period,
                period_key=key,
                threshold=spec.alert_at_percent or 0.0,
                spent=spent,
                limit=limit,
            )

    def _unavailable(self, exc: Exception) -> None:
        if self.status == "ok":
            log.error(
                "usage limits backend unreachable: %s — failing %s",
                exc,
                "OPEN (requests are let through uncounted)"
                if self.fail_open
                else "CLOSED (requests are refused with 503)",
            )
        self.status = f"unreachable: {exc}"

    async def settle(self, admission: Admission | None, tokens: int, cost: float) -> None:
        if admission is None or not admission.counted:
            return
        try:
            await self.backend.settle(
                admission.spec, admission.ask, admission.periods, tokens, cost
            )
        except LimitsUnavailable as exc:
            self._unavailable(exc)

    async def release(self, admission: Admission | None) -> None:
        if admission is None or not admission.counted:
            return
        try:
            await self.backend.release(admission.spec, admission.ask, admission.periods)
        except LimitsUnavailable as exc:
            self._unavailable(exc)

    # --- admin ---------------------------------------------------------------------------

    def set_budget(
        self, container: str, changes: dict[str, float | None]
    ) -> dict[str, float | None]:
        """Apply a budget override now; returns the effective budgets before the change."""
        spec = self.specs[container]
        before: dict[str, float | None] = {
            "daily": spec.budget_daily,
            "weekly": spec.budget_weekly,
            "monthly": spec.budget_monthly,
        }
        own = self.overrides.setdefault(container, {})
        for period, value in changes.items():
            if value is None:
                own.pop(period, None)  # back to the configured budget
            else:
                own[period] = value
        self.specs[container] = spec_for(container, self.config.containers[container], own)
        return before

    def take_override(self, container: str, row: BudgetOverrideRow) -> bool:
        """Apply overrides another instance of the fleet stored (omen.shared_state); returns
        whether they differ from what applied here."""
        before = self.overrides.get(container, {})
        self._override_from(container, row)
        if self.overrides[container] == before:
            return False
        configured = self.config.containers.get(container)
        if configured is not None:
            self.specs[container] = spec_for(container, configured, self.overrides[container])
        return True

    def _override_from(self, container: str, row: BudgetOverrideRow) -> None:
        self.overrides[container] = {
            period: getattr(row, period)
            for period in ("daily", "weekly", "monthly")
            if getattr(row, period) is not None
        }

    async def usage(self, container: str) -> Usage:
        spec = self.specs.get(container) or LimitSpec(container)
        return await self.backend.usage(spec, self.periods())

    def describe(self) -> dict[str, object]:
        return {
            "backend": self.backend.name,
            "status": self.status,
            "on_unreachable": "open" if self.fail_open else "closed",
        }

    async def aclose(self) -> None:
        await self.alerter.aclose()
        await self.backend.aclose()


def retry_after_header(verdict: Verdict) -> str:
    return str(max(1, math.ceil(verdict.retry_after or 1)))
