"""One writer batch: records encoded as SQL parameters, then written in the caller's transaction.

Encoding happens record by record, so a record that cannot be encoded (say, a decision that
is not JSON-serialisable) is refused on its own and leaves nothing half-added to the batch.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

import orjson

from store.records import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    GpuSample,
    HealthSample,
    RequestRecord,
)
from store.redact import redact_body
from store.rollups import SpendRollups

Row = tuple[Any, ...]

INSERT_REQUEST = """
    INSERT INTO requests (
        id, ts, container, key_id, kind, requested_model, model, provider, endpoint,
        intent, strategy, stream, status, level, latency_ms, ttft_ms, prompt_tokens,
        completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd,
        cache_saved_usd, reason, decision, error, trace_id, session, replay_of, client_closed
    ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
              ?, ?)
"""
INSERT_BODY = "INSERT OR REPLACE INTO request_bodies (request_id, ts, body) VALUES (?, ?, ?)"

_HEALTH_COLUMNS = "ts, provider, endpoint, healthy, latency_ms, error, in_flight"
INSERT_HEALTH = f"INSERT INTO health_samples ({_HEALTH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
UPSERT_HEALTH_LATEST = f"""
    INSERT INTO health_latest ({_HEALTH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (provider, endpoint) DO UPDATE SET
        ts = excluded.ts, healthy = excluded.healthy, latency_ms = excluded.latency_ms,
        error = excluded.error, in_flight = excluded.in_flight
    WHERE excluded.ts >= health_latest.ts
"""

_GPU_COLUMNS = (
    "ts, provider, endpoint, loaded_models, vram_used_bytes, vram_total_bytes, "
    "gpu_util_percent, in_flight"
)
INSERT_GPU = f"INSERT INTO gpu_samples ({_GPU_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT_GPU_LATEST = f"""
    INSERT INTO gpu_latest ({_GPU_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (provider, endpoint) DO UPDATE SET
        ts = excluded.ts, loaded_models = excluded.loaded_models,
        vram_used_bytes = excluded.vram_used_bytes, vram_total_bytes = excluded.vram_total_bytes,
        gpu_util_percent = excluded.gpu_util_percent, in_flight = excluded.in_flight
    WHERE excluded.ts >= gpu_latest.ts
"""

INSERT_AUDIT = """
    INSERT INTO audit (ts, actor, action, target, before, after, detail)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""
INSERT_BUDGET_CHANGE = """
    INSERT INTO budget_changes (ts, container, before, after, actor) VALUES (?, ?, ?, ?, ?)
"""
# A period named in the change is set (or cleared, with None); one not named is kept.
UPSERT_BUDGET_OVERRIDE = """
    INSERT INTO budget_overrides (container, daily, weekly, monthly, ts, actor)
    VALUES (:container, :daily, :weekly, :monthly, :ts, :actor)
    ON CONFLICT (container) DO UPDATE SET
        daily = CASE WHEN :set_daily THEN excluded.daily ELSE budget_overrides.daily END,
        weekly = CASE WHEN :set_weekly THEN excluded.weekly ELSE budget_overrides.weekly END,
        monthly = CASE WHEN :set_monthly THEN excluded.monthly ELSE budget_overrides.monthly END,
        ts = excluded.ts, actor = excluded.actor
"""
UPSERT_DRAIN = """
    INSERT INTO drains (provider, endpoint, drained, reason, actor, ts) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (provider, endpoint) DO UPDATE SET
        drained = excluded.drained, reason = excluded.reason,
        actor = excluded.actor, ts = excluded.ts
"""

BUDGET_PERIODS = ("daily", "weekly", "monthly")


def dumps(value: Any) -> str:
    """JSON text for a column; Decimal money keeps its digits as a string."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


class Batch:
    """Encoded rows of one transaction, grouped by statement, plus the spend deltas."""

    __slots__ = (
        "audit",
        "bodies",
        "budget_changes",
        "budget_overrides",
        "drains",
        "gpu",
        "health",
        "keep_bodies",
        "requests",
        "rollups",
    )

    def __init__(self, *, keep_bodies: bool) -> None:
        self.keep_bodies = keep_bodies
        self.requests: list[Row] = []
        self.bodies: list[Row] = []
        self.health: list[Row] = []
        self.gpu: list[Row] = []
        self.audit: list[Row] = []
        self.budget_changes: list[Row] = []
        self.budget_overrides: list[dict[str, Any]] = []
        self.drains: list[Row] = []
        self.rollups = SpendRollups()

    def add(self, record: object, body: dict[str, Any] | None = None) -> None:
        """Encode one record into the batch; raises (adding nothing) if it cannot be stored."""
        if isinstance(record, RequestRecord):
            self._add_request(record, body)
        elif isinstance(record, HealthSample):
            self.health.append(
                (
                    record.ts,
                    record.provider,
                    record.endpoint,
                    bool(record.healthy),
                    record.latency_ms,
                    record.error,
                    record.in_flight,
                )
            )
        elif isinstance(record, GpuSample):
            self.gpu.append(
                (
                    record.ts,
                    record.provider,
                    record.endpoint,
                    dumps(record.loaded_models),
                    record.vram_used_bytes,
                    record.vram_total_bytes,
                    record.gpu_util_percent,
                    record.in_flight,
                )
            )
        elif isinstance(record, AuditRecord):
            self.audit.append(
                (
                    record.ts,
                    record.actor,
                    record.action,
                    record.target,
                    None if record.before is None else dumps(record.before),
                    None if record.after is None else dumps(record.after),
                    record.detail,
                )
            )
        elif isinstance(record, BudgetChange):
            self._add_budget_change(record)
        elif isinstance(record, DrainChange):
            self.drains.append(
                (
                    record.provider,
                    record.endpoint,
                    bool(record.drained),
                    record.reason,
                    record.actor,
                    record.ts,
                )
            )
        else:
            raise TypeError(f"not a store record: {type(record).__name__}")

    def write(self, conn: sqlite3.Connection) -> None:
        """Execute every statement of the batch; the caller holds the transaction."""
        if self.requests:
            conn.executemany(INSERT_REQUEST, self.requests)
            self.rollups.write(conn)
        if self.bodies:
            conn.executemany(INSERT_BODY, self.bodies)
        if self.health:
            conn.executemany(INSERT_HEALTH, self.health)
            conn.executemany(UPSERT_HEALTH_LATEST, self.health)
        if self.gpu:
            conn.executemany(INSERT_GPU, self.gpu)
            conn.executemany(UPSERT_GPU_LATEST, self.gpu)
        if self.audit:
            conn.executemany(INSERT_AUDIT, self.audit)
        if self.budget_changes:
            conn.executemany(INSERT_BUDGET_CHANGE, self.budget_changes)
            conn.executemany(UPSERT_BUDGET_OVERRIDE, self.budget_overrides)
        if self.drains:
            conn.executemany(UPSERT_DRAIN, self.drains)

    def _add_request(self, rec: RequestRecord, body: dict[str, Any] | None) -> None:
        level = rec.level
        # Numbers are coerced here so that a wrong type fails now, not halfway into a rollup.
        ts = float(rec.ts)
        prompt_tokens = int(rec.prompt_tokens)
        completion_tokens = int(rec.completion_tokens)
        cost_usd = float(rec.cost_usd)
        latency_ms = float(rec.latency_ms)
        cached_tokens = int(rec.cached_tokens)
        cache_write_tokens = int(rec.cache_write_tokens)
        cache_saved_usd = float(rec.cache_saved_usd)
        row = (
            rec.id,
            ts,
            rec.container,
            rec.key_id,
            rec.kind,
            rec.requested_model,
            rec.model,
            rec.provider,
            rec.endpoint,
            rec.intent,
            rec.strategy,
            bool(rec.stream),
            rec.status,
            level,
            latency_ms,
            rec.ttft_ms,
            prompt_tokens,
            completion_tokens,
            cached_tokens,
            cache_write_tokens,
            int(rec.reasoning_tokens),
            cost_usd,
            cache_saved_usd,
            rec.reason,
            None if rec.decision is None else dumps(rec.decision),
            rec.error,
            rec.trace_id,
            rec.session,
            rec.replay_of,
            bool(rec.client_closed),
        )
        body_row = None
        if body is not None and self.keep_bodies:
            body_row = (rec.id, ts, dumps(redact_body(body)))
        # Everything that can fail has run: only now does the record join the batch.
        self.rollups.add(
            ts=ts,
            container=rec.container,
            provider=rec.provider,
            model=rec.model,
            is_error=level == "error",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            cached_tokens=cached_tokens,
            cache_write_tokens=cache_write_tokens,
            cache_saved_usd=cache_saved_usd,
        )
        self.requests.append(row)
        if body_row is not None:
            self.bodies.append(body_row)

    def _add_budget_change(self, change: BudgetChange) -> None:
        override: dict[str, Any] = {
            "container": change.container,
            "ts": change.ts,
            "actor": change.actor,
        }
        for period in BUDGET_PERIODS:
            present = period in change.after
            value = change.after.get(period)
            override[period] = None if value is None else float(value)
            override[f"set_{period}"] = present
        row = (change.ts, change.container, dumps(change.before), dumps(change.after), change.actor)
        self.budget_overrides.append(override)
        self.budget_changes.append(row)
