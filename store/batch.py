"""One writer batch: records encoded as SQL rows, then written in the caller's transaction.

Encoding happens record by record, so a record that cannot be encoded (say, a decision that
is not JSON-serialisable) is refused on its own and leaves nothing half-added to the batch.
Rows go to SQLite a chunk per call (store.bulk); the spend rollups follow the request rows
by trigger (store.rollups). A batch splits into one batch per record (to keep every record
the database takes when it refuses one) and serialises to one JSON line (`to_line` and
`from_line`), the spill file's unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson

from omen_store.bulk import insert_rows
from omen_store.dbapi import Connection
from omen_store.records import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    FeedbackRecord,
    GpuSample,
    HealthSample,
    KeyCreated,
    KeyRevoked,
    RequestRecord,
)
from omen_store.redact import redact_body

Row = tuple[Any, ...]

REQUEST_COLUMNS = (
    "id, ts, container, key_id, kind, requested_model, model, provider, endpoint, intent, "
    "strategy, stream, status, level, latency_ms, ttft_ms, prompt_tokens, completion_tokens, "
    "cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cache_saved_usd, reason, "
    "decision, error, trace_id, session, replay_of, client_closed, instance"
)
INSERT_REQUESTS = f"INSERT INTO requests ({REQUEST_COLUMNS})"
INSERT_BODIES = "INSERT INTO request_bodies (request_id, ts, body)"
UPSERT_BODIES_TAIL = "ON CONFLICT (request_id) DO UPDATE SET ts = excluded.ts, body = excluded.body"

_HEALTH_COLUMNS = "ts, provider, endpoint, healthy, latency_ms, error, in_flight, instance"
INSERT_HEALTH = f"INSERT INTO health_samples ({_HEALTH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT_HEALTH_LATEST = f"""
    INSERT INTO health_latest ({_HEALTH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (instance, provider, endpoint) DO UPDATE SET
        ts = excluded.ts, healthy = excluded.healthy, latency_ms = excluded.latency_ms,
        error = excluded.error, in_flight = excluded.in_flight
    WHERE excluded.ts >= health_latest.ts
"""

_GPU_COLUMNS = (
    "ts, provider, endpoint, loaded_models, vram_used_bytes, vram_total_bytes, "
    "gpu_util_percent, in_flight, instance"
)
INSERT_GPU = f"INSERT INTO gpu_samples ({_GPU_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPSERT_GPU_LATEST = f"""
    INSERT INTO gpu_latest ({_GPU_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (instance, provider, endpoint) DO UPDATE SET
        ts = excluded.ts, loaded_models = excluded.loaded_models,
        vram_used_bytes = excluded.vram_used_bytes, vram_total_bytes = excluded.vram_total_bytes,
        gpu_util_percent = excluded.gpu_util_percent, in_flight = excluded.in_flight
    WHERE excluded.ts >= gpu_latest.ts
"""

INSERT_AUDIT = """
    INSERT INTO audit (ts, actor, action, target, before, after, detail, instance, role)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_BUDGET_CHANGE = """
    INSERT INTO budget_changes (ts, container, before, after, actor, instance)
    VALUES (?, ?, ?, ?, ?, ?)
"""
# A period named in the change is set (or cleared, with None); one not named is kept.
# Drains and overrides are a fleet's shared state (omen.shared_state): the row's ts only ever
# grows, so the change written last is the newest even when its instance's clock is behind.
UPSERT_BUDGET_OVERRIDE = """
    INSERT INTO budget_overrides (container, daily, weekly, monthly, ts, actor, instance)
    VALUES (:container, :daily, :weekly, :monthly, :ts, :actor, :instance)
    ON CONFLICT (container) DO UPDATE SET
        daily = CASE WHEN :set_daily = 1 THEN excluded.daily ELSE budget_overrides.daily END,
        weekly = CASE WHEN :set_weekly = 1 THEN excluded.weekly ELSE budget_overrides.weekly END,
        monthly = CASE WHEN :set_monthly = 1 THEN excluded.monthly
                       ELSE budget_overrides.monthly END,
        ts = CASE WHEN excluded.ts > budget_overrides.ts THEN excluded.ts
                  ELSE budget_overrides.ts + 0.001 END,
        actor = excluded.actor, instance = excluded.instance
"""
UPSERT_DRAIN = """
    INSERT INTO drains (provider, endpoint, drained, reason, actor, ts, instance)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (provider, endpoint) DO UPDATE SET
        drained = excluded.drained, reason = excluded.reason, actor = excluded.actor,
        ts = CASE WHEN excluded.ts > drains.ts THEN excluded.ts ELSE drains.ts + 0.001 END,
        instance = excluded.instance
"""

# A later verdict on the same request replaces the earlier one (the outcome triggers adjust).
UPSERT_FEEDBACK = """
    INSERT INTO feedback (request_id, ts, score, actor, container, intent, provider, model,
                          instance)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (request_id) DO UPDATE SET
        ts = excluded.ts, score = excluded.score, actor = excluded.actor,
        instance = excluded.instance
"""

INSERT_KEY = """
    INSERT INTO api_keys (id, digest, container, scope, name, created_ts, created_by, instance)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING
"""
# A revocation stands once made: a second one keeps the first's time and actor.
REVOKE_KEY = """
    UPDATE api_keys SET revoked_ts = ?, revoked_by = ?
    WHERE id = ? AND revoked_ts IS NULL
"""

BUDGET_PERIODS = ("daily", "weekly", "monthly")
_INT64 = range(-(2**63), 2**63)
_ROW_BYTES = 1024  # a request row as Python objects, roughly


def dumps(value: Any) -> str:
    """JSON text for a column; Decimal money keeps its digits as a string."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def _finite(value: Any, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):  # an inf would poison every rollup it is summed into
        raise ValueError(f"{name} is not a finite number: {number}")
    return number


def _number(value: Any) -> float | None:
    """An optional measurement: a NaN is no measurement (NULL, as SQLite stores it anyway)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _int64(value: Any, name: str) -> int:
    number = int(value)
    if number not in _INT64:
        raise OverflowError(f"{name} does not fit in 64 bits: {number}")
    return number


class Batch:
    """Encoded rows of one transaction, grouped by statement."""

    __slots__ = (
        "audit",
        "budgets",
        "drains",
        "feedback",
        "gpu",
        "health",
        "instance",
        "keep_bodies",
        "keys",
        "requests",
        "revocations",
    )

    def __init__(self, *, keep_bodies: bool, instance: str = "") -> None:
        self.keep_bodies = keep_bodies
        self.instance = instance  # stamped on every row added (rows read back keep theirs)
        self.requests: list[tuple[Row, Row | None]] = []  # (request row, its body row)
        self.health: list[Row] = []
        self.gpu: list[Row] = []
        self.audit: list[Row] = []
        self.budgets: list[tuple[Row, dict[str, Any]]] = []  # (change row, override)
        self.drains: list[Row] = []
        self.feedback: list[Row] = []
        self.keys: list[Row] = []
        self.revocations: list[Row] = []

    def __len__(self) -> int:
        """How many records the batch holds."""
        return (
            len(self.requests)
            + len(self.health)
            + len(self.gpu)
            + len(self.audit)
            + len(self.budgets)
            + len(self.drains)
            + len(self.feedback)
            + len(self.keys)
            + len(self.revocations)
        )

    def weight(self) -> int:
        """About how many bytes of memory the batch holds (its bodies, mostly)."""
        bodies = sum(len(body[2]) for _, body in self.requests if body is not None)
        return bodies + _ROW_BYTES * len(self)

    def add(self, record: object, body: dict[str, Any] | None = None) -> None:
        """Encode one record into the batch; raises (adding nothing) if it cannot be stored."""
        if isinstance(record, RequestRecord):
            self._add_request(record, body)
        elif isinstance(record, HealthSample):
            self.health.append(
                (
                    _finite(record.ts, "ts"),
                    record.provider,
                    record.endpoint,
                    bool(record.healthy),
                    _number(record.latency_ms),
                    record.error,
                    record.in_flight,
                    self.instance,
                )
            )
        elif isinstance(record, GpuSample):
            self.gpu.append(
                (
                    _finite(record.ts, "ts"),
                    record.provider,
                    record.endpoint,
                    dumps(record.loaded_models),
                    record.vram_used_bytes,
                    record.vram_total_bytes,
                    _number(record.gpu_util_percent),
                    record.in_flight,
                    self.instance,
                )
            )
        elif isinstance(record, AuditRecord):
            self.audit.append(
                (
                    _finite(record.ts, "ts"),
                    record.actor,
                    record.action,
                    record.target,
                    None if record.before is None else dumps(record.before),
                    None if record.after is None else dumps(record.after),
                    record.detail,
                    self.instance,
                    record.role,
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
                    _finite(record.ts, "ts"),
                    self.instance,
                )
            )
        elif isinstance(record, FeedbackRecord):
            score = _finite(record.score, "score")
            if not 0 <= score <= 1:
                raise ValueError(f"feedback score {score} is not within 0..1")
            self.feedback.append(
                (
                    record.request_id,
                    _finite(record.ts, "ts"),
                    score,
                    record.actor,
                    record.container,
                    record.intent,
                    record.provider,
                    record.model,
                    self.instance,
                )
            )
        elif isinstance(record, KeyCreated):
            if record.scope not in ("user", "admin") or len(record.digest) != 64:
                raise ValueError(f"not a storable key: scope {record.scope!r}")
            self.keys.append(
                (
                    record.key_id,
                    record.digest,
                    record.container,
                    record.scope,
                    record.name,
                    _finite(record.ts, "ts"),
                    record.actor,
                    self.instance,
                )
            )
        elif isinstance(record, KeyRevoked):
            self.revocations.append((_finite(record.ts, "ts"), record.actor, record.key_id))
        else:
            raise TypeError(f"not a store record: {type(record).__name__}")

    def write(self, conn: Connection) -> None:
        """Execute every statement of the batch; the caller holds the transaction."""
        if self.requests:
            # The rollups follow by trigger (store.rollups).
            insert_rows(conn, INSERT_REQUESTS, [row for row, _ in self.requests])
            bodies = [body for _, body in self.requests if body is not None]
            insert_rows(conn, INSERT_BODIES, bodies, UPSERT_BODIES_TAIL)
        if self.health:
            conn.executemany(INSERT_HEALTH, self.health)
            conn.executemany(UPSERT_HEALTH_LATEST, self.health)
        if self.gpu:
            conn.executemany(INSERT_GPU, self.gpu)
            conn.executemany(UPSERT_GPU_LATEST, self.gpu)
        if self.audit:
            conn.executemany(INSERT_AUDIT, self.audit)
        if self.budgets:
            conn.executemany(INSERT_BUDGET_CHANGE, [change for change, _ in self.budgets])
            conn.executemany(UPSERT_BUDGET_OVERRIDE, [override for _, override in self.budgets])
        if self.drains:
            conn.executemany(UPSERT_DRAIN, self.drains)
        if self.feedback:
            conn.executemany(UPSERT_FEEDBACK, self.feedback)
        if self.keys:
            conn.executemany(INSERT_KEY, self.keys)
        if self.revocations:
            conn.executemany(REVOKE_KEY, self.revocations)

    def split(self) -> Iterator[Batch]:
        """One batch per record: after a batch the database refused, keep what it takes."""
        for name in _TABLES:
            for entry in getattr(self, name):
                single = Batch(keep_bodies=self.keep_bodies)
                getattr(single, name).append(entry)
                yield single

    @classmethod
    def join(cls, batches: list[Batch]) -> Batch:
        """One batch holding every record of `batches`, in order."""
        joined = cls(keep_bodies=batches[0].keep_bodies if batches else True)
        for batch in batches:
            for name in _TABLES:
                getattr(joined, name).extend(getattr(batch, name))
        return joined

    def describe(self) -> str:
        """What a batch holds, for a log line: a request by its id."""
        if len(self.requests) == 1 and len(self) == 1:
            return f"RequestRecord {self.requests[0][0][0]}"
        kinds = [f"{len(getattr(self, name))} {name}" for name in _TABLES if getattr(self, name)]
        return ", ".join(kinds) or "nothing"

    # -- the spill file's lines ------------------------------------------------------------

    def to_line(self, batch_id: str) -> bytes:
        """The batch as one JSON line (bodies already redacted); raises if a value has no
        JSON form (an integer beyond 64 bits, a lone surrogate)."""
        data: dict[str, Any] = {"id": batch_id}
        for name in _TABLES:
            entries = getattr(self, name)
            if entries:
                data[name] = entries
        return orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_line(cls, line: bytes) -> tuple[str, Batch]:
        """(batch id, batch) of a line written by `to_line`."""
        data = orjson.loads(line)
        batch = cls(keep_bodies=True)
        batch.requests = [
            (tuple(row), None if body is None else tuple(body))
            for row, body in data.get("requests", ())
        ]
        batch.budgets = [(tuple(change), override) for change, override in data.get("budgets", ())]
        for name in ("health", "gpu", "audit", "drains", "feedback", "keys", "revocations"):
            setattr(batch, name, [tuple(row) for row in data.get(name, ())])
        return str(data["id"]), batch

    # -- encoding --------------------------------------------------------------------------

    def _add_request(self, rec: RequestRecord, body: dict[str, Any] | None) -> None:
        # Numbers are coerced here so that a wrong type fails now, not halfway into a rollup.
        ts = _finite(rec.ts, "ts")
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
            rec.level,
            _finite(rec.latency_ms, "latency_ms"),
            _number(rec.ttft_ms),
            _int64(rec.prompt_tokens, "prompt_tokens"),
            _int64(rec.completion_tokens, "completion_tokens"),
            _int64(rec.cached_tokens, "cached_tokens"),
            _int64(rec.cache_write_tokens, "cache_write_tokens"),
            _int64(rec.reasoning_tokens, "reasoning_tokens"),
            _finite(rec.cost_usd, "cost_usd"),
            _finite(rec.cache_saved_usd, "cache_saved_usd"),
            rec.reason,
            None if rec.decision is None else dumps(rec.decision),
            rec.error,
            rec.trace_id,
            rec.session,
            rec.replay_of,
            bool(rec.client_closed),
            self.instance,
        )
        body_row = None
        if body is not None and self.keep_bodies:
            body_row = (rec.id, ts, dumps(redact_body(body)))
        # Everything that can fail has run: only now does the record join the batch.
        self.requests.append((row, body_row))

    def _add_budget_change(self, change: BudgetChange) -> None:
        override: dict[str, Any] = {
            "container": change.container,
            "ts": change.ts,
            "actor": change.actor,
            "instance": self.instance,
        }
        for period in BUDGET_PERIODS:
            present = period in change.after
            value = change.after.get(period)
            override[period] = None if value is None else float(value)
            override[f"set_{period}"] = present
        row = (
            change.ts,
            change.container,
            dumps(change.before),
            dumps(change.after),
            change.actor,
            self.instance,
        )
        self.budgets.append((row, override))


_TABLES = (
    "requests",
    "health",
    "gpu",
    "audit",
    "budgets",
    "drains",
    "feedback",
    "keys",
    "revocations",
)
