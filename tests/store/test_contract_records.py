"""The store's write contract, the same on SQLite and PostgreSQL: every kind of record written
by StoreWriter and read back by StoreReader, equal to what was recorded."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from omen_store import (
    REDACTED,
    AuditRecord,
    BudgetChange,
    DrainChange,
    FeedbackRecord,
    GpuSample,
    HealthSample,
    RequestRecord,
    RequestRow,
    SpendTotals,
    StoreReader,
    check_store,
    retention,
)
from tests.store.conftest import WriterFactory
from tests.store.helpers import DAY, NOW, count, query, request, wait_for


def row_of(rec: RequestRecord, *, rowid: int, instance: str) -> RequestRow:
    """What the reader should give back for `rec`: every field as recorded."""
    values = {field.name: getattr(rec, field.name) for field in dataclasses.fields(RequestRecord)}
    return RequestRow(**values, rowid=rowid, instance=instance)


def test_check_store_creates_a_store_that_reads_back_empty(store_target: str) -> None:
    check_store(store_target)
    check_store(store_target)  # already migrated: changes nothing
    with StoreReader(store_target) as reader:
        assert reader.recent_requests() == []
        assert reader.recent_requests(after_rowid=0) == []
        assert reader.max_rowid() == 0
        assert reader.get_request("req-1") is None
        assert reader.get_request_body("req-1") is None
        assert reader.spend_by_container("2000-01-01") == []
        assert reader.spend_daily_rows(since_day="2000-01-01") == []
        assert reader.spend_window(None, NOW) == SpendTotals()
        assert reader.spend_window("app", NOW + 0.5) == SpendTotals()
        assert reader.admitted_since("app", 0, times_limit=5) == (0, [])
        assert reader.requests_per_minute(0) == []
        assert reader.traffic_by_provider(0) == {}
        assert reader.spend_by_container_since(0) == {}
        assert reader.container_sessions(0) == set()
        assert reader.latest_health() == [] and reader.latest_gpu() == []
        assert reader.drains() == {} and reader.budget_overrides() == {}
        assert reader.budget_changes() == [] and reader.audit_rows() == []
        assert reader.outcomes() == [] and reader.feedback_for("req-1") is None


def test_requests_read_back_field_for_field_with_bodies_redacted(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer(instance="omen-1")
    full = request(
        1,
        key_id=None,
        stream=True,
        status=502,
        ttft_ms=3.25,
        prompt_tokens=1200,
        completion_tokens=0,
        cached_tokens=1000,
        cache_write_tokens=150,
        reasoning_tokens=7,
        cost_usd=0.1 + 0.2,  # not a short decimal: must come back bit for bit
        cache_saved_usd=0.000375,
        decision={"attempts": [{"provider": "ollama", "model": "m", "status": 502, "ms": 1.5}]},
        error="upstream said “no” ☃",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        session="sess-9",
        client_closed=True,
    )
    refused = request(
        2,
        model=None,
        provider=None,
        endpoint=None,
        intent=None,
        strategy=None,
        status=429,
        decision=None,
        reason="",
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=0.0,
    )
    replay = request(3, replay_of="req-1", key_id="key-ops")
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "my key is sk-proj-abcdefghijklmnopqrstuvwx"}],
        "metadata": {"api_key": "secret-value", "team": "blue"},
        "headers": {"Authorization": "Bearer abc.def.ghi"},
    }
    writer.record_request(full, body)
    writer.record_request(refused)
    writer.record_request(replay, {"model": "auto", "messages": []})
    assert writer.flush()

    other = make_writer(instance="omen-2", keep_bodies=False)
    other.record_request(request(4), body)
    assert other.flush()

    with StoreReader(store_target) as reader:
        assert reader.get_request("req-1") == row_of(full, rowid=1, instance="omen-1")
        assert reader.get_request("req-2") == row_of(refused, rowid=2, instance="omen-1")
        assert reader.get_request("req-3") == row_of(replay, rowid=3, instance="omen-1")
        assert reader.get_request("req-4") == row_of(request(4), rowid=4, instance="omen-2")
        assert reader.get_request("req-404") is None
        assert reader.get_request_body("req-1") == {
            "model": "auto",
            "messages": [{"role": "user", "content": f"my key is {REDACTED}"}],
            "metadata": {"api_key": REDACTED, "team": "blue"},
            "headers": {"Authorization": REDACTED},
        }
        assert reader.get_request_body("req-2") is None  # recorded without one
        assert reader.get_request_body("req-3") == {"model": "auto", "messages": []}
        assert reader.get_request_body("req-4") is None  # keep_bodies=False
        assert [row.id for row in reader.replays_of("req-1")] == ["req-3"]
        assert reader.replays_of("req-2") == []
    assert count(store_target, "request_bodies") == 2


def test_text_with_a_nul_character_is_kept_not_refused(
    make_writer: WriterFactory, store_target: str
) -> None:
    # An upstream's garbled error text may hold a NUL; the request must still be recorded
    # (SQLite keeps the character; a store that cannot may show it as U+FFFD).
    writer = make_writer()
    writer.record_request(request(1, status=502, error="bad \x00 byte"))
    writer.record_request(request(2))
    assert writer.flush()
    assert writer.stats().failed == 0
    with StoreReader(store_target) as reader:
        row = reader.get_request("req-1")
        assert row is not None and row.error is not None
        assert row.error.replace("\x00", "\ufffd") == "bad \ufffd byte"
        assert reader.spend_window(None, NOW).requests == 2


def test_a_nan_in_an_optional_number_reads_back_as_none(
    make_writer: WriterFactory, store_target: str
) -> None:
    # SQLite stores a NaN as NULL: a store must not give back a NaN where the other gives None.
    nan = float("nan")
    writer = make_writer()
    writer.record_request(request(1, ttft_ms=nan))
    writer.record_health(HealthSample(NOW, "ollama", "http://a", False, nan, "timeout"))
    writer.record_gpu(GpuSample(NOW, "ollama", "http://a", [], None, None, nan, 0))
    assert writer.flush()
    assert writer.stats().failed == 0
    with StoreReader(store_target) as reader:
        row = reader.get_request("req-1")
        assert row is not None and row.ttft_ms is None
        assert [h.latency_ms for h in reader.latest_health()] == [None]
        assert [h.latency_ms for h in reader.health_history("ollama", "http://a", 0)] == [None]
        assert [g.gpu_util_percent for g in reader.latest_gpu()] == [None]


def test_health_and_gpu_samples_keep_history_and_the_newest_per_endpoint(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer(instance="omen-1")
    writer.record_health(HealthSample(NOW, "ollama", "http://a", True, 4.0, None, 2))
    writer.record_health(HealthSample(NOW + 30, "ollama", "http://a", False, None, "refused"))
    writer.record_health(HealthSample(NOW + 10, "ollama", "http://a", True, 3.0, None))  # late
    writer.record_health(HealthSample(NOW + 5, "openai", "https://api", True, 80.5, None, 1))
    models = [{"name": "llama3.1:8b", "size_vram": 5_000, "expires_at": "2026-01-01T00:05:00Z"}]
    writer.record_gpu(GpuSample(NOW, "ollama", "http://a", models, 5_000, 24_000, 61.0, 3))
    writer.record_gpu(GpuSample(NOW + 20, "ollama", "http://a", [], None, None, None, 0))
    writer.record_gpu(GpuSample(NOW + 15, "ollama", "http://a", models, 1, 2, 3.5, 1))  # late
    assert writer.flush()

    with StoreReader(store_target) as reader:
        latest = [
            (
                h.ts,
                h.provider,
                h.endpoint,
                h.healthy,
                h.latency_ms,
                h.error,
                h.in_flight,
                h.instance,
            )
            for h in reader.latest_health()
        ]
        assert latest == [
            (NOW + 30, "ollama", "http://a", False, None, "refused", 0, "omen-1"),
            (NOW + 5, "openai", "https://api", True, 80.5, None, 1, "omen-1"),
        ]
        history = reader.health_history("ollama", "http://a", since_ts=NOW - 1)
        assert [(h.ts, h.healthy, h.latency_ms) for h in history] == [
            (NOW, True, 4.0),
            (NOW + 10, True, 3.0),
            (NOW + 30, False, None),
        ]
        newest_two = reader.health_history("ollama", "http://a", since_ts=0, limit=2)
        assert [h.ts for h in newest_two] == [NOW + 10, NOW + 30]
        assert reader.health_history("ollama", "http://a", since_ts=NOW + 31) == []

        [gpu] = reader.latest_gpu()
        assert (gpu.ts, gpu.loaded_models, gpu.vram_used_bytes, gpu.gpu_util_percent) == (
            NOW + 20,
            [],
            None,
            None,
        )
        gpu_history = reader.gpu_history("ollama", "http://a", since_ts=0)
        assert [(g.ts, g.loaded_models, g.vram_total_bytes, g.in_flight) for g in gpu_history] == [
            (NOW, models, 24_000, 3),
            (NOW + 15, models, 2, 1),
            (NOW + 20, [], None, 0),
        ]
        assert [g.ts for g in reader.gpu_history("ollama", "http://a", 0, limit=1)] == [NOW + 20]


def test_budget_overrides_set_keep_and_clear_each_period(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    changes = [
        # "20.00" and Decimal: money as text keeps its digits in the change, a number here.
        BudgetChange(NOW, "app", {}, {"daily": "20.00", "weekly": Decimal("90.5")}, "key-ops"),
        BudgetChange(NOW + 1, "app", {"weekly": 90.5}, {"weekly": None}, "key-ops"),  # clear
        BudgetChange(NOW + 2, "app", {}, {"monthly": 300}, "key-boss"),  # the others kept
        BudgetChange(NOW + 3, "web", {}, {"daily": 1.5}, "key-ops"),
    ]
    for change in changes:
        writer.record_budget_change(change)
    assert writer.flush()

    with StoreReader(store_target) as reader:
        overrides = reader.budget_overrides()
        assert set(overrides) == {"app", "web"}
        app = overrides["app"]
        assert (app.daily, app.weekly, app.monthly, app.ts, app.actor) == (
            20.0,
            None,
            300.0,
            NOW + 2,
            "key-boss",
        )
        web = overrides["web"]
        assert (web.daily, web.weekly, web.monthly) == (1.5, None, None)
        history = reader.budget_changes("app")
        assert [(c.ts, c.before, c.after, c.actor) for c in history] == [
            (NOW + 2, {}, {"monthly": 300}, "key-boss"),
            (NOW + 1, {"weekly": 90.5}, {"weekly": None}, "key-ops"),
            (NOW, {}, {"daily": "20.00", "weekly": "90.5"}, "key-ops"),
        ]
        assert [c.container for c in reader.budget_changes()] == ["web", "app", "app", "app"]
        assert [c.ts for c in reader.budget_changes(limit=2)] == [NOW + 3, NOW + 2]

    writer.record_budget_change(
        BudgetChange(NOW + 4, "app", {}, {"daily": None, "monthly": None}, "key-ops")
    )
    assert writer.flush()
    with StoreReader(store_target) as reader:
        app = reader.budget_overrides()["app"]
        assert (app.daily, app.weekly, app.monthly) == (None, None, None)  # all cleared


def test_drains_and_audit_rows_read_back(make_writer: WriterFactory, store_target: str) -> None:
    writer = make_writer()
    writer.record_drain(DrainChange(NOW, "ollama", "http://a", True, "maintenance", "key-ops"))
    writer.record_drain(DrainChange(NOW + 1, "ollama", "http://b", True, None, "key-ops"))
    writer.record_audit(
        AuditRecord(NOW, "key-ops", "drain", "ollama/http://a", None, {"drained": True}, None)
    )
    writer.record_audit(
        AuditRecord(NOW + 5, "key-ops", "budget", "app", {"daily": 1}, {"daily": 2}, "raise")
    )
    assert writer.flush()

    with StoreReader(store_target) as reader:
        drains = reader.drains()
        assert set(drains) == {("ollama", "http://a"), ("ollama", "http://b")}
        a = drains[("ollama", "http://a")]
        assert (a.drained, a.reason, a.actor, a.ts) == (True, "maintenance", "key-ops", NOW)
        audit = reader.audit_rows()
        assert [(r.ts, r.action, r.target, r.before, r.after, r.detail) for r in audit] == [
            (NOW + 5, "budget", "app", {"daily": 1}, {"daily": 2}, "raise"),
            (NOW, "drain", "ollama/http://a", None, {"drained": True}, None),
        ]
        assert [r.action for r in reader.audit_rows(since_ts=NOW + 1)] == ["budget"]
        assert [r.action for r in reader.audit_rows(limit=1)] == ["budget"]

    writer.record_drain(DrainChange(NOW + 60, "ollama", "http://a", False, None, "key-boss"))
    assert writer.flush()
    with StoreReader(store_target) as reader:
        a = reader.drains()[("ollama", "http://a")]
        assert (a.drained, a.reason, a.actor, a.ts) == (False, None, "key-boss", NOW + 60)
        assert reader.drains()[("ollama", "http://b")].drained is True


def test_every_row_kind_names_the_instance_that_wrote_it(
    make_writer: WriterFactory, store_target: str
) -> None:
    one, two = make_writer(instance="omen-1"), make_writer(instance="omen-2")
    for writer, n in ((one, 1), (two, 2)):
        writer.record_request(request(n, session=f"s{n}"), {"messages": []})
        writer.record_health(HealthSample(NOW + n, "ollama", "http://a", True, 1.0, None))
        writer.record_gpu(GpuSample(NOW + n, "ollama", "http://a", [], None, None, None, 0))
        writer.record_audit(AuditRecord(NOW + n, "ops", f"act-{n}", "t", None, None, None))
        writer.record_feedback(
            FeedbackRecord(NOW + n, f"req-{n}", 1.0, "ops", "app", "general", "ollama", "m")
        )
        assert writer.flush()
    one.record_budget_change(BudgetChange(NOW, "app", {}, {"daily": 1}, "ops"))
    one.record_drain(DrainChange(NOW, "ollama", "http://a", True, None, "ops"))
    assert one.flush()
    two.record_budget_change(BudgetChange(NOW + 1, "web", {}, {"daily": 1}, "ops"))
    two.record_drain(DrainChange(NOW + 1, "ollama", "http://b", True, None, "ops"))
    assert two.flush()

    with StoreReader(store_target) as reader:
        assert {(r.id, r.instance) for r in reader.recent_requests()} == {
            ("req-1", "omen-1"),
            ("req-2", "omen-2"),
        }
        assert [r.id for r in reader.recent_requests(instance="omen-2")] == ["req-2"]
        assert [r.id for r in reader.recent_requests(instance="omen-1", after_rowid=0)] == ["req-1"]
        assert reader.recent_requests(instance="omen-3") == []
        # Each instance keeps its own newest sample of the same endpoint.
        assert [(h.instance, h.ts) for h in reader.latest_health()] == [
            ("omen-1", NOW + 1),
            ("omen-2", NOW + 2),
        ]
        assert [(g.instance, g.ts) for g in reader.latest_gpu()] == [
            ("omen-1", NOW + 1),
            ("omen-2", NOW + 2),
        ]
        assert [h.instance for h in reader.health_history("ollama", "http://a", 0)] == [
            "omen-1",
            "omen-2",
        ]
        assert [g.instance for g in reader.gpu_history("ollama", "http://a", 0)] == [
            "omen-1",
            "omen-2",
        ]
        assert [(a.action, a.instance) for a in reader.audit_rows()] == [
            ("act-2", "omen-2"),
            ("act-1", "omen-1"),
        ]
        assert {c: o.instance for c, o in reader.budget_overrides().items()} == {
            "app": "omen-1",
            "web": "omen-2",
        }
        assert {key[1]: d.instance for key, d in reader.drains().items()} == {
            "http://a": "omen-1",
            "http://b": "omen-2",
        }
    assert query(store_target, "SELECT request_id, instance FROM feedback ORDER BY 1") == [
        ("req-1", "omen-1"),
        ("req-2", "omen-2"),
    ]


def test_budget_change_rows_name_their_instance(
    make_writer: WriterFactory, store_target: str
) -> None:
    # The column is there (schema version 6) and written; the row read back must show it, as
    # every other row kind's does.
    for instance, container in (("omen-1", "app"), ("omen-2", "web")):
        writer = make_writer(instance=instance)
        writer.record_budget_change(BudgetChange(NOW, container, {}, {"daily": 1}, "ops"))
        assert writer.flush()
    assert query(store_target, "SELECT container, instance FROM budget_changes ORDER BY 1") == [
        ("app", "omen-1"),
        ("web", "omen-2"),
    ]
    with StoreReader(store_target) as reader:
        changes = {c.container: getattr(c, "instance", None) for c in reader.budget_changes()}
    assert changes == {"app": "omen-1", "web": "omen-2"}


def test_a_record_the_database_refuses_does_not_take_its_batch_with_it(
    make_writer: WriterFactory, store_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="omen.store")
    writer = make_writer(flush_interval=5)  # everything below goes in one batch
    attempts = {"attempts": [{"provider": "ollama", "model": "m", "status": 200, "ms": 10}]}
    writer.record_request(request(1, decision=attempts), {"messages": ["first"]})
    writer.record_request(request(1, decision=attempts), {"messages": ["again"]})  # duplicate
    writer.record_request(request(2, decision=attempts))
    writer.record_health(HealthSample(NOW, "ollama", "http://a", True, 1.0, None))
    writer.record_audit(AuditRecord(NOW, "ops", "drain", "x", None, None, None))
    assert writer.flush()

    assert writer.stats().failed == 1
    assert writer.failure is None
    assert any("req-1" in message for message in caplog.messages)
    assert query(store_target, "SELECT id FROM requests ORDER BY id") == [("req-1",), ("req-2",)]
    assert count(store_target, "health_samples") == 1
    assert count(store_target, "audit") == 1
    # The rollups and outcomes count exactly the rows that exist, the refused one not at all.
    assert query(store_target, "SELECT sum(requests) FROM spend_daily") == [(2,)]
    assert query(store_target, "SELECT sum(requests) FROM spend_hourly") == [(2,)]
    assert query(store_target, "SELECT sum(requests) FROM spend_minutely") == [(2,)]
    assert query(store_target, "SELECT requests FROM outcomes") == [(2,)]
    with StoreReader(store_target) as reader:
        assert reader.get_request_body("req-1") == {"messages": ["first"]}

    writer.record_request(request(3))  # and the writer goes on
    assert writer.flush()
    assert count(store_target, "requests") == 3


def test_records_that_cannot_be_stored_are_refused_one_by_one(
    make_writer: WriterFactory, store_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="omen.store")
    writer = make_writer(flush_interval=0.02)
    writer.record_request(request(1))
    writer.record_request(request(2, decision={"oops": object()}))  # not JSON
    writer.record_request(request(3, cost_usd=float("inf")))  # would poison the rollups
    writer.record_request(request(4, prompt_tokens=2**64))  # beyond 64 bits
    writer.record_request(request(5, latency_ms=float("nan")))
    writer.record_feedback(FeedbackRecord(NOW, "req-1", 1.5, "ops", "app", "g", "p", "m"))
    writer.record_feedback(FeedbackRecord(NOW, "req-1", float("nan"), "ops", "app", "g", "p", "m"))
    writer.record_request(request(6, error="half a surrogate: \ud800"))  # no UTF-8 for it
    writer.record_request(request(7))
    assert writer.flush()
    assert writer.stats().failed == 7
    assert writer.failure is None
    assert any("req-2" in message for message in caplog.messages)
    assert query(store_target, "SELECT id FROM requests ORDER BY id") == [("req-1",), ("req-7",)]
    assert query(store_target, "SELECT sum(requests) FROM spend_daily") == [(2,)]
    assert count(store_target, "feedback") == 0


def test_close_commits_everything_queued_and_is_idempotent(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer(flush_interval=10)
    for n in range(3000):
        writer.record_request(request(n))
    writer.close()
    writer.close()
    assert count(store_target, "requests") == 3000
    assert query(store_target, "SELECT sum(requests) FROM spend_daily") == [(3000,)]
    writer.record_request(request(99_999))  # after close: dropped, never raised
    assert writer.stats().dropped == 1
    assert writer.flush()


def test_batches_commit_within_the_flush_interval_or_when_full(
    make_writer: WriterFactory, store_target: str
) -> None:
    timely = make_writer(flush_interval=0.05)
    timely.record_request(request(1))
    wait_for(lambda: count(store_target, "requests") == 1, 5, "a commit without flush()")

    full = make_writer(flush_interval=30, max_batch=50)
    for n in range(100, 150):
        full.record_request(request(n))
    wait_for(lambda: count(store_target, "requests") == 51, 5, "max_batch to trigger a write")


def test_prune_deletes_old_bodies_and_samples_in_chunks_and_keeps_requests(
    make_writer: WriterFactory, store_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "CHUNK", 7)  # force many chunks
    steps: list[int] = []
    real_step = retention.prune_step

    def counting_step(conn: Any, job: retention.PruneJob) -> bool:
        steps.append(job.deleted)
        return real_step(conn, job)

    monkeypatch.setattr("omen_store.writer.prune_step", counting_step)
    writer = make_writer()
    now = time.time()
    for n in range(40):
        old = n % 2 == 0
        ts = now - (10 * DAY if old else 60)
        writer.record_request(request(n, ts=ts), {"messages": [{"role": "user"}]})
        writer.record_health(HealthSample(ts, "ollama", f"http://{n}", True, 1.0, None))
        writer.record_gpu(GpuSample(ts, "ollama", f"http://{n}", [], None, None, None, 0))
    assert writer.flush()

    writer.prune(keep_bodies_s=7 * DAY, keep_samples_s=DAY)
    assert writer.flush()  # waits for the prune, chunk after chunk
    assert len(steps) >= 3  # 20 old rows a table, 7 a chunk
    assert count(store_target, "requests") == 40  # never pruned
    for table in ("request_bodies", "health_samples", "gpu_samples", "health_latest", "gpu_latest"):
        assert count(store_target, table) == 20, table
    assert query(store_target, "SELECT min(ts) FROM health_samples")[0][0] > now - DAY
    assert query(store_target, "SELECT min(ts) FROM request_bodies")[0][0] > now - DAY
    assert query(store_target, "SELECT sum(requests) FROM spend_daily") == [(40,)]
    assert query(store_target, "SELECT sum(requests) FROM spend_hourly") == [(40,)]
    assert query(store_target, "SELECT sum(requests) FROM spend_minutely") == [(20,)]
    with StoreReader(store_target) as reader:
        assert reader.get_request_body("req-1") == {"messages": [{"role": "user"}]}
        assert reader.get_request_body("req-0") is None
        assert reader.get_request("req-0") is not None

    writer.prune(keep_bodies_s=0, keep_samples_s=DAY)  # 0: bodies are not kept at all
    assert writer.flush()
    assert count(store_target, "request_bodies") == 0
    assert count(store_target, "health_samples") == 20


def test_the_reader_is_read_only(make_writer: WriterFactory, store_target: str) -> None:
    writer = make_writer()
    writer.record_request(request(1))
    assert writer.flush()
    with StoreReader(store_target) as reader:
        with pytest.raises((sqlite3.OperationalError, psycopg.Error)):
            reader._conn.execute("DELETE FROM requests")
        assert reader.get_request("req-1") is not None  # and it still reads
    assert count(store_target, "requests") == 1


def test_one_reader_serves_several_threads(make_writer: WriterFactory, store_target: str) -> None:
    writer = make_writer()
    for n in range(60):
        writer.record_request(request(n))
    assert writer.flush()
    failures: list[BaseException] = []
    with StoreReader(store_target) as reader:

        def poll() -> None:
            try:
                for _ in range(20):
                    assert len(reader.recent_requests(limit=50)) == 50
                    assert reader.spend_window(None, NOW).requests == 60
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)

        threads = [threading.Thread(target=poll) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
