"""The console on a big store: time to first paint and the cost of one refresh, at 80×24.

    python -m bench.console [--rows 1000000] [--containers 50] [--polls 20]

Builds (once, cached under .bench-cache/) a store of `rows` request rows over 30 days and
`containers` containers with the demo's seeder — through the real StoreWriter, so rollups
and indexes are what the daemon writes — then runs the real OmenConsole headless at 80×24
against it (daemon down: the store is all there is). For each view it reports the time from
start to the first frame with data, the store read of one poll (a worker thread: never on
the event loop) and the event-loop time to apply a poll to the screen.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import omen_tui.app
from omen.demo.seed import seed_store
from omen_store.schema import connect_for_writing
from omen_tui.app import OmenConsole
from omen_tui.model import VIEWS

CACHE = Path(__file__).resolve().parent.parent / ".bench-cache"


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
    """The console, with a stopwatch on the two halves of a refresh."""

    CSS_PATH = str(Path(omen_tui.app.__file__).with_name("app.tcss"))  # relative to tui/, not here

    def __init__(self, database: Path) -> None:
        super().__init__(database, "http://127.0.0.1:9", None, readonly=True, poll_interval=0.05)
        self.started = time.perf_counter()
        self.first_paint: float | None = None
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

    def _apply(self, snapshot: object) -> None:
        began = time.perf_counter()
        super()._apply(snapshot)  # type: ignore[arg-type]
        now = time.perf_counter()
        self.apply_ms.append((now - began) * 1000)
        if self.first_paint is None:
            self.first_paint = (now - self.started) * 1000


async def measure(database: Path, view: str, polls: int) -> tuple[float, list[float], list[float]]:
    app = Timed(database)
    async with app.run_test(size=(80, 24)) as pilot:
        if view != VIEWS[0]:
            await pilot.press(str(VIEWS.index(view) + 1))
            app.apply_ms.clear()
            app.read_ms.clear()
        while len(app.apply_ms) < polls:
            await pilot.pause(0.05)
    assert app.first_paint is not None
    return app.first_paint, app.read_ms, app.apply_ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    database = store(args.rows, args.containers)
    print(f"\nOmenConsole at 80×24 on {args.rows:,} rows / {args.containers} containers")
    print(
        f"{'view':<10} {'first paint':>12} {'read p50':>9} {'read max':>9} "
        f"{'apply p50':>10} {'apply max':>10}"
    )
    for view in VIEWS:
        first, reads, applies = asyncio.run(measure(database, view, args.polls))
        print(
            f"{view:<10} {first:>10.0f}ms {statistics.median(reads):>7.1f}ms {max(reads):>7.1f}ms "
            f"{statistics.median(applies):>8.1f}ms {max(applies):>8.1f}ms"
        )
    print(
        "\nfirst paint: from start to the first frame with data (the overview is the first "
        "view; other views: their first poll after switching).\nread: one poll's store "
        "queries, in a worker thread. apply: event-loop time to put one poll on screen."
    )


if __name__ == "__main__":
    main()
