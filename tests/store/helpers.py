"""Shared by the store's contract tests: records, raw reads of either backend, waiting."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import psycopg

from omen_store import RequestRecord, is_postgres
from omen_store.pg import to_pg

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0
HOUR = 3_600.0


def request(n: int, **overrides: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "id": f"req-{n}",
        "ts": NOW + n,
        "container": "app",
        "key_id": "key-app",
        "kind": "chat",
        "requested_model": "auto",
        "model": "llama3.1:8b",
        "provider": "ollama",
        "endpoint": "http://gpu-1:11434",
        "intent": "general",
        "strategy": "balanced",
        "stream": False,
        "status": 200,
        "latency_ms": 12.5,
        "ttft_ms": None,
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "cost_usd": 0.001,
        "reason": "local model loaded",
        "decision": {"candidates": [{"provider": "ollama", "score": 0.2}]},
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def query(target: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` (in the store's SQLite spelling) read straight from either database,
    numbers as Python ints and floats on both."""
    if is_postgres(target):
        with psycopg.connect(target, autocommit=True) as pg:
            rows = pg.execute(to_pg(sql), list(params)).fetchall()
    else:
        lite = sqlite3.connect(target)
        try:
            rows = lite.execute(sql, params).fetchall()
        finally:
            lite.close()
    return [tuple(_plain(value) for value in row) for row in rows]


def _plain(value: Any) -> Any:
    # PostgreSQL's sum() over a bigint is numeric (a Decimal); SQLite's is an integer.
    if type(value).__name__ == "Decimal":
        return int(value) if value == int(value) else float(value)
    return value


def count(target: str, table: str) -> int:
    return int(query(target, f"SELECT count(*) FROM {table}")[0][0])


def wait_for(condition: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
