"""What only a shared PostgreSQL store meets: several instances writing and migrating at once,
rows committed out of seq order, connections the server drops, URLs with passwords."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from omen_store import (
    SCHEMA_VERSION,
    GpuSample,
    HealthSample,
    RequestRecord,
    StoreError,
    StoreMissingError,
    StoreReader,
    StoreUnusableError,
    StoreWriter,
    check_store,
    day_name,
    display_store,
    hour_name,
)
from omen_store.pg import COMMIT_ORDER_LOCK
from omen_store.schema import connect_for_writing
from tests.pg_support import admin_url, database_url, pg_database, require_postgres
from tests.store.helpers import NOW, count, query, request, wait_for


@pytest.fixture
def url() -> Iterator[str]:
    with pg_database() as database:
        yield database


def writer_on(url: str, tmp_path: Path, instance: str, **kwargs: Any) -> StoreWriter:
    writer = StoreWriter(
        url, instance=instance, spill_path=tmp_path / f"{instance}-spill.jsonl", **kwargs
    )
    writer.start()
    return writer


def terminate(url: str, application_name: str) -> int:
    """Have the server kill the connections of that application name (a LIKE pattern) to the
    database at `url` (only this test's: other tests may be using the server)."""
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE %s AND datname = %s AND pid <> pg_backend_pid()",
            [application_name, urlsplit(url).path.lstrip("/")],
        ).fetchall()
    return sum(1 for (killed,) in rows if killed)


# -- several instances -----------------------------------------------------------------------


def fleet_request(instance: str, n: int) -> RequestRecord:
    # Start times shuffled over an hour and a half: each batch touches many buckets, in an
    # order that differs from the other instance's (the rollup upserts contend and may
    # deadlock, which the writer must wait out).
    return request(
        n,
        id=f"{instance}-{n}",
        ts=NOW + ((n * 7919) % 2000) * 2.7,
        container=("app", "web")[n % 2],
        provider=("ollama", "openai", None)[n % 3],
        status=(200, 502, 200, 429)[n % 4],
        cost_usd=0.001 * (n % 5),
        prompt_tokens=n % 11,
        decision={"attempts": [{"provider": "ollama", "model": "llama", "status": 200, "ms": 2}]},
    )


def test_two_instances_writing_at_once_lose_and_double_nothing(url: str, tmp_path: Path) -> None:
    per_instance = 2000
    writers = {
        name: writer_on(url, tmp_path, name, flush_interval=0.005, max_batch=600)
        for name in ("a", "b")
    }
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(name: str) -> None:
        writer = writers[name]
        try:
            start.wait()
            for n in range(per_instance):
                writer.record_request(fleet_request(name, n))
                if n % 50 == 0:
                    writer.record_health(HealthSample(NOW + n, "ollama", "http://a", True, 1, None))
                    writer.record_gpu(GpuSample(NOW + n, "ollama", "http://a", [], 1, 2, 3.0, 0))
                if n % 200 == 199:
                    time.sleep(0.002)  # let batches of both interleave
            assert writer.flush(timeout=30)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for writer in writers.values():
        writer.close()
    assert failures == []
    for writer in writers.values():
        stats = writer.stats()
        assert (stats.failed, stats.dropped, stats.failed_batches) == (0, 0, 0)
        assert stats.committed == per_instance + 2 * (per_instance // 50)
        assert writer.failure is None

    assert query(url, "SELECT instance, count(*), count(DISTINCT id) FROM requests GROUP BY 1") in (
        [("a", per_instance, per_instance), ("b", per_instance, per_instance)],
        [("b", per_instance, per_instance), ("a", per_instance, per_instance)],
    )
    records = [fleet_request(name, n) for name in writers for n in range(per_instance)]
    for table, key in (
        ("spend_daily", day_name),
        ("spend_hourly", hour_name),
        ("spend_minutely", lambda ts: int(ts // 60) * 60),
    ):
        bucket = {"spend_daily": "day", "spend_hourly": "hour", "spend_minutely": "minute"}[table]
        expected: dict[tuple[Any, ...], list[float]] = {}
        for rec in records:
            sums = expected.setdefault((key(rec.ts), rec.container, rec.provider or ""), [0] * 5)
            for i, value in enumerate(
                (1, rec.level == "error", rec.prompt_tokens, rec.cost_usd, rec.latency_ms)
            ):
                sums[i] += value
        rows = query(
            url,
            f"SELECT {bucket}, container, provider, sum(requests), sum(errors), "
            f"sum(prompt_tokens), sum(cost_usd), sum(latency_ms_sum) FROM {table} "
            "GROUP BY 1, 2, 3",
        )
        actual = {tuple(row[:3]): list(row[3:]) for row in rows}
        assert sorted(actual) == sorted(expected), table
        for k, sums in expected.items():
            assert actual[k] == pytest.approx(sums), (table, k)
    assert query(url, "SELECT sum(requests) FROM outcomes") == [(2 * per_instance,)]
    with StoreReader(url) as reader:
        assert [(h.instance, h.ts) for h in reader.latest_health()] == [
            ("a", NOW + per_instance - 50),
            ("b", NOW + per_instance - 50),
        ]
        assert len(reader.health_history("ollama", "http://a", 0, limit=10_000)) == 80
        assert reader.spend_window(None, NOW - 1).requests == 2 * per_instance


def test_instances_migrating_at_once_migrate_once(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omen.store")
    start = threading.Barrier(4)
    results: list[Any] = []

    def migrate(i: int) -> None:
        try:
            start.wait()
            if i % 2:
                check_store(url)
                results.append("checked")
            else:
                conn = connect_for_writing(url, name=f"omen-writer m{i}")
                conn.close()
                results.append("opened")
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=migrate, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(map(str, results)) == ["checked", "checked", "opened", "opened"]
    assert query(url, "SELECT version FROM omen_schema") == [(SCHEMA_VERSION,)]
    migrated = [m for m in caplog.messages if "PostgreSQL schema migrated to version" in m]
    assert len(migrated) == SCHEMA_VERSION  # each version once, by one of them
    with StoreReader(url) as reader:
        assert reader.recent_requests() == []


# -- rows become visible in seq order -------------------------------------------------------


def insert_raw(conn: psycopg.Connection[Any], rid: str, session: str | None = None) -> None:
    """A request row as a writer inserts it, in `conn`'s transaction, after the lock every
    writer takes for its batch (store.writer._write). Its container is its id: two open
    transactions touching the same rollup bucket would wait on each other anyway."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", [COMMIT_ORDER_LOCK])
    conn.execute(
        "INSERT INTO requests (id, ts, container, kind, requested_model, stream, status, level, "
        "latency_ms, prompt_tokens, completion_tokens, session) "
        "VALUES (%s, %s, %s, 'chat', 'auto', 0, 200, 'info', 1, 1, 1, %s)",
        [rid, NOW, rid, session],
    )


def test_a_second_writer_waits_so_no_lower_seq_commits_after_a_higher_one(url: str) -> None:
    check_store(url)
    with (
        StoreReader(url) as reader,
        psycopg.connect(url) as slow,
        psycopg.connect(url) as fast,
    ):
        mark = 0
        seen: list[str] = []

        def poll() -> list[str]:
            nonlocal mark
            rows = reader.recent_requests(after_rowid=mark, limit=1000)
            mark = max([mark, *(row.rowid for row in rows)])
            seen.extend(row.id for row in rows)
            return [row.id for row in rows]

        insert_raw(slow, "first")  # seq 1, not committed yet
        second = threading.Thread(target=lambda: (insert_raw(fast, "second"), fast.commit()))
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waits for the first writer's commit: it holds no seq yet
        assert poll() == []
        slow.commit()
        second.join(10)
        assert not second.is_alive()
        assert poll() == ["first", "second"]
        assert poll() == []
        assert seen == ["first", "second"] and mark == 2


def test_the_store_writer_takes_the_commit_order_lock(url: str, tmp_path: Path) -> None:
    writer = writer_on(url, tmp_path, "a")  # started
    try:
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", [COMMIT_ORDER_LOCK])
            writer.record_request(request(1))
            assert not writer.flush(timeout=0.5)  # its batch waits for the lock
            holder.execute("SELECT pg_advisory_unlock(%s)", [COMMIT_ORDER_LOCK])
        assert writer.flush(timeout=10)
        assert count(url, "requests") == 1
    finally:
        writer.close()


def test_counting_sessions_by_rowid_range_misses_no_session(url: str) -> None:
    # The console counts today's sessions with container_sessions(after_rowid=the last
    # max_rowid(), until_rowid=max_rowid() now), keeping what it has seen.
    check_store(url)
    with StoreReader(url) as reader, psycopg.connect(url) as slow, psycopg.connect(url) as fast:
        insert_raw(slow, "first", session="s-first")  # seq 1
        second = threading.Thread(
            target=lambda: (insert_raw(fast, "second", session="s-second"), fast.commit())
        )
        second.start()
        second.join(0.3)
        until = reader.max_rowid()
        sessions = reader.container_sessions(NOW, after_rowid=0, until_rowid=until)
        assert sessions == set() and until == 0
        slow.commit()
        second.join(10)
        mark, until = until, reader.max_rowid()
        sessions |= reader.container_sessions(NOW, after_rowid=mark, until_rowid=until)
        assert sessions == {("first", "s-first"), ("second", "s-second")}


# -- connections the server drops ------------------------------------------------------------


def test_the_writer_survives_the_server_killing_its_connection(url: str, tmp_path: Path) -> None:
    writer = writer_on(url, tmp_path, "k", flush_interval=0.02, retry_interval=0.1)
    try:
        for n in range(50):
            writer.record_request(request(n))
        assert writer.flush()
        assert terminate(url, "omen-writer%") == 1
        for n in range(50, 100):
            writer.record_request(request(n))
            writer.record_health(HealthSample(NOW + n, "ollama", "http://a", True, 1, None))
        wait_for(lambda: writer.flush(timeout=1), 15, "the writer to commit again")
        stats = writer.stats()
        assert (stats.failed, stats.dropped, stats.queue_depth) == (0, 0, 0)
        assert writer.failure is None and not writer.refusing
    finally:
        writer.close()
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM requests") == [(100, 100)]
    assert count(url, "health_samples") == 50
    assert query(url, "SELECT sum(requests) FROM spend_daily") == [(100,)]


def test_records_queued_while_the_connection_is_killed_again_and_again_all_land_once(
    url: str, tmp_path: Path
) -> None:
    writer = writer_on(url, tmp_path, "k", flush_interval=0.01, retry_interval=0.05)
    total = 1500
    done = threading.Event()

    def record() -> None:
        for n in range(total):
            writer.record_request(request(n))
            writer.record_health(HealthSample(NOW + n, "ollama", "http://a", True, 1, None))
            if n % 100 == 99:
                time.sleep(0.01)
        done.set()

    producer = threading.Thread(target=record)
    try:
        producer.start()
        kills = 0
        while not done.is_set() or kills < 3:
            time.sleep(0.03)
            kills += terminate(url, "omen-writer%")
        producer.join(30)
        wait_for(lambda: writer.flush(timeout=1), 20, "the writer to commit again")
        stats = writer.stats()
        assert kills >= 3 and stats.failed_batches >= 1
        assert (stats.dropped, stats.queue_depth) == (0, 0)
    finally:
        writer.close()
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM requests") == [(total, total)]
    assert query(url, "SELECT count(*), count(DISTINCT ts) FROM health_samples") == [(total, total)]
    assert query(url, "SELECT sum(requests) FROM spend_minutely") == [(total,)]


def test_in_spill_mode_what_a_killed_connection_left_is_spilled_and_replayed_once(
    url: str, tmp_path: Path
) -> None:
    writer = writer_on(
        url, tmp_path, "k", flush_interval=0.02, retry_interval=0.1, on_failure="spill"
    )
    spill = tmp_path / "k-spill.jsonl"
    try:
        writer.record_request(request(0))
        assert writer.flush()
        assert terminate(url, "omen-writer%") == 1
        for n in range(1, 40):
            writer.record_request(request(n), {"messages": [n]})
        wait_for(lambda: writer.flush(timeout=1) and not spill.exists(), 15, "the replay")
        stats = writer.stats()
        assert stats.spilled >= 1 and stats.replayed == stats.spilled
        assert (stats.failed, stats.dropped) == (0, 0)
    finally:
        writer.close()
    assert query(url, "SELECT count(*), count(DISTINCT id) FROM requests") == [(40, 40)]
    assert count(url, "request_bodies") == 39
    assert query(url, "SELECT sum(requests) FROM spend_daily") == [(40,)]
    ids = [row[0] for row in query(url, "SELECT id FROM spilled_batches")]
    assert ids and all(rid.startswith("k/") for rid in ids)  # this instance's replays


def test_a_reader_whose_connection_the_server_killed_reads_again(url: str, tmp_path: Path) -> None:
    writer = writer_on(url, tmp_path, "r")
    writer.record_request(request(1))
    assert writer.flush()
    writer.close()
    with StoreReader(url) as reader:
        assert reader.max_rowid() == 1
        assert terminate(url, "omen reader") == 1
        with contextlib.suppress(StoreError):
            reader.max_rowid()  # may learn of it only now, in words
        assert reader.max_rowid() == 1
        assert reader.get_request("req-1") is not None


# -- naming the store --------------------------------------------------------------------------


def test_an_unreachable_server_is_named_without_its_password() -> None:
    target = "postgresql://u:secretpw@127.0.0.1:1/x"
    with pytest.raises(StoreUnusableError) as caught:
        check_store(target)
    error = caught.value
    assert str(error).startswith("cannot open the store at postgresql://u:***@127.0.0.1:1/x: ")
    assert "127.0.0.1" in error.reason and "port 1" in error.reason
    for text in (str(error), error.path, error.reason, repr(error)):
        assert "secretpw" not in text
    with pytest.raises(StoreError) as read:
        StoreReader(target)
    assert "postgresql://u:***@127.0.0.1:1/x" in str(read.value)
    assert "secretpw" not in str(read.value)


def test_a_password_given_as_a_url_parameter_is_not_shown() -> None:
    target = "postgresql://u@127.0.0.1:1/x?password=secretpw&connect_timeout=2"
    assert "secretpw" not in display_store(target)
    with pytest.raises(StoreUnusableError) as caught:
        check_store(target)
    assert "secretpw" not in str(caught.value)


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("postgresql://u:secretpw@db.example:5432/omen", "postgresql://u:***@db.example:5432/omen"),
        ("postgres://u:secretpw@db.example/omen", "postgres://u:***@db.example/omen"),
        ("postgresql://:secretpw@db.example/omen", "postgresql://***@db.example/omen"),
        (
            "postgresql://u:p%40secretpw@db/omen?sslmode=require",
            "postgresql://u:***@db/omen?sslmode=require",
        ),
        ("postgresql://u@db.example/omen", "postgresql://u@db.example/omen"),
        ("/var/lib/omen/omen.db", "/var/lib/omen/omen.db"),
        ("postgresql://u:secretpw@[::1]:5432/omen", "postgresql://u:***@[::1]:5432/omen"),
    ],
    ids=["user-password", "postgres-scheme", "password-only", "encoded", "none", "sqlite", "ipv6"],
)
def test_display_store_hides_passwords(target: str, shown: str) -> None:
    assert display_store(target) == shown
    assert "secretpw" not in display_store(target)


def test_a_database_without_omen_tables_is_no_store(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE unrelated (x int)")
    with pytest.raises(StoreMissingError):
        StoreReader(url)
    assert query(url, "SELECT to_regclass('omen_schema') IS NULL") == [(True,)]  # not created


def test_a_store_from_a_newer_omen_is_refused(url: str) -> None:
    check_store(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE omen_schema SET version = %s", [SCHEMA_VERSION + 1])
    with pytest.raises(StoreUnusableError, match="newer omen"):
        check_store(url)


def test_a_writer_clears_only_its_own_instances_replay_records(url: str, tmp_path: Path) -> None:
    # spilled_batches ids start with "<instance>/"; a writer starting with no spill file
    # forgets its own finished replays, never another instance's (which that instance still
    # needs to replay its spill file exactly once), whatever characters instance names hold.
    check_store(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for rid in ("a_b/1", "axb/2", "a%/3", "a_bc/4"):
            conn.execute("INSERT INTO spilled_batches (id, ts) VALUES (%s, 0)", [rid])
    writer_on(url, tmp_path, "a_b").close()
    writer_on(url, tmp_path, "a%").close()
    assert query(url, "SELECT id FROM spilled_batches ORDER BY id") == [("a_bc/4",), ("axb/2",)]


def test_rollup_buckets_are_utc_whatever_the_servers_time_zone(url: str, tmp_path: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        database = urlsplit(url).path.lstrip("/")
        conn.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'Pacific/Kiritimati'")
    writer = writer_on(url, tmp_path, "tz")
    writer.record_request(request(1, ts=NOW - 0.5))
    writer.record_request(request(2, ts=NOW + 3 * 3600 + 1))
    writer.close()
    assert query(url, "SELECT day, requests FROM spend_daily ORDER BY day") == [
        ("2025-12-31", 1),
        ("2026-01-01", 1),
    ]
    assert query(url, "SELECT hour FROM spend_hourly ORDER BY hour") == [
        ("2025-12-31T23",),
        ("2026-01-01T03",),
    ]
    with StoreReader(url) as reader:
        assert reader.spend_window(None, NOW + 1800).requests == 1


def test_names_sort_as_on_sqlite_whatever_the_servers_collation(tmp_path: Path) -> None:
    # Many servers default to a linguistic collation (en_US.UTF-8); SQLite compares bytes.
    require_postgres()
    name = f"omen_test_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as admin:
        try:
            admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
                "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
            )
        except psycopg.Error as exc:
            pytest.skip(f"no ICU collation on this server: {exc}")
    try:
        url = database_url(name)
        writer = writer_on(url, tmp_path, "c")
        for n, container in enumerate(("b", "B", "_x", "a", "A")):
            writer.record_request(request(n, container=container))
        writer.close()
        with StoreReader(url) as reader:
            spend = reader.spend_by_container(day_name(NOW))
        assert [c.container for c in spend] == sorted(["b", "B", "_x", "a", "A"])
    finally:
        with psycopg.connect(admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
