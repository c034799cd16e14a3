"""The console's store queries against real SQLite files written by the real StoreWriter:
burn over the last hour from the minute rollups, distinct sessions per container, and the
plans that keep both off a scan of the request table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omen_store import RequestRecord, StoreReader, StoreWriter
from omen_tui.model.poller import SessionCounter, burn_rates

NOW = 1_767_225_600.0 + 12.5 * 3600  # 2026-01-01T12:30:00Z


def request(n: int, **overrides: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "id": f"req-{n}",
        "ts": NOW,
        "container": "app",
        "key_id": "key-app",
        "kind": "chat",
        "requested_model": "auto",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "endpoint": "api.openai.com",
        "intent": "general",
        "strategy": "balanced",
        "stream": False,
        "status": 200,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
    }
    fields.update(overrides)
    return RequestRecord(**fields)


def write(path: Path, records: list[RequestRecord]) -> None:
    writer = StoreWriter(path)
    writer.start()
    for record in records:
        writer.record_request(record)
    assert writer.flush()
    writer.close()


def test_spend_since_sums_the_minute_rollups_per_container(tmp_path: Path) -> None:
    db = tmp_path / "omen.db"
    write(
        db,
        [
            request(1, ts=NOW - 2 * 3600, cost_usd=5.0),  # the morning: not the last hour
            request(2, ts=NOW - 3000, cost_usd=0.25),
            request(3, ts=NOW - 30, cost_usd=0.5, provider="anthropic"),
            request(4, ts=NOW - 10, container="web", cost_usd=0.00008),
        ],
    )
    with StoreReader(db) as reader:
        since = reader.spend_by_container_since(NOW - 3600)
        plan = " ".join(
            str(row[-1])
            for row in reader._all(
                "EXPLAIN QUERY PLAN SELECT container, sum(cost_usd) FROM spend_minutely "
                "WHERE minute >= ? GROUP BY container",
                [NOW - 3600],
            )
        )
    assert set(since) == {"app", "web"}
    assert since["app"].cost_usd == pytest.approx(0.75) and since["app"].requests == 2
    assert since["web"].cost_usd == pytest.approx(0.00008)
    assert "requests" not in plan  # the rollup only


def test_burn_is_the_last_hour_not_the_days_average(tmp_path: Path) -> None:
    db = tmp_path / "omen.db"
    # $5 at 08:00, then $0.60 in the last hour: the day's average would say $0.45/h.
    write(
        db,
        [
            request(0, ts=NOW - 4.5 * 3600, cost_usd=5.0),
            *(request(n, ts=NOW - 60 * n, cost_usd=0.01) for n in range(1, 61)),
        ],
    )
    with StoreReader(db) as reader:
        burn = burn_rates(reader, NOW)
    assert burn["app"] == pytest.approx(0.60, rel=0.02)


def test_sessions_today_are_distinct_per_container_and_read_once(tmp_path: Path) -> None:
    db = tmp_path / "omen.db"
    day_start = NOW - 12.5 * 3600
    write(
        db,
        [
            request(1, ts=day_start - 60, session="yesterday"),
            request(2, ts=NOW - 600, session="s1"),
            request(3, ts=NOW - 500, session="s1"),
            request(4, ts=NOW - 400, session="s2"),
            request(5, ts=NOW - 300, session=None),
            request(6, ts=NOW - 200, container="web", session="s1"),
        ],
    )
    counter = SessionCounter()
    with StoreReader(db) as reader:
        assert counter.read(reader, day_start) == {"app": 2, "web": 1}
        assert reader.container_sessions(day_start) == {("app", "s1"), ("app", "s2"), ("web", "s1")}
    write(db, [request(7, ts=NOW - 100, session="s3"), request(8, ts=NOW - 50, session="s1")])
    with StoreReader(db) as reader:
        rowid = reader.max_rowid()
        assert reader.container_sessions(day_start, after_rowid=rowid - 2) == {
            ("app", "s3"),
            ("app", "s1"),
        }
        assert counter.read(reader, day_start) == {"app": 3, "web": 1}
        # A new day starts the count over.
        assert counter.read(reader, day_start + 86400) == {}


def test_the_session_reads_walk_an_index_or_the_rowid_range_never_the_table(
    tmp_path: Path,
) -> None:
    db = tmp_path / "omen.db"
    write(db, [request(n, ts=NOW - n, session=f"s{n}", container=f"c{n % 5}") for n in range(50)])
    with StoreReader(db) as reader:
        statements: list[str] = []
        reader._conn.set_trace_callback(statements.append)
        reader.container_sessions(NOW - 3600, until_rowid=50)
        reader.container_sessions(NOW - 3600, after_rowid=40, until_rowid=50)
        reader._conn.set_trace_callback(None)
        plans = [
            " ".join(str(row[-1]) for row in reader._all(f"EXPLAIN QUERY PLAN {sql}", []))
            for sql in statements
            if "DISTINCT" in sql
        ]
    assert len(plans) == 2
    # The partial index of session rows covers the count: no table row is read.
    assert "SEARCH requests USING COVERING INDEX requests_session_ts (ts>?)" in plans[0]
    assert "SEARCH requests USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plans[1]
    assert not any("SCAN requests" in plan for plan in plans)
