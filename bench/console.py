"""The console on a big store: time to first paint and the cost of one refresh, at 80×24.

    python -m bench.console [--rows 1000000] [--containers 50] [--polls 20]
        [--db sqlite] [--db postgresql://postgres@127.0.0.1:5432/omen_bench] [--explain]

Builds (once, cached) a store of `rows` request rows over 30 days and `containers`
containers with the demo's seeder: the SQLite one (`--db sqlite`, the default) under
.bench-cache/, through the real StoreWriter, so rollups and indexes are what the daemon
writes; a PostgreSQL one (`--db postgresql://…`, the database created if needed) as a fleet's,
its rows spread over three instance names and loaded by COPY (bench/fleet_store.py). Then it
runs the real OmenConsole headless at 80×24 against each (daemon down: the store is all there
is). For each view it reports the time from start to the first frame with data, the store
read of one poll (a worker thread: never on the event loop) and the event-loop time to apply
a poll to the screen; several `--db` side by side. `--explain` prints PostgreSQL's plan of
every query the console sends that reads the request table (a Seq Scan would be a bug).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import omen_tui.app
from bench.fleet_store import INSTANCES, fleet_store
from omen.demo.seed import seed_store
from omen_store import is_postgres
from omen_store.schema import connect_for_writing
from omen_tui.app import OmenConsole
from omen_tui.client import AdminClient
from omen_tui.model import VIEWS, Filter, Poller, Snapshot

CACHE = Path(__file__).resolve().parent.parent / ".bench-cache"
DOWN = "http://127.0.0.1:9"  # no daemon: the store is all there is


def store(rows: int, containers: int) -> Path:
    path = CACHE / f"console-{rows}-{containers}.db"
    if path.exists():
        # A store cached by an older Omen is migrated, as `omen serve` would do on start.
        connect_for_writing(path).close()
        return path
    CACHE.mkdir(exist_ok=True)
    started = time.perf_counter()
    print(f"building {path.name}: {rows:,} requests, {containers} containers …", flush=True)
    seed_store(path, rows=rows, containers=containers, days=30.0, seed=42)
    print(f"built in {time.perf_counter() - started:.0f} s ({path.stat().st_size / 1e6:.0f} MB)")
    return path


class Timed(OmenConsole):
    """The console, with a stopwatch on the two halves of a refresh and on each view's first
    frame with data."""

    CSS_PATH = str(Path(omen_tui.app.__file__).with_name("app.tcss"))  # relative to tui/, not here

    def __init__(self, database: Path | str) -> None:
        super().__init__(database, DOWN, None, readonly=True, poll_interval=0.05)
        self.started = time.perf_counter()
        self.painted: dict[str, float] = {}  # view -> when its first data was on screen
        self.apply_ms: list[float] = []
        self.read_ms: list[float] = []
        fetch = self.poller.fetch

        def timed_fetch(*args: object) -> object:
            began = time.perf_counter()
            try:
                return fetch(*args)  # type: ignore[arg-type]
            finally:
                self.read_ms.append((time.perf_counter() - began) * 1000)

        self.poller.fetch = timed_fetch  # type: ignore[method-assign]

    def _apply(self, snapshot: Snapshot) -> None:
        began = time.perf_counter()
        super()._apply(snapshot)
        now = time.perf_counter()
        self.apply_ms.append((now - began) * 1000)
        for view in VIEWS:
            if getattr(snapshot, view) is not None:
                self.painted.setdefault(view, now)


async def measure(
    database: Path | str, view: str, polls: int
) -> tuple[float, list[float], list[float]]:
    """One view's first paint (the overview's from the start: the store opened and read
    once; another's from its key), then the read and apply times of `polls` refreshes."""
    app = Timed(database)
    async with app.run_test(size=(80, 24)) as pilot:

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                await pilot.pause(0.01)

        since = app.started
        if view != VIEWS[0]:
            await until(lambda: VIEWS[0] in app.painted)
            since = time.perf_counter()
            await pilot.press(str(VIEWS.index(view) + 1))
        await until(lambda: view in app.painted)
        first = (app.painted[view] - since) * 1000
        app.apply_ms.clear()
        app.read_ms.clear()
        await until(lambda: len(app.apply_ms) >= polls)
    return first, app.read_ms, app.apply_ms


def plans(database: str) -> list[tuple[str, str]]:
    """(query, plan) of each distinct statement on the request table that the console's
    polls send — every view twice (the second poll is the incremental one), and the routing
    feed filtered by container and by instance."""
    poller = Poller(database, AdminClient(DOWN, None), tz=ZoneInfo("UTC"))
    conn: Any = poller.store()._conn
    send = conn.execute
    sent: dict[str, Sequence[Any]] = {}

    def recording(statement: str, params: Sequence[Any] = ()) -> Any:
        if " FROM requests" in statement and not statement.startswith("EXPLAIN"):
            sent.setdefault(" ".join(statement.split()), params)
        return send(statement, params)

    conn.execute = recording
    try:
        for view in VIEWS:
            for _ in range(2):
                poller.fetch(view, Filter())
        for filt in (Filter(container="app"), Filter(instance=INSTANCES[1])):
            poller.reset_feed()
            for _ in range(2):
                poller.fetch("routing", filt)
        return [
            (statement, "\n".join(row[0] for row in send(f"EXPLAIN {statement}", params)))
            for statement, params in sent.items()
        ]
    finally:
        poller.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--polls", type=int, default=20)
    parser.add_argument(
        "--db",
        action="append",
        metavar="sqlite|URL",
        help="the store(s) to measure: sqlite (cached under .bench-cache/, the default) or a "
        "postgresql:// URL (a fleet's store)",
    )
    parser.add_argument("--explain", action="store_true", help="PostgreSQL plans of the console")
    args = parser.parse_args()
    stores: dict[str, Path | str] = {}
    for db in args.db or ["sqlite"]:
        if is_postgres(db):
            stores["postgresql"] = fleet_store(db, rows=args.rows, containers=args.containers)
        elif db == "sqlite":
            stores["sqlite"] = store(args.rows, args.containers)
        else:
            parser.error(f"--db {db}: sqlite or a postgresql:// URL")
    if args.explain:
        for name, database in stores.items():
            if isinstance(database, str):
                for statement, plan in plans(database):
                    flag = "SEQ SCAN" if "Seq Scan on requests" in plan else "index"
                    print(f"\n[{name} · {flag}] {statement}\n{plan}")
    print(f"\nOmenConsole at 80×24 on {args.rows:,} rows / {args.containers} containers")
    print(
        f"{'view':<10} {'store':<11} {'first paint':>12} {'read p50':>9} {'read max':>9} "
        f"{'apply p50':>10} {'apply max':>10}"
    )
    for view in VIEWS:
        for name, database in stores.items():
            first, reads, applies = asyncio.run(measure(database, view, args.polls))
            print(
                f"{view:<10} {name:<11} {first:>10.0f}ms {statistics.median(reads):>7.1f}ms "
                f"{max(reads):>7.1f}ms {statistics.median(applies):>8.1f}ms "
                f"{max(applies):>8.1f}ms"
            )
    print(
        "\nfirst paint: the overview (the first view) from start to its first frame with data "
        "(the store opened and read once); the others from their key to their first frame."
        "\nread: one refresh's store queries, in a worker thread. apply: event-loop time to "
        "put one refresh on screen (both over the refreshes after the first paint)."
    )


if __name__ == "__main__":
    main()
