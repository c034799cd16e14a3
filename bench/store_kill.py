"""kill -9 under load: how many acknowledged records does a StoreWriter lose?

A child process plays a busy daemon: its main thread (the event loop) spins through each
request's share of CPU and hands the writer one request record (with its body) at `rate` per
second; after `record_request()` returns, it bumps an acknowledged-count in a shared memory
page (no syscall, so the loop never lets go of the GIL for it, like uvloop serving). After
`seconds` the parent sends SIGKILL, reads the count, opens the database and counts the
acknowledged records that are not there. The writer's promise is to lose at most about one
flush interval of records: `bound` is rate × flush_interval. `max lag` is the largest
age of an uncommitted record the child saw in `stats()` (0 when the writer has no stats).

    .venv/bin/python bench/store_kill.py [--seconds 4] [--runs 1] [--busy 1.0]
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/store_kill.py   # A/B

`--busy` is the share of each request's time slot the loop spends computing (1.0: a
saturated loop that never idles, the worst case for the writer's share of the GIL).

The store is a SQLite file in a temporary folder by default. `--backend postgresql` runs the
same measurement on a fresh PostgreSQL database per run on the server at `--pg` (default
$OMEN_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/postgres), dropped after;
`--db postgresql://...` uses that database instead (kept; each run's ids are its own). On
PostgreSQL the count waits for the killed writer's server session to end first, so that a
commit the server was still finishing is counted.

    .venv/bin/python bench/store_kill.py --backend postgresql
    .venv/bin/python bench/store_kill.py --db postgresql://omen@db-host:5432/omen
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import mmap
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
_COUNTERS = struct.Struct("qd")  # acknowledged records, max lag seen (s)
_WRITER_NAME = "omen-writer kill"  # application_name of the child's PostgreSQL session


@dataclass
class KillResult:
    rate: float  # asked for, records/s
    flush_interval: float
    seconds: float  # from the first record to the kill
    acknowledged: int
    lost: int
    max_lag_s: float

    @property
    def achieved_rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0

    @property
    def bound(self) -> float:
        """One flush interval of records at the rate achieved."""
        return self.achieved_rate * self.flush_interval


def measure(
    rate: float,
    flush_interval: float,
    seconds: float,
    *,
    busy: float = 1.0,
    pythonpath: str | None = None,
    backend: str = "sqlite",
    db: str | None = None,
    pg: str | None = None,
) -> KillResult:
    """Run the child for `seconds` of load, kill -9 it, count the acknowledged records lost.

    `backend`: "sqlite" (a file in a temporary folder) or "postgresql" (`db` when given,
    else a fresh database on the server `pg`, dropped afterwards)."""
    with (
        tempfile.TemporaryDirectory(prefix="omen-kill-") as tmp,
        _store(backend, db, pg, tmp) as store,
    ):
        tag = uuid.uuid4().hex[:8]  # this run's ids: a kept database holds other runs' too
        counters = Path(tmp) / "acked"
        counters.write_bytes(bytes(mmap.PAGESIZE))
        path = pythonpath or os.environ.get("PYTHONPATH") or str(ROOT)
        arguments = (store, counters, rate, flush_interval, busy, seconds + 30, tag)
        child = subprocess.Popen(
            [sys.executable, str(HERE), "--child", *map(str, arguments)],
            stdout=subprocess.PIPE,
            # A PostgreSQL store's spill file goes to the state folder: keep it in tmp.
            env=dict(os.environ, PYTHONPATH=path, XDG_STATE_HOME=tmp),
            cwd=tmp,
        )
        try:
            assert child.stdout is not None
            if child.stdout.readline().strip() != b"started":
                raise RuntimeError("the load child did not start")
            began = time.monotonic()
            time.sleep(seconds)
            child.send_signal(signal.SIGKILL)
            elapsed = time.monotonic() - began
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        acknowledged, max_lag = _COUNTERS.unpack_from(counters.read_bytes())
        stored = _stored_ids(store, f"kill-{tag}-")
    lost = sum(1 for n in range(acknowledged) if n not in stored)
    return KillResult(rate, flush_interval, elapsed, acknowledged, lost, max_lag)


@contextlib.contextmanager
def _store(backend: str, db: str | None, pg: str | None, tmp: str) -> Iterator[str]:
    if db is not None:
        yield db
    elif backend == "postgresql":
        if str(ROOT) not in sys.path:
            sys.path.append(str(ROOT))
        from bench.store_throughput import fresh_pg_database, pg_admin_url

        with fresh_pg_database(pg_admin_url(pg), prefix="omen_kill") as url:
            yield url
    else:
        yield str(Path(tmp) / "omen.db")


def _stored_ids(store: str, prefix: str) -> set[int]:
    """The numbers of the records stored under `prefix` (ids are prefix + number)."""
    sql = "SELECT id FROM requests WHERE id LIKE ?"
    if not store.startswith(("postgresql://", "postgres://")):
        with contextlib.closing(sqlite3.connect(store)) as conn:
            rows = conn.execute(sql, (prefix + "%",)).fetchall()
        return {int(row[0].rsplit("-", 1)[1]) for row in rows}
    import psycopg

    with psycopg.connect(store, autocommit=True) as conn:
        # The server ends the killed client's session once it sees the socket close; a COMMIT
        # it was running finishes first. Count after that, not before.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alive = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (_WRITER_NAME,),
            ).fetchone()
            if alive is None or alive[0] == 0:
                break
            time.sleep(0.02)
        rows = conn.execute(sql.replace("?", "%s"), (prefix + "%",)).fetchall()
    return {int(row[0].rsplit("-", 1)[1]) for row in rows}


def child(
    database: str,
    counters: str,
    rate: float,
    flush_interval: float,
    busy: float,
    limit: float,
    tag: str,
) -> None:
    from bench.store_writer import BODY, make_records
    from omen_store import StoreWriter

    records = [
        replace(record, id=f"kill-{tag}-{n}", ts=time.time())
        for n, record in enumerate(make_records(int(rate * limit)))
    ]
    gc.collect()
    gc.freeze()  # like a daemon's long-lived objects: no full collections over them
    # The instance names the PostgreSQL session (application_name): see _stored_ids.
    writer = StoreWriter(database, instance="kill", flush_interval=flush_interval)
    writer.start()
    stats = getattr(writer, "stats", None)
    with open(counters, "r+b") as handle:
        shared = mmap.mmap(handle.fileno(), mmap.PAGESIZE)
    pack = _COUNTERS.pack_into
    clock = time.perf_counter
    period = 1.0 / rate
    max_lag = 0.0
    sys.stdout.write("started\n")
    sys.stdout.flush()
    start = clock()
    for n, record in enumerate(records):
        slot = start + n * period
        work_until = slot + busy * period
        while clock() < work_until:  # the loop's own work for this request: pure Python
            pass
        idle = slot + period - clock()
        if idle > 0:
            time.sleep(idle)
        writer.record_request(record, BODY)
        if n % 50 == 0 and stats is not None:
            max_lag = max(max_lag, getattr(stats(), "lag_s", 0.0))
        pack(shared, 0, n + 1, max_lag)


def child_main(argv: list[str]) -> None:
    store, counters, rate, flush, busy, limit, tag = argv
    sys.path.append(str(ROOT))  # bench.store_writer; `store` from PYTHONPATH first
    child(store, counters, float(rate), float(flush), float(busy), float(limit), tag)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:9])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="load before the kill")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario")
    parser.add_argument("--busy", type=float, default=1.0, help="loop CPU share, 0..1")
    parser.add_argument(
        "--backend",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="sqlite: a temporary file; postgresql: a fresh database on --pg per run",
    )
    parser.add_argument("--db", metavar="URL", help="this PostgreSQL database instead (kept)")
    parser.add_argument("--pg", metavar="URL", help="PostgreSQL server for --backend postgresql")
    args = parser.parse_args()
    if args.db is not None:
        if not args.db.startswith(("postgresql://", "postgres://")):
            parser.error("--db takes a postgresql:// URL (SQLite runs use a temporary file)")
        args.backend = "postgresql"
    scenarios = [(250, 0.1), (500, 0.1), (1000, 0.1), (1000, 0.05), (1000, 0.25), (2000, 0.1)]
    header = (
        f"{'rate/s':>7} {'achieved':>8} {'flush s':>7} {'acked':>7} {'stored':>7} {'lost':>6} "
        f"{'lost s':>7} {'bound':>6} {'max lag s':>9}"
    )
    where = "a given database" if args.db else "a fresh database per run"
    store = f"PostgreSQL ({where})" if args.backend == "postgresql" else "SQLite"
    print(
        f"{store}: kill -9 after {args.seconds:g} s of load, loop busy {args.busy:.0%}, with bodies"
    )
    print(header)
    print("-" * len(header))
    for rate, flush_interval in scenarios:
        for _ in range(args.runs):
            r = measure(
                rate,
                flush_interval,
                args.seconds,
                busy=args.busy,
                backend=args.backend,
                db=args.db,
                pg=args.pg,
            )
            print(
                f"{rate:>7} {r.achieved_rate:>8.0f} {flush_interval:>7.2f} {r.acknowledged:>7} "
                f"{r.acknowledged - r.lost:>7} {r.lost:>6} {r.lost / r.achieved_rate:>7.3f} "
                f"{r.bound:>6.0f} {r.max_lag_s:>9.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
