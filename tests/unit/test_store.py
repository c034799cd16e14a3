"""The store against real SQLite files: what only SQLite has (migrations of a file, WAL,
locks held by another process, a full disk, the spill file, query plans).

The contract both backends keep (records read back, filters, rollups, outcomes, retention)
runs against SQLite and PostgreSQL alike in tests/store/.
"""

from __future__ import annotations

import copy
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omen_store import (
    REDACTED,
    SCHEMA_VERSION,
    AuditRecord,
    BudgetChange,
    DrainChange,
    GpuSample,
    HealthSample,
    Level,
    StoreError,
    StoreMissingError,
    StoreReader,
    StoreUnusableError,
    StoreWriter,
    check_store,
    day_name,
    hour_name,
    redact_body,
)
from omen_store.batch import Batch
from omen_store.schema import MIGRATIONS, connect_for_writing, migrate
from omen_store.spill import default_spill_path
from omen_store.writer import _write
from tests.store.helpers import DAY, NOW, request

WriterFactory = Callable[..., StoreWriter]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "omen.db"


@pytest.fixture
def make_writer(db_path: Path) -> Iterator[WriterFactory]:
    writers: list[StoreWriter] = []

    def make(**kwargs: Any) -> StoreWriter:
        writer = StoreWriter(db_path, **kwargs)
        writer.start()
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()


def rows_of(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# -- schema ------------------------------------------------------------------------------


def test_migrations_build_the_schema_from_empty_and_reopening_changes_nothing(
    db_path: Path,
) -> None:
    conn = connect_for_writing(db_path)
    assert isinstance(conn, sqlite3.Connection)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    schema_before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert {
        "requests",
        "request_bodies",
        "health_samples",
        "health_latest",
        "gpu_samples",
        "gpu_latest",
        "drains",
        "budget_overrides",
        "budget_changes",
        "audit",
        "spend_daily",
        "spend_hourly",
        "spend_minutely",
    } <= tables

    again = connect_for_writing(db_path)
    assert isinstance(again, sqlite3.Connection)
    assert migrate(again) == SCHEMA_VERSION
    assert again.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == (
        schema_before
    )
    again.close()


def test_a_store_from_a_newer_omen_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="newer"):
        connect_for_writing(db_path)


def _version_1_store(path: Path) -> None:
    """A store as omen wrote it at schema version 1: requests with cache reads, rollups."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    rows = [
        # id, ts, container, provider, model, prompt, cached, cost
        ("old-1", NOW - DAY + 10, "app", "anthropic", "claude", 1000, 800, 0.002),
        ("old-2", NOW - DAY + 20, "app", "anthropic", "claude", 500, 0, 0.003),
        ("old-3", NOW + 30, "app", "openai", "gpt-4o", 2000, 1024, 0.004),
        ("old-4", NOW + 95, "web", None, None, 0, 0, 0.0),
    ]
    for rid, ts, container, provider, model, prompt, cached, cost in rows:
        conn.execute(
            "INSERT INTO requests (id, ts, container, kind, requested_model, model, provider, "
            "stream, status, level, latency_ms, prompt_tokens, completion_tokens, "
            "cached_tokens, cost_usd) VALUES (?, ?, ?, 'chat', 'auto', ?, ?, 0, 200, 'info', "
            "10, ?, 5, ?, ?)",
            (rid, ts, container, model, provider, prompt, cached, cost),
        )
        counters = (1, 0, prompt, 5, cost, 10.0)
        upsert = (
            "ON CONFLICT DO UPDATE SET requests = requests + 1, "
            "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
            "completion_tokens = completion_tokens + 5, cost_usd = cost_usd + excluded.cost_usd, "
            "latency_ms_sum = latency_ms_sum + 10"
        )
        conn.execute(
            f"INSERT INTO spend_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {upsert}",
            (day_name(ts), container, provider or "", model or "", *counters),
        )
        conn.execute(
            f"INSERT INTO spend_hourly VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) {upsert}",
            (hour_name(ts), container, provider or "", *counters),
        )
        conn.execute(
            f"INSERT INTO spend_minutely VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) {upsert}",
            (int(ts // 60) * 60, container, provider or "", *counters),
        )
    conn.close()


def test_migrating_a_version_1_store_keeps_its_rows_and_backfills_cache_reads(
    db_path: Path, make_writer: WriterFactory
) -> None:
    _version_1_store(db_path)
    with pytest.raises(StoreError, match="start `omen serve` once"):
        StoreReader(db_path)

    writer = make_writer()  # opening it for writing migrates it
    writer.record_request(
        request(
            1,
            ts=NOW + 40,
            container="app",
            provider="openai",
            model="gpt-4o",
            prompt_tokens=1000,
            cached_tokens=500,
            cache_write_tokens=300,
            cache_saved_usd=0.001125,
            session="sess-1",
        )
    )
    assert writer.flush()

    assert rows_of(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert rows_of(
        db_path,
        "SELECT id, prompt_tokens, cached_tokens, cache_write_tokens, cache_saved_usd, session "
        "FROM requests ORDER BY id",
    ) == [
        ("old-1", 1000, 800, 0, 0.0, None),
        ("old-2", 500, 0, 0, 0.0, None),
        ("old-3", 2000, 1024, 0, 0.0, None),
        ("old-4", 0, 0, 0, 0.0, None),
        ("req-1", 1000, 500, 300, 0.001125, "sess-1"),
    ]
    # Every rollup equals the sums over the rows, old and new.
    for table, bucket in (
        ("spend_daily", "day"),
        ("spend_hourly", "hour"),
        ("spend_minutely", "minute"),
    ):
        assert rows_of(
            db_path,
            f"SELECT {bucket}, container, provider, requests, prompt_tokens, cached_tokens, "
            f"cache_write_tokens, cache_saved_usd FROM {table} ORDER BY 1, 2, 3",
        ) == _expected_rollup(db_path, bucket), table

    with StoreReader(db_path) as reader:
        old = reader.get_request("old-1")
        assert old is not None and old.cached_tokens == 800 and old.session is None
        spend = {c.container: c.totals for c in reader.spend_by_container(day_name(NOW - DAY))}
        assert spend["app"].requests == 4 and spend["app"].cached_tokens == 800 + 1024 + 500
        assert spend["web"].cache_hit_ratio is None  # no prompt tokens at all


def _expected_rollup(path: Path, bucket: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    conn.create_function("day_name", 1, day_name)
    conn.create_function("hour_name", 1, hour_name)
    key = {
        "day": "day_name(ts)",
        "hour": "hour_name(ts)",
        "minute": "CAST(ts / 60 AS INTEGER) * 60",
    }[bucket]
    try:
        return conn.execute(
            f"SELECT {key}, container, coalesce(provider, ''), count(*), sum(prompt_tokens), "
            "sum(cached_tokens), sum(cache_write_tokens), sum(cache_saved_usd) FROM requests "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        ).fetchall()
    finally:
        conn.close()


# -- the writer ----------------------------------------------------------------------------


def test_record_request_returns_while_the_database_is_locked(
    make_writer: WriterFactory, db_path: Path
) -> None:
    writer = make_writer(flush_interval=0.02)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # this thread holds the write lock
    writer.record_request(request(1))
    time.sleep(0.2)  # the writer is now waiting on the lock
    # Were record_request to wait on disk, it would wait on this very thread: a deadlock.
    for n in range(2, 1002):
        writer.record_request(request(n))
    assert writer.queue_depth() > 0
    blocker.execute("ROLLBACK")
    blocker.close()
    assert writer.flush()
    assert rows_of(db_path, "SELECT count(*) FROM requests") == [(1001,)]


def test_stats_show_the_queue_and_its_lag_while_the_writer_waits(
    make_writer: WriterFactory, db_path: Path
) -> None:
    writer = make_writer(flush_interval=0.02)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for n in range(100):
        writer.record_request(request(n))
    time.sleep(0.3)
    stats = writer.stats()
    assert stats.queue_depth == 100
    assert stats.lag_s >= 0.25
    assert stats.since_commit_s is None  # nothing committed yet
    assert writer.failure is None  # a lock is waited out, not a failure (for a while)
    blocker.execute("ROLLBACK")
    blocker.close()
    assert writer.flush()
    stats = writer.stats()
    assert (stats.queue_depth, stats.lag_s, stats.committed) == (0, 0.0, 100)
    assert stats.since_commit_s is not None and stats.since_commit_s < 5


# -- when the store cannot write -----------------------------------------------------------

BODY = {"messages": [{"role": "user", "content": "x" * 2000}], "api_key": "sk-secret-value"}


def fill_the_disk(writer: StoreWriter) -> None:
    """SQLite's own "database or disk is full": the file may not grow past its pages."""
    assert writer._conn is not None
    pages = writer._conn.execute("PRAGMA page_count").fetchone()[0]
    writer._conn.execute(f"PRAGMA max_page_count = {pages}")


def free_the_disk(writer: StoreWriter) -> None:
    assert writer._conn is not None
    writer._conn.execute("PRAGMA max_page_count = 1000000000")


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_full_disk_refuses_new_requests_and_writes_the_held_rows_once_it_frees(
    make_writer: WriterFactory, db_path: Path
) -> None:
    writer = make_writer(flush_interval=0.02, retry_interval=0.2)
    writer.record_request(request(0), BODY)
    assert writer.flush()
    fill_the_disk(writer)
    for n in range(1, 301):
        writer.record_request(request(n), BODY)

    assert not writer.flush()
    assert writer.refusing
    assert writer.failure is not None and "disk is full" in writer.failure
    stats = writer.stats()
    assert (stats.committed, stats.queue_depth, stats.dropped) == (1, 300, 0)
    assert stats.failed_batches >= 1 and stats.lag_s > 0 and stats.last_error == writer.failure

    free_the_disk(writer)
    wait_for(lambda: writer.failure is None)
    assert writer.flush()
    assert not writer.refusing
    assert rows_of(db_path, "SELECT count(*) FROM requests") == [(301,)]
    assert rows_of(db_path, "SELECT count(*) FROM request_bodies") == [(301,)]
    assert rows_of(db_path, "SELECT sum(requests) FROM spend_daily") == [(301,)]
    stats = writer.stats()
    assert (stats.queue_depth, stats.lag_s, stats.dropped) == (0, 0.0, 0)


def test_in_spill_mode_a_full_disk_spills_the_rows_and_replays_them_once_it_frees(
    make_writer: WriterFactory, db_path: Path, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = make_writer(
        flush_interval=0.02, retry_interval=0.2, on_failure="spill", spill_path=spill
    )
    writer.record_request(request(0), BODY)
    assert writer.flush()
    fill_the_disk(writer)
    for n in range(1, 301):
        writer.record_request(request(n), BODY)

    assert not writer.flush()
    assert writer.failure is not None and not writer.refusing  # served, and spilled
    stats = writer.stats()
    assert (stats.spilled, stats.queue_depth, stats.lag_s) == (300, 0, 0.0)
    assert stats.spill_bytes == spill.stat().st_size
    lines = spill.read_bytes().splitlines(keepends=True)
    assert sum(len(Batch.from_line(line)[1]) for line in lines) == 300
    assert b"sk-secret-value" not in spill.read_bytes()  # bodies are redacted before disk

    free_the_disk(writer)
    wait_for(lambda: not spill.exists())
    assert writer.flush()
    assert rows_of(db_path, "SELECT count(*), count(DISTINCT id) FROM requests") == [(301, 301)]
    assert rows_of(db_path, "SELECT count(*) FROM request_bodies") == [(301,)]
    assert rows_of(db_path, "SELECT sum(requests) FROM spend_daily") == [(301,)]
    assert rows_of(db_path, "SELECT count(*) FROM spilled_batches") == [(len(lines),)]
    assert writer.stats().replayed == 300


def test_a_spill_file_at_its_limit_refuses_and_holds_the_rest_in_memory(
    make_writer: WriterFactory, db_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spill = tmp_path / "spill.jsonl"
    writer = make_writer(
        flush_interval=0.02,
        retry_interval=0.2,
        on_failure="spill",
        spill_path=spill,
        spill_max_size=100_000,
    )
    writer.record_request(request(0), BODY)
    assert writer.flush()
    fill_the_disk(writer)
    for start in range(1, 301, 10):  # one batch per flush
        for n in range(start, start + 10):
            writer.record_request(request(n), BODY)
        writer.flush()

    assert writer.refusing
    stats = writer.stats()
    assert 0 < stats.spilled < 300 and stats.spilled + stats.queue_depth == 300
    assert spill.stat().st_size <= 100_000
    assert any("spill_max_size" in message for message in caplog.messages)

    free_the_disk(writer)
    wait_for(lambda: writer.failure is None and not spill.exists())
    assert writer.flush()
    assert rows_of(db_path, "SELECT count(*), count(DISTINCT id) FROM requests") == [(301, 301)]


def test_records_beyond_what_a_failing_store_holds_are_dropped_and_counted(
    make_writer: WriterFactory, db_path: Path
) -> None:
    one = Batch(keep_bodies=True)
    one.add(request(1), BODY)
    room = 100 * one.weight() + one.weight() // 2  # 100 records with these bodies
    writer = make_writer(flush_interval=0.02, retry_interval=60, max_held_bytes=room)
    writer.record_request(request(0))
    assert writer.flush()
    fill_the_disk(writer)
    for start in range(1, 251, 50):
        for n in range(start, start + 50):
            writer.record_request(request(n), BODY)
        writer.flush()
    stats = writer.stats()
    assert (stats.queue_depth, stats.dropped) == (100, 150)


def test_closing_while_the_store_fails_keeps_the_held_rows_in_the_spill_file(
    db_path: Path,
) -> None:
    writer = StoreWriter(db_path, flush_interval=0.02, retry_interval=60)
    writer.start()
    writer.record_request(request(0))
    assert writer.flush()
    fill_the_disk(writer)
    for n in range(1, 51):
        writer.record_request(request(n))
    writer.close()
    spill = default_spill_path(db_path)
    assert spill.exists()
    assert writer.stats().dropped == 0

    again = StoreWriter(db_path)  # the disk has room again (the limit was the connection's)
    again.start()
    assert again.flush()
    again.close()
    assert rows_of(db_path, "SELECT count(*) FROM requests") == [(51,)]
    assert not spill.exists()


def test_a_spill_file_a_crash_left_is_replayed_at_start_exactly_once(db_path: Path) -> None:
    first, second, cut = (Batch(keep_bodies=True) for _ in range(3))
    first.add(request(1), BODY)
    first.add(request(2))
    second.add(request(3), BODY)
    second.add(HealthSample(NOW, "ollama", "http://a", True, 4.0, None))
    cut.add(request(4))
    conn = connect_for_writing(db_path)
    _write(conn, first, "first")  # replayed just before the crash: its id is in the store
    conn.close()
    spill = default_spill_path(db_path)
    spill.write_bytes(first.to_line("first") + second.to_line("second") + cut.to_line("cut")[:-9])

    writer = StoreWriter(db_path)
    writer.start()
    assert writer.flush()
    writer.close()

    ids = [row[0] for row in rows_of(db_path, "SELECT id FROM requests ORDER BY id")]
    assert ids == ["req-1", "req-2", "req-3"]  # none twice; the line cut short is dropped
    assert rows_of(db_path, "SELECT count(*) FROM health_samples") == [(1,)]
    assert rows_of(db_path, "SELECT sum(requests) FROM spend_daily") == [(3,)]
    assert not spill.exists()


def test_a_batch_comes_back_from_its_spill_line_unchanged() -> None:
    batch = Batch(keep_bodies=True)
    batch.add(request(1, error="nul \x00, snowman \u2603", cost_usd=0.1 + 0.2), BODY)
    batch.add(request(2, ttft_ms=None, decision=None))
    batch.add(HealthSample(NOW, "ollama", "http://a", False, None, "refused", 3))
    batch.add(GpuSample(NOW, "ollama", "http://a", [{"name": "m"}], 1, 2, 3.5, 0))
    batch.add(AuditRecord(NOW, "ops", "drain", "ollama/http://a", None, {"x": 1}, "why"))
    batch.add(BudgetChange(NOW, "app", {}, {"daily": "1.50", "weekly": None}, "ops"))
    batch.add(DrainChange(NOW, "ollama", "http://a", True, None, "ops"))

    batch_id, back = Batch.from_line(batch.to_line("b-1"))

    assert batch_id == "b-1"
    for name in ("requests", "health", "gpu", "audit", "budgets", "drains"):
        assert getattr(back, name) == getattr(batch, name), name
    assert len(back) == len(batch) == 7


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b"not a database at all\n" * 200), "not a database"),
        (lambda p: _newer_store(p), "newer omen"),
        (lambda p: _corrupt_store(p), "corrupt"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
    ids=["not-a-database", "newer-schema", "corrupt-pages", "a-directory"],
)
def test_an_unusable_store_is_named_with_its_reason(
    db_path: Path, make: Callable[[Path], object], reason: str
) -> None:
    make(db_path)
    with pytest.raises(StoreUnusableError, match=reason) as caught:
        check_store(db_path)
    assert str(caught.value).startswith(f"cannot open the store at {db_path}: ")


def test_a_store_whose_folder_is_a_file_is_named_with_its_reason(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    with pytest.raises(StoreUnusableError, match="is a file, not a folder"):
        check_store(tmp_path / "data" / "omen.db")
    check_store(tmp_path / "new" / "folder" / "omen.db")  # a missing folder is created


def _newer_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()


def _corrupt_store(path: Path) -> None:
    writer = StoreWriter(path)
    writer.start()
    for n in range(2000):
        writer.record_request(request(n))
    writer.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 30] = bytes(range(256)) * (4096 * 28 // 256)
    path.write_bytes(data)


# -- redaction ---------------------------------------------------------------------------


def test_redaction_reaches_nested_keys_and_lists_and_leaves_the_input_untouched() -> None:
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "max_tokens": 100,
        "api_key": "sk-live-123",
        "headers": {"Authorization": "Bearer abc.def.ghi", "X-Api-Key": "k", "Accept": "*/*"},
        "metadata": {
            "container_id": "app",
            "note": "use Bearer eyJhbGciOiJIUzI1NiJ9.payload for the callback",
            "upstream": [{"client_secret": "s3cr3t"}, {"refresh_token": "r"}, "plain"],
            "pasted": "my key is sk-proj-abcdefghijklmnopqrstuvwx thanks",
        },
        "messages": [{"role": "user", "content": "what is a token bucket?"}],
        "password": None,
    }
    original = copy.deepcopy(body)

    redacted = redact_body(body)

    assert body == original
    assert redacted["api_key"] == REDACTED
    assert redacted["max_tokens"] == 100
    assert redacted["headers"] == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Accept": "*/*",
    }
    assert redacted["metadata"]["container_id"] == "app"
    assert redacted["metadata"]["note"] == f"use {REDACTED} for the callback"
    assert redacted["metadata"]["upstream"] == [
        {"client_secret": REDACTED},
        {"refresh_token": REDACTED},
        "plain",
    ]
    assert redacted["metadata"]["pasted"] == f"my key is {REDACTED} thanks"
    assert redacted["messages"] == original["messages"]
    assert redacted["password"] is None
    assert redacted["headers"] is not body["headers"]


# -- the reader ----------------------------------------------------------------------------


def test_reader_raises_store_missing_for_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    with pytest.raises(StoreMissingError, match=r"no store at .*nowhere\.db"):
        StoreReader(missing)
    assert not missing.exists()  # a reader never creates the file


def test_reader_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        StoreReader(junk)


@pytest.fixture
def filled_store(make_writer: WriterFactory, db_path: Path) -> Path:
    writer = make_writer()
    for n in range(300):
        writer.record_request(
            request(
                n,
                container=("app", "web", "batch")[n % 3],
                provider=("ollama", "openai")[n % 2],
                status=(200, 200, 200, 429, 503)[n % 5],
                replay_of="req-0" if n in (150, 151) else None,
            )
        )
    assert writer.flush()
    return db_path


ONE_ROW_PER_ENDPOINT = {"health_latest", "gpu_latest", "drains", "budget_overrides"}


def test_reader_queries_on_requests_are_index_bounded(filled_store: Path) -> None:
    statements: list[str] = []
    with StoreReader(filled_store) as reader:
        # The reader's own connection, traced: every statement it runs is checked.
        assert isinstance(reader._conn, sqlite3.Connection)
        reader._conn.set_trace_callback(statements.append)
        levels: tuple[Level | None, ...] = (None, "warn", "error")
        for level in levels:
            reader.recent_requests(level=level)
            reader.recent_requests(level=level, container="app")
            reader.recent_requests(level=level, provider="ollama")
            reader.recent_requests(level=level, since_ts=NOW)
            reader.recent_requests(level=level, container="app", since_ts=NOW)
            reader.recent_requests(level=level, after_rowid=250)
            reader.recent_requests(level=level, container="app", after_rowid=250)
        reader.get_request("req-1")
        reader.get_request_body("req-1")
        reader.replays_of("req-0")
        reader.max_rowid()
        reader.spend_window("app", NOW + 100.5)
        reader.spend_window(None, NOW + 100.5)
        reader.spend_by_container(day_name(NOW))
        reader.spend_daily_rows(since_day=day_name(NOW), container="app")
        reader.requests_per_minute(NOW, container="app")
        reader.latest_health()
        reader.health_history("ollama", "http://a", NOW)
        reader.gpu_history("ollama", "http://a", NOW)
        reader.audit_rows(since_ts=NOW)
        reader.budget_changes("app")

    conn = sqlite3.connect(filled_store)
    checked = 0
    for sql in statements:
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        for step in plan:
            if not step.startswith("SCAN") or step.split()[1] in ONE_ROW_PER_ENDPOINT:
                continue
            # Walking the requests index in order is fine when a LIMIT stops it (and no
            # sort step precedes the LIMIT: checked below); any other scan is not.
            assert step.startswith("SCAN requests USING") and " LIMIT " in sql, (sql, plan)
        if " FROM requests" in sql:
            checked += 1
            assert any(
                "USING INDEX" in step
                or "USING COVERING INDEX" in step
                or "USING INTEGER PRIMARY KEY" in step
                or step == "SEARCH requests"  # max(rowid): one b-tree descent
                for step in plan
            ), (sql, plan)
            assert not any("TEMP B-TREE FOR ORDER BY" in step for step in plan), (sql, plan)
    conn.close()
    assert checked >= 25


def test_request_level_follows_status_and_error() -> None:
    assert request(1, status=200).level == "info"
    assert request(1, status=429).level == "warn"
    assert request(1, status=502).level == "error"
    assert request(1, status=200, error="stream cut by upstream").level == "error"
