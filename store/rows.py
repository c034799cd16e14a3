"""What the store's read queries return: one slotted dataclass per kind of row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from omen_store.records import RequestRecord


@dataclass(slots=True)
class RequestRow(RequestRecord):
    """A stored request: every RequestRecord column (decision parsed) plus its rowid."""

    rowid: int = field(default=0, kw_only=True)
    instance: str = field(default="", kw_only=True)  # the Omen instance that served it


@dataclass(slots=True)
class SpendTotals:
    """Counters summed over some set of requests."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms_sum: float = 0.0
    cached_tokens: int = 0  # prompt tokens read from a provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to it
    cache_saved_usd: float = 0.0  # what the cache reads saved against the full input price

    @property
    def mean_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.requests if self.requests else None

    @property
    def cache_hit_ratio(self) -> float | None:
        """Share of prompt tokens read from a prompt cache; None when there were none."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None


@dataclass(slots=True)
class ContainerSpend:
    container: str
    totals: SpendTotals


@dataclass(slots=True)
class SpendDailyRow:
    """One spend_daily row; provider and model are '' for requests refused before routing."""

    day: str
    container: str
    provider: str
    model: str
    totals: SpendTotals


@dataclass(slots=True)
class MinuteTraffic:
    minute: int  # unix time of the minute's start
    requests: int
    errors: int
    cost_usd: float


@dataclass(slots=True)
class HealthRow:
    ts: float
    provider: str
    endpoint: str
    healthy: bool
    latency_ms: float | None
    error: str | None
    in_flight: int
    instance: str = ""  # the instance that probed it: each sees the endpoint from where it runs


@dataclass(slots=True)
class GpuRow:
    ts: float
    provider: str
    endpoint: str
    loaded_models: list[dict[str, Any]]
    vram_used_bytes: int | None
    vram_total_bytes: int | None
    gpu_util_percent: float | None
    in_flight: int
    instance: str = ""


@dataclass(slots=True)
class DrainRow:
    provider: str
    endpoint: str
    drained: bool
    reason: str | None
    actor: str
    ts: float
    instance: str = ""  # through which instance it was set


@dataclass(slots=True)
class BudgetOverrideRow:
    """Persisted budget overrides; None for a period means the configured budget applies."""

    container: str
    daily: float | None
    weekly: float | None
    monthly: float | None
    ts: float
    actor: str
    instance: str = ""


@dataclass(slots=True)
class BudgetChangeRow:
    id: int
    ts: float
    container: str
    before: dict[str, Any]
    after: dict[str, Any]
    actor: str
    instance: str = ""


@dataclass(slots=True)
class AuditRow:
    id: int
    ts: float
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None
    instance: str = ""
    role: str = ""  # what an operator signed in through OIDC acted as; '' for a key


@dataclass(slots=True)
class ApiKeyRow:
    """A key made through the admin API (never the key: its digest)."""

    key_id: str
    digest: str
    container: str | None
    scope: str
    name: str | None
    created_ts: float
    created_by: str
    revoked_ts: float | None
    revoked_by: str | None
    instance: str

    @property
    def active(self) -> bool:
        return self.revoked_ts is None


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """Outcome statistics of one (container, intent, provider, model)."""

    container: str
    intent: str
    provider: str
    model: str
    requests: int
    errors: int
    escalations: int
    latency_ms_sum: float
    feedback_n: int
    feedback_sum: float
    updated: float


def audit_change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """An audit row's before→after in words, naming only what changed when both sides are
    tables: what `omen logs --audit` prints and the console's audit trail shows."""
    if before is None and after is None:
        return ""
    if isinstance(before, dict) and isinstance(after, dict):
        fields = dict.fromkeys([*before, *after])
        changed = [name for name in fields if before.get(name) != after.get(name)]
        if not changed:
            return "(no change)"
        return ", ".join(
            f"{name} {_value(before.get(name))}→{_value(after.get(name))}" for name in changed
        )
    return f"{_fields(before)}→{_fields(after)}"


def _fields(table: dict[str, Any] | None) -> str:
    if not table:
        return "-"
    return " ".join(f"{name}={_value(value)}" for name, value in table.items())


def _value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
