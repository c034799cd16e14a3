"""StoreReader: read-only, bounded queries for `omen logs`, `omen tui` and daemon startup.

Every query is driven by an index and capped with LIMIT (or reads a rollup), so its cost
does not grow with the request table. The connection is opened read-only; one reader may
be shared by worker threads (calls are serialised by a lock).
"""

from __future__ import annotations

import heapq
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import psycopg

from omen_store import pg_schema
from omen_store.dbapi import Connection
from omen_store.errors import StoreError, StoreMissingError, in_words
from omen_store.pg import PgConnection, display, is_postgres
from omen_store.records import LEVELS, Level
from omen_store.rollups import hour_name
from omen_store.rows import (
    ApiKeyRow,
    AuditRow,
    BudgetChangeRow,
    BudgetOverrideRow,
    ContainerSpend,
    DrainRow,
    GpuRow,
    HealthRow,
    MinuteTraffic,
    OutcomeRow,
    RequestRow,
    SpendDailyRow,
    SpendTotals,
)
from omen_store.schema import BUSY_TIMEOUT_MS, SCHEMA_VERSION

# In RequestRecord's field order, then the rowid.
_REQUEST_COLUMNS = (
    "id, ts, container, key_id, kind, requested_model, model, provider, endpoint, intent, "
    "strategy, stream, status, latency_ms, ttft_ms, prompt_tokens, completion_tokens, "
    "cached_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cache_saved_usd, reason, "
    "decision, error, trace_id, session, replay_of, client_closed, seq, instance"
)
# The rollups' counters, summed; SpendTotals' field order.
_COUNTERS = (
    "requests, errors, prompt_tokens, completion_tokens, cost_usd, latency_ms_sum, "
    "cached_tokens, cache_write_tokens, cache_saved_usd"
)
_TOTALS = ", ".join(f"sum({name})" for name in _COUNTERS.split(", "))
_HEALTH_COLUMNS = "ts, provider, endpoint, healthy, latency_ms, error, in_flight, instance"
_GPU_COLUMNS = (
    "ts, provider, endpoint, loaded_models, vram_used_bytes, vram_total_bytes, "
    "gpu_util_percent, in_flight, instance"
)

Params = Sequence[Any]
# Names sort by their bytes on both databases (SQLite's BINARY; store.pg spells it "C"):
# a PostgreSQL server's language-aware default collation would order them otherwise.
_NAMES_ORDER = "provider COLLATE BINARY, endpoint COLLATE BINARY, instance COLLATE BINARY"


class StoreReader:
    """Read-only access to the store written by `omen serve`: a SQLite file, or a fleet's
    PostgreSQL database (a postgresql:// URL)."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.Lock()
        self.postgres = is_postgres(path)
        if self.postgres:
            self.path: Path | str = str(path)
            self._conn: Connection = self._open_postgres(str(path))
            return
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreMissingError(str(path))
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._conn = conn
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the store at {path}: {exc}") from exc
        if version == 0:
            self._conn.close()
            raise StoreMissingError(str(path))
        if version < SCHEMA_VERSION:
            self._conn.close()
            raise StoreError(
                f"the store at {path} has schema version {version}, this omen reads "
                f"{SCHEMA_VERSION}: start `omen serve` once to migrate it"
            )

    @staticmethod
    def _open_postgres(url: str) -> Connection:
        where = display(url)
        try:
            conn = PgConnection(url, read_only=True, name="omen reader")
        except Exception as exc:
            raise StoreError(f"cannot read the store at {where}: {in_words(exc)}") from None
        try:
            version = pg_schema.schema_version(conn)
        except Exception as exc:
            conn.close()
            raise StoreError(f"cannot read the store at {where}: {in_words(exc)}") from None
        if version == 0:
            conn.close()
            raise StoreMissingError(where)
        if version < SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the store at {where} has schema version {version}, this omen reads "
                f"{SCHEMA_VERSION}: start `omen serve` once to migrate it"
            )
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------

    def recent_requests(
        self,
        *,
        container: str | None = None,
        provider: str | None = None,
        level: Level | None = None,
        since_ts: float | None = None,
        after_rowid: int | None = None,
        limit: int = 100,
        instance: str | None = None,
    ) -> list[RequestRow]:
        """Requests matching every given filter; `level` is a minimum ("warn": warn + error).

        Without `after_rowid`: the newest `limit` rows, newest first (by start time).
        With it: rows inserted after that rowid, oldest first — what `logs --follow` polls
        with the largest rowid it has seen (`max_rowid()` to start from now).
        """
        filters, params = _matching(
            container=container, provider=provider, instance=instance, since_ts=since_ts
        )
        levels = _levels_at_least(level)

        if after_rowid is not None:
            # Walk the rowid range only: its size is what arrived since the last poll.
            if levels is not None:
                filters.append(f"level IN ({', '.join('?' * len(levels))})")
                params.extend(levels)
            filters.append("seq > ?")
            params.append(after_rowid)
            sql = (
                f"SELECT {_REQUEST_COLUMNS} FROM requests NOT INDEXED "
                f"WHERE {' AND '.join(filters)} ORDER BY seq LIMIT ?"
            )
            return self._request_rows(sql, [*params, limit])

        if levels is None:
            return self._request_rows(_newest_first(filters), [*params, limit])
        # One index range per level (the partial indexes), merged newest first.
        per_level = [
            self._request_rows(
                _newest_first([*filters, "level = ?", "level <> 'info'"]),
                [*params, one_level, limit],
            )
            for one_level in levels
        ]
        merged = heapq.merge(*per_level, key=lambda row: (row.ts, row.rowid), reverse=True)
        return [row for row, _ in zip(merged, range(limit), strict=False)]

    def stream_requests(
        self, columns: str, *, since_ts: float | None, container: str | None, chunk: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """`columns` of every request since `since_ts` (of one container, or all), `chunk`
        rows at a time, from one consistent snapshot (the ts or container+ts index; for
        `omen whatif`, which reads up to millions of rows without holding them all)."""
        filters, params = _matching(container=container, since_ts=since_ts)
        where = f" WHERE {' AND '.join(filters)}" if filters else ""
        sql = f"SELECT {columns} FROM requests{where}"
        with self._lock:
            try:
                if isinstance(self._conn, PgConnection):
                    yield from self._conn.stream(sql, params, chunk)
                    return
                cursor = self._conn.execute(sql, params)  # one statement: one read snapshot
                while rows := cursor.fetchmany(chunk):
                    yield rows
            except (sqlite3.DatabaseError, psycopg.Error) as exc:
                raise StoreError(f"store query failed: {in_words(exc)}") from exc

    def get_request(self, request_id: str) -> RequestRow | None:
        rows = self._request_rows(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", [request_id]
        )
        return rows[0] if rows else None

    def get_request_body(self, request_id: str) -> dict[str, Any] | None:
        """The stored (redacted) body of a request, or None if not kept or pruned."""
        row = self._one("SELECT body FROM request_bodies WHERE request_id = ?", [request_id])
        if row is None:
            return None
        body: dict[str, Any] = orjson.loads(row[0])
        return body

    def replays_of(self, request_id: str, limit: int = 100) -> list[RequestRow]:
        """Requests that replayed `request_id`, oldest first."""
        return self._request_rows(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE replay_of = ? ORDER BY ts LIMIT ?",
            [request_id, limit],
        )

    def max_rowid(self) -> int:
        row = self._one("SELECT max(seq) FROM requests", [])
        return int(row[0]) if row and row[0] is not None else 0

    # -- spend (rollups only) ------------------------------------------------------------

    def spend_by_container(
        self, since_day: str, until_day: str | None = None
    ) -> list[ContainerSpend]:
        """Totals per container over UTC days since_day..until_day (inclusive)."""
        sql = f"SELECT container, {_TOTALS} FROM spend_daily WHERE day >= ?"
        params: list[Any] = [since_day]
        if until_day is not None:
            sql += " AND day <= ?"
            params.append(until_day)
        # "+container": group after the day-range search, not by walking every day ever.
        sql += " GROUP BY +container ORDER BY container COLLATE BINARY"
        return [ContainerSpend(row[0], _totals(row[1:])) for row in self._all(sql, params)]

    def spend_daily_rows(
        self, *, since_day: str, container: str | None = None, until_day: str | None = None
    ) -> list[SpendDailyRow]:
        sql = f"SELECT day, container, provider, model, {_COUNTERS} FROM spend_daily WHERE day >= ?"
        params: list[Any] = [since_day]
        if container is not None:
            sql += " AND container = ?"
            params.append(container)
        if until_day is not None:
            sql += " AND day <= ?"
            params.append(until_day)
        sql += (
            " ORDER BY day, container COLLATE BINARY, provider COLLATE BINARY, model COLLATE BINARY"
        )
        return [
            SpendDailyRow(row[0], row[1], row[2], row[3], _totals(row[4:]))
            for row in self._all(sql, params)
        ]

    def spend_window(self, container: str | None, since_ts: float) -> SpendTotals:
        """Exact totals of requests started at or after `since_ts` (all containers if None).

        Whole hours come from spend_hourly; the partial first hour from the requests
        index, so the cost is bounded by one hour of that container's requests.
        """
        first_full_hour = math.ceil(since_ts / 3600) * 3600
        hourly_sql = f"SELECT {_TOTALS} FROM spend_hourly WHERE hour >= ?"
        edge_sql = (
            "SELECT count(*), sum(CASE WHEN level = 'error' THEN 1 ELSE 0 END), "
            "sum(prompt_tokens), "
            "sum(completion_tokens), sum(cost_usd), sum(latency_ms), sum(cached_tokens), "
            "sum(cache_write_tokens), sum(cache_saved_usd) FROM requests "
            "WHERE ts >= ? AND ts < ?"
        )
        hourly_params: list[Any] = [hour_name(first_full_hour)]
        edge_params: list[Any] = [since_ts, first_full_hour]
        if container is not None:
            hourly_sql += " AND container = ?"
            edge_sql += " AND container = ?"
            hourly_params.append(container)
            edge_params.append(container)
        total = _totals(self._one(hourly_sql, hourly_params) or ())
        if first_full_hour > since_ts:
            edge = _totals(self._one(edge_sql, edge_params) or ())
            total = _add(total, edge)
        return total

    def admitted_since(
        self, container: str, since_ts: float, *, times_limit: int = 0
    ) -> tuple[int, list[float]]:
        """Requests a container was admitted for since `since_ts` (status < 400: refusals and
        upstream failures gave their reservation back), and up to `times_limit` of their start
        times, newest first. Index-bounded by (container, ts); used when limits restart."""
        row = self._one(
            "SELECT count(*) FROM requests WHERE container = ? AND ts >= ? AND status < 400",
            [container, since_ts],
        )
        times: list[float] = []
        if times_limit:
            times = [
                float(r[0])
                for r in self._all(
                    "SELECT ts FROM requests WHERE container = ? AND ts >= ? AND status < 400 "
                    "ORDER BY ts DESC LIMIT ?",
                    [container, since_ts, times_limit],
                )
            ]
        return (int(row[0]) if row else 0), times

    def requests_per_minute(
        self, since_ts: float, container: str | None = None
    ) -> list[MinuteTraffic]:
        """Requests, errors and cost per minute since `since_ts`, oldest first.

        Minutes without traffic are absent; retention is the samples' keep time.
        """
        sql = (
            "SELECT minute, sum(requests), sum(errors), sum(cost_usd) FROM spend_minutely "
            "WHERE minute >= ?"
        )
        params: list[Any] = [int(since_ts // 60) * 60]
        if container is not None:
            sql += " AND container = ?"
            params.append(container)
        sql += " GROUP BY minute ORDER BY minute"
        return [
            MinuteTraffic(int(row[0]), int(row[1]), int(row[2]), float(row[3]))
            for row in self._all(sql, params)
        ]

    def spend_by_container_since(self, since_ts: float) -> dict[str, SpendTotals]:
        """Totals per container since the minute `since_ts` falls in (spend_minutely), for
        burn rates: a range of the rollup's first key, never the request table."""
        sql = (
            f"SELECT container, {_TOTALS} FROM spend_minutely WHERE minute >= ? "
            "GROUP BY container ORDER BY container COLLATE BINARY"
        )
        rows = self._all(sql, [int(since_ts // 60) * 60])
        return {row[0]: _totals(row[1:]) for row in rows}

    def container_sessions(
        self, since_ts: float, *, after_rowid: int = 0, until_rowid: int | None = None
    ) -> set[tuple[str, str]]:
        """Distinct (container, session) of requests started at or after `since_ts`.

        Without `after_rowid`: the `ts` index range from `since_ts`. With it: only the rowid
        range after it (rows inserted since a previous read), so a poller that keeps what it
        has seen reads each row once. `until_rowid` caps the range (take `max_rowid()` first).
        """
        filters = ["ts >= ?", "session IS NOT NULL"]
        params: list[Any] = [since_ts]
        if until_rowid is not None:
            filters.append("seq <= ?")
            params.append(until_rowid)
        # The ts range of the partial index of session rows (it covers the query): left to
        # itself, SQLite scans the (container, ts) index end to end for the DISTINCT's order.
        source = "requests INDEXED BY requests_session_ts"
        if after_rowid:
            source = "requests NOT INDEXED"  # walk the rowid range, not every row since ts
            filters.append("seq > ?")
            params.append(after_rowid)
        sql = f"SELECT DISTINCT container, session FROM {source} WHERE {' AND '.join(filters)}"
        return {(str(row[0]), str(row[1])) for row in self._all(sql, params)}

    def traffic_by_provider(self, since_ts: float) -> dict[str, SpendTotals]:
        """Totals per provider since `since_ts` (minute resolution), for error rates."""
        sql = f"SELECT provider, {_TOTALS} FROM spend_minutely WHERE minute >= ? GROUP BY provider"
        rows = self._all(sql, [int(since_ts // 60) * 60])
        return {row[0]: _totals(row[1:]) for row in rows}

    # -- health and GPU ------------------------------------------------------------------

    def latest_health(self) -> list[HealthRow]:
        """The newest sample of every endpoint (kept by the writer in health_latest)."""
        rows = self._all(
            f"SELECT {_HEALTH_COLUMNS} FROM health_latest ORDER BY {_NAMES_ORDER}",
            [],
        )
        return [_health_row(row) for row in rows]

    def health_history(
        self, provider: str, endpoint: str, since_ts: float, limit: int = 1000
    ) -> list[HealthRow]:
        """The newest `limit` samples since `since_ts`, oldest first (ready to plot)."""
        rows = self._all(
            f"SELECT {_HEALTH_COLUMNS} FROM health_samples "
            "WHERE provider = ? AND endpoint = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
            [provider, endpoint, since_ts, limit],
        )
        return [_health_row(row) for row in reversed(rows)]

    def latest_gpu(self) -> list[GpuRow]:
        rows = self._all(f"SELECT {_GPU_COLUMNS} FROM gpu_latest ORDER BY {_NAMES_ORDER}", [])
        return [_gpu_row(row) for row in rows]

    def gpu_history(
        self, provider: str, endpoint: str, since_ts: float, limit: int = 1000
    ) -> list[GpuRow]:
        """The newest `limit` GPU samples since `since_ts`, oldest first."""
        rows = self._all(
            f"SELECT {_GPU_COLUMNS} FROM gpu_samples "
            "WHERE provider = ? AND endpoint = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
            [provider, endpoint, since_ts, limit],
        )
        return [_gpu_row(row) for row in reversed(rows)]

    # -- operator state and audit --------------------------------------------------------

    def drains(self) -> dict[tuple[str, str], DrainRow]:
        """Persisted drain state of every endpoint ever drained (drained False once undone)."""
        rows = self._all(
            "SELECT provider, endpoint, drained, reason, actor, ts, instance FROM drains", []
        )
        return {
            (row[0], row[1]): DrainRow(row[0], row[1], bool(row[2]), row[3], row[4], row[5], row[6])
            for row in rows
        }

    def budget_overrides(self) -> dict[str, BudgetOverrideRow]:
        rows = self._all(
            "SELECT container, daily, weekly, monthly, ts, actor, instance FROM budget_overrides",
            [],
        )
        return {row[0]: BudgetOverrideRow(*row) for row in rows}

    def budget_changes(
        self, container: str | None = None, limit: int = 100
    ) -> list[BudgetChangeRow]:
        """Budget change history, newest first."""
        sql = "SELECT id, ts, container, before, after, actor, instance FROM budget_changes"
        params: list[Any] = []
        if container is not None:
            sql += " WHERE container = ?"
            params.append(container)
        sql += " ORDER BY ts DESC LIMIT ?"
        rows = self._all(sql, [*params, limit])
        return [
            BudgetChangeRow(
                row[0], row[1], row[2], orjson.loads(row[3]), orjson.loads(row[4]), row[5], row[6]
            )
            for row in rows
        ]

    def audit_rows(self, *, since_ts: float | None = None, limit: int = 100) -> list[AuditRow]:
        """Audit rows, newest first."""
        sql = (
            "SELECT id, ts, actor, action, target, before, after, detail, instance, role FROM audit"
        )
        params: list[Any] = []
        if since_ts is not None:
            sql += " WHERE ts >= ?"
            params.append(since_ts)
        sql += " ORDER BY ts DESC LIMIT ?"
        return [
            AuditRow(
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                _json(row[5]),
                _json(row[6]),
                row[7],
                row[8],
                row[9],
            )
            for row in self._all(sql, [*params, limit])
        ]

    def api_keys(self, container: str | None = None) -> list[ApiKeyRow]:
        """Keys made through the admin API, revoked ones included, oldest first."""
        sql = (
            "SELECT id, digest, container, scope, name, created_ts, created_by, revoked_ts, "
            "revoked_by, instance FROM api_keys"
        )
        params: list[Any] = []
        if container is not None:
            sql += " WHERE container = ?"
            params.append(container)
        return [ApiKeyRow(*row) for row in self._all(sql + " ORDER BY created_ts, id", params)]

    # -- plumbing ------------------------------------------------------------------------

    # -- outcomes (routing.adaptive) -----------------------------------------------------

    def outcomes(self, container: str | None = None) -> list[OutcomeRow]:
        """What happened after routing decided, per container, intent and model."""
        where, params = ("WHERE container = ?", (container,)) if container else ("", ())
        return [
            OutcomeRow(*row)
            for row in self._all(
                "SELECT container, intent, provider, model, requests, errors, escalations, "
                "latency_ms_sum, feedback_n, feedback_sum, updated FROM outcomes "
                f"{where} ORDER BY container COLLATE BINARY, intent COLLATE BINARY, requests DESC",
                params,
            )
        ]

    def feedback_for(self, request_id: str) -> float | None:
        row = self._one("SELECT score FROM feedback WHERE request_id = ?", (request_id,))
        return None if row is None else float(row[0])

    def _all(self, sql: str, params: Params) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except (sqlite3.DatabaseError, psycopg.Error) as exc:
                raise StoreError(f"store query failed: {in_words(exc)}") from exc

    def _one(self, sql: str, params: Params) -> tuple[Any, ...] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _request_rows(self, sql: str, params: Params) -> list[RequestRow]:
        return [_request_row(row) for row in self._all(sql, params)]


def _matching(
    *,
    container: str | None = None,
    provider: str | None = None,
    instance: str | None = None,
    since_ts: float | None = None,
) -> tuple[list[str], list[Any]]:
    """WHERE terms (and their parameters) for the request filters given."""
    filters: list[str] = []
    params: list[Any] = []
    for column, value in (("container", container), ("provider", provider), ("instance", instance)):
        if value is not None:
            filters.append(f"{column} = ?")
            params.append(value)
    if since_ts is not None:
        filters.append("ts >= ?")
        params.append(since_ts)
    return filters, params


def _newest_first(filters: list[str]) -> str:
    where = f"WHERE {' AND '.join(filters)} " if filters else ""
    return f"SELECT {_REQUEST_COLUMNS} FROM requests {where}ORDER BY ts DESC, seq DESC LIMIT ?"


def _levels_at_least(level: Level | None) -> list[Level] | None:
    """The levels a minimum selects; None when it selects everything."""
    if level is None or level == "info":
        return None
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    return list(LEVELS[LEVELS.index(level) :])


def _request_row(row: tuple[Any, ...]) -> RequestRow:
    return RequestRow(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        bool(row[11]),
        row[12],
        row[13],
        row[14],
        row[15],
        row[16],
        row[17],
        row[18],
        row[19],
        row[20],
        row[21],
        row[22],
        _json(row[23]),
        row[24],
        row[25],
        row[26],
        row[27],
        bool(row[28]),
        rowid=row[29],
        instance=row[30],
    )


def _health_row(row: tuple[Any, ...]) -> HealthRow:
    return HealthRow(row[0], row[1], row[2], bool(row[3]), row[4], row[5], row[6], row[7])


def _gpu_row(row: tuple[Any, ...]) -> GpuRow:
    return GpuRow(
        row[0], row[1], row[2], orjson.loads(row[3]), row[4], row[5], row[6], row[7], row[8]
    )


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _totals(row: Sequence[Any]) -> SpendTotals:
    if not row or row[0] is None:
        return SpendTotals()
    return SpendTotals(
        requests=int(row[0]),
        errors=int(row[1] or 0),
        prompt_tokens=int(row[2] or 0),
        completion_tokens=int(row[3] or 0),
        cost_usd=float(row[4] or 0.0),
        latency_ms_sum=float(row[5] or 0.0),
        cached_tokens=int(row[6] or 0),
        cache_write_tokens=int(row[7] or 0),
        cache_saved_usd=float(row[8] or 0.0),
    )


def _add(a: SpendTotals, b: SpendTotals) -> SpendTotals:
    return SpendTotals(
        requests=a.requests + b.requests,
        errors=a.errors + b.errors,
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
        latency_ms_sum=a.latency_ms_sum + b.latency_ms_sum,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
        cache_saved_usd=a.cache_saved_usd + b.cache_saved_usd,
    )
