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
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
_COUNTERS = struct.Struct("qd")  # acknowledged records, max lag seen (s)


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
) -> KillResult:
    """Run the child for `seconds` of load, kill -9 it, count the acknowledged records lost."""
    with tempfile.TemporaryDirectory(prefix="omen-kill-") as tmp:
        database = Path(tmp) / "omen.db"
        counters = Path(tmp) / "acked"
        counters.write_bytes(bytes(mmap.PAGESIZE))
        path = pythonpath or os.environ.get("PYTHONPATH") or str(ROOT)
        arguments = (database, counters, rate, flush_interval, busy, seconds + 30)
        child = subprocess.Popen(
            [sys.executable, str(HERE), "--child", *map(str, arguments)],
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=path),
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
        conn = sqlite3.connect(database)
        try:
            stored = {
                int(row[0].rsplit("-", 1)[1])
                for row in conn.execute("SELECT id FROM requests WHERE id LIKE 'kill-%'")
            }
        finally:
            conn.close()
    lost = sum(1 for n in range(acknowledged) if n not in stored)
    return KillResult(rate, flush_interval, elapsed, acknowledged, lost, max_lag)


def child(
    database: str, counters: str, rate: float, flush_interval: float, busy: float, limit: float
) -> None:
    from bench.store_writer import BODY, make_records
    from omen_store import StoreWriter

    records = [
        replace(record, id=f"kill-{n}", ts=time.time())
        for n, record in enumerate(make_records(int(rate * limit)))
    ]
    gc.collect()
    gc.freeze()  # like a daemon's long-lived objects: no full collections over them
    writer = StoreWriter(database, flush_interval=flush_interval)
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


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        database, counters, rate, flush, busy, limit = sys.argv[2:8]
        sys.path.append(str(ROOT))  # bench.store_writer; `store` from PYTHONPATH first
        child(database, counters, float(rate), float(flush), float(busy), float(limit))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0, help="load before the kill")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario")
    parser.add_argument("--busy", type=float, default=1.0, help="loop CPU share, 0..1")
    args = parser.parse_args()
    scenarios = [(250, 0.1), (500, 0.1), (1000, 0.1), (1000, 0.05), (1000, 0.25), (2000, 0.1)]
    header = (
        f"{'rate/s':>7} {'achieved':>8} {'flush s':>7} {'acked':>7} {'lost':>6} "
        f"{'lost s':>7} {'bound':>6} {'max lag s':>9}"
    )
    print(f"kill -9 after {args.seconds:g} s of load, loop busy {args.busy:.0%}, with bodies")
    print(header)
    print("-" * len(header))
    for rate, flush in scenarios:
        for _ in range(args.runs):
            r = measure(rate, flush, args.seconds, busy=args.busy)
            print(
                f"{rate:>7} {r.achieved_rate:>8.0f} {flush:>7.2f} {r.acknowledged:>7} "
                f"{r.lost:>6} {r.lost / r.achieved_rate:>7.3f} {r.bound:>6.0f} "
                f"{r.max_lag_s:>9.3f}"
            )


if __name__ == "__main__":
    main()
