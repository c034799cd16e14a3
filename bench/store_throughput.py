"""Store writer throughput per backend: SQLite, PostgreSQL, and two writers on one PostgreSQL.

Each writer runs in a process of its own (as each instance of a fleet does) and is fed
request records with their bodies and decisions (bench.store_writer's, 50 containers,
3 providers, ids unique per writer) in two phases:

- burst: N records as fast as `record_request()` takes them, then wait until every one is
  committed. `rows/s` is N over the time from the first enqueue to the last commit (per
  writer; `total rows/s` is all writers' rows over the wall time from the common start to
  the last writer's last commit). `max lag s` is the largest `stats().lag_s` (age of the
  oldest uncommitted record) seen: how far behind a writer falls when the records come
  faster than the database takes them.
- paced: `--rate` records/s per writer for `--seconds`, in 1 ms ticks; `lag p50/p99/max` are
  `stats().lag_s` sampled each tick: the commit lag of a daemon under that load (the flush
  interval plus the commit's own time, when the database keeps up).

After each scenario the database must hold every record once and the spend rollups (kept
by trigger) must add up to the same count. PostgreSQL scenarios each get a fresh database on
the server at --pg (default $OMEN_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/
postgres), dropped afterwards; SQLite ones a file in a temporary folder.

    .venv/bin/python bench/store_throughput.py [--n 50000] [--rate 1000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
FLUSH_INTERVAL = 0.1  # the daemon's default server.writer_flush_interval


def pg_admin_url(given: str | None = None) -> str:
    return given or os.environ.get("OMEN_TEST_POSTGRES_URL", DEFAULT_PG)


@contextlib.contextmanager
def fresh_pg_database(admin_url: str, prefix: str = "omen_bench") -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; yields its URL, drops it after."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_stored(database: str, like: str = "%") -> tuple[int, int]:
    """(request rows whose id matches `like`, requests counted by the spend_daily rollup)."""
    sql_rows = "SELECT count(*) FROM requests WHERE id LIKE ?"
    sql_rollup = "SELECT coalesce(sum(requests), 0) FROM spend_daily"
    if database.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(database) as conn:
            rows = conn.execute(sql_rows.replace("?", "%s"), [like]).fetchone()
            rollup = conn.execute(sql_rollup).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(database)) as conn:
            rows = conn.execute(sql_rows, [like]).fetchone()
            rollup = conn.execute(sql_rollup).fetchone()
    assert rows is not None and rollup is not None
    return int(rows[0]), int(rollup[0])


# --- the writer process -----------------------------------------------------------------------


def child(database: str, instance: str, mode: str, n: int, rate: float, seconds: float) -> None:
    """One writer: build the records, say "ready", wait for "go", feed, print the result."""
    from bench.store_writer import BODY, make_records
    from omen_store import StoreWriter

    count = n if mode == "burst" else int(rate * seconds)
    records = [
        replace(record, id=f"{instance}-{i:08d}") for i, record in enumerate(make_records(count))
    ]
    gc.collect()
    gc.freeze()  # like a daemon's long-lived objects: no full collections over them
    writer = StoreWriter(database, instance=instance, flush_interval=FLUSH_INTERVAL)
    writer.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return
    result = (
        _burst(writer, records, BODY) if mode == "burst" else _paced(writer, records, BODY, rate)
    )
    writer.close(timeout=600)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def _burst(writer: Any, records: list[Any], body: dict[str, Any]) -> dict[str, Any]:
    record = writer.record_request
    stats = writer.stats
    n = len(records)
    began = time.perf_counter()
    max_lag = 0.0
    for i, rec in enumerate(records):
        record(rec, body)
        if i % 1000 == 0:
            max_lag = max(max_lag, stats().lag_s)
    enqueued = time.perf_counter()
    while (now := stats()).committed < n:
        if now.failed or now.failure:
            raise RuntimeError(f"writer failed: {now.failure or now.failed}")
        max_lag = max(max_lag, now.lag_s)
        time.sleep(0.005)
    done = time.perf_counter()
    return {
        "began": time.time() - (done - began),
        "done": time.time(),
        "rows": n,
        "seconds": done - began,
        "enqueue_s": enqueued - began,
        "max_lag_s": max_lag,
        "batches": stats().batches,
    }


def _paced(writer: Any, records: list[Any], body: dict[str, Any], rate: float) -> dict[str, Any]:
    record = writer.record_request
    stats = writer.stats
    n = len(records)
    tick = 0.001
    per_tick = rate * tick
    lags: list[float] = []
    began = time.perf_counter()
    sent = 0
    while sent < n:
        due = min(n, int((time.perf_counter() - began) * rate + per_tick))
        while sent < due:
            record(records[sent], body)
            sent += 1
        lags.append(stats().lag_s)
        time.sleep(tick)
    fed = time.perf_counter() - began
    while stats().committed < n:
        lags.append(stats().lag_s)
        time.sleep(tick)
    lags.sort()
    return {
        "rows": n,
        "achieved_rate": n / fed,
        "lag_p50_s": statistics.median(lags),
        "lag_p99_s": lags[int(len(lags) * 0.99)],
        "lag_max_s": lags[-1],
        "batches": stats().batches,
    }


# --- the parent -------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    backend: str  # "sqlite" | "postgresql"
    writers: int


def run_writers(
    database: str, writers: int, mode: str, n: int, rate: float, seconds: float
) -> list[dict[str, Any]]:
    """Start `writers` writer processes on `database`, release them together, collect."""
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH") or str(ROOT))
    procs = []
    try:
        for w in range(writers):
            args = (database, f"w{w}", mode, n, rate, seconds)
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(HERE), "--child", *map(str, args)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a writer process did not start")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if proc.wait(timeout=600) != 0 or not line:
                raise RuntimeError("a writer process failed")
            results.append(json.loads(line))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def database_for(scenario: Scenario, pg: str) -> Iterator[str]:
    if scenario.backend == "postgresql":
        with fresh_pg_database(pg) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="omen-throughput-") as tmp:
            yield str(Path(tmp) / "omen.db")


def measure(scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("burst", "paced"):
        with database_for(scenario, args.pg) as database:
            results = run_writers(database, scenario.writers, mode, args.n, args.rate, args.seconds)
            expected = sum(r["rows"] for r in results)
            rows, rollup = count_stored(database)
            if (rows, rollup) != (expected, expected):
                raise RuntimeError(
                    f"{scenario.name} {mode}: {expected} records, {rows} rows, "
                    f"{rollup} in the rollups"
                )
        if mode == "burst":
            wall = max(r["done"] for r in results) - min(r["began"] for r in results)
            out["rows_per_s"] = statistics.fmean(r["rows"] / r["seconds"] for r in results)
            out["total_rows_per_s"] = expected / wall
            out["max_lag_s"] = max(r["max_lag_s"] for r in results)
            out["rows_per_batch"] = expected / sum(r["batches"] for r in results)
        else:
            out["paced_rate"] = sum(r["achieved_rate"] for r in results)
            out["lag_p50_s"] = max(r["lag_p50_s"] for r in results)
            out["lag_p99_s"] = max(r["lag_p99_s"] for r in results)
            out["lag_max_s"] = max(r["lag_max_s"] for r in results)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        database, instance, mode, n, rate, seconds = sys.argv[2:8]
        sys.path.insert(1, str(ROOT))  # bench.store_writer; `store` from PYTHONPATH first
        child(database, instance, mode, int(n), float(rate), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="records per writer (burst)")
    parser.add_argument("--rate", type=float, default=1000, help="records/s per writer (paced)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the paced phase")
    parser.add_argument("--pg", default=pg_admin_url(), help="PostgreSQL server (admin URL)")
    parser.add_argument(
        "--only", choices=["sqlite", "postgresql"], help="one backend only (default: both)"
    )
    args = parser.parse_args()
    scenarios = [
        Scenario("sqlite", "sqlite", 1),
        Scenario("postgresql", "postgresql", 1),
        Scenario("postgresql ×2 writers", "postgresql", 2),
    ]
    if args.only:
        scenarios = [s for s in scenarios if s.backend == args.only]
    print(
        f"store writer throughput: burst of {args.n:,} records per writer (with bodies and "
        f"decisions), then {args.rate:g}/s per writer for {args.seconds:g} s; "
        f"flush interval {FLUSH_INTERVAL:g} s"
    )
    header = (
        f"{'scenario':<22} {'rows/s':>8} {'total/s':>8} {'rows/batch':>10} {'max lag s':>9} "
        f"{'paced/s':>8} {'lag p50':>8} {'lag p99':>8} {'lag max':>8}"
    )
    print(header)
    print("-" * len(header))
    for scenario in scenarios:
        r = measure(scenario, args)
        print(
            f"{scenario.name:<22} {r['rows_per_s']:>8,.0f} {r['total_rows_per_s']:>8,.0f} "
            f"{r['rows_per_batch']:>10,.0f} {r['max_lag_s']:>9.2f} {r['paced_rate']:>8,.0f} "
            f"{r['lag_p50_s']:>8.3f} {r['lag_p99_s']:>8.3f} {r['lag_max_s']:>8.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
