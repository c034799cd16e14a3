"""`omen whatif` on a big store: seconds and rows/s to re-route 100k … 1M stored decisions.

    python -m bench.whatif [--rows 1000000] [--containers 50] [--sizes 100000,1000000]

The store is the console benchmark's (bench/console.py: the demo's seeder through the real
StoreWriter, rows spread evenly over 30 days), kept under .bench-cache/. When that benchmark
has already built one of this size, it is copied and migrated instead of seeded again (a
million rows take minutes to seed). Each size is the newest N rows, selected by `--since`
the way an operator would, so the ts index does the bounding. Prices come from a config
written beside the store with the demo upstreams' prices, so every option is priced.
"""

from __future__ import annotations

import argparse
import io
import resource
import shutil
import sqlite3
import time
from contextlib import redirect_stdout
from pathlib import Path

from omen.config import load_config
from omen.demo.seed import seed_store
from omen.whatif import Rerouter, WhatIf, report_text, scan
from omen_store.schema import SCHEMA_VERSION, connect_for_writing

CACHE = Path(__file__).resolve().parent.parent / ".bench-cache"
DAYS = 30.0

CONFIG = """
[providers.ollama]
models = ["deepseek-coder:6.7b", "llama3.1:8b"]

[providers.openai]
models = ["gpt-4o", "gpt-4o-mini"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
[providers.openai.model_info."gpt-4o-mini"]
cost_per_1k_input_tokens = 0.00015
cost_per_1k_output_tokens = 0.0006

[providers.xai]
models = ["grok-2"]
cost_per_1k_input_tokens = 0.002
cost_per_1k_output_tokens = 0.01
"""

SCENARIOS: list[tuple[str, WhatIf]] = [
    ("as recorded", WhatIf()),
    ("cost-optimized", WhatIf(strategy="cost-optimized")),
    ("latency-first, no local", WhatIf(strategy="latency-first", prefer_local=False)),
    ("quality-first", WhatIf(strategy="quality-first")),
    ("balanced, local priced", WhatIf(prices={("ollama", "*"): (0.0005, 0.0005)})),
]


def store(rows: int, containers: int) -> Path:
    """This benchmark's store of `rows` requests, built or copied once, at today's schema."""
    path = CACHE / f"whatif-{rows}-{containers}.db"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        console = CACHE / f"console-{rows}-{containers}.db"
        started = time.perf_counter()
        if console.exists():
            print(f"copying {console.name} → {path.name} …", flush=True)
            shutil.copyfile(console, path)
        else:
            print(f"building {path.name}: {rows:,} requests, {containers} containers …")
            seed_store(path, rows=rows, containers=containers, days=DAYS, seed=42)
        print(f"ready in {time.perf_counter() - started:.0f} s", flush=True)
    conn = sqlite3.connect(path)
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.close()
    if version < SCHEMA_VERSION:  # as `omen serve` would: migrations only append
        connect_for_writing(path).close()
    return path


def newest_since(path: Path, rows: int) -> tuple[float, int]:
    """The start time that selects about the newest `rows` rows, and how many it selects."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        found = conn.execute(
            "SELECT ts FROM requests ORDER BY ts DESC LIMIT 1 OFFSET ?", [rows - 1]
        ).fetchone()
        since = float(found[0]) if found else 0.0
        count = conn.execute("SELECT count(*) FROM requests WHERE ts >= ?", [since]).fetchone()
        return since, int(count[0])
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the store")
    parser.add_argument("--containers", type=int, default=50, help="containers in the store")
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="comma-separated row counts to re-route (the newest N rows each)",
    )
    args = parser.parse_args()
    database = store(args.rows, args.containers)
    config_path = CACHE / "whatif.toml"
    config_path.write_text(CONFIG)
    config = load_config(config_path).config
    sizes = sorted({min(int(s), args.rows) for s in args.sizes.split(",") if s.strip()})

    print(f"\nomen whatif on {database.name} ({args.rows:,} rows, {args.containers} containers)")
    print(f"{'rows':>10} {'what-if':<26} {'seconds':>8} {'rows/s':>9} {'changed':>9}")
    for size in sizes:
        since, count = newest_since(database, size)
        for name, whatif in SCENARIOS:
            rerouter = Rerouter(config, whatif)
            began = time.perf_counter()
            scan(database, rerouter, since_ts=since, container=None)
            with redirect_stdout(io.StringIO()):
                print(report_text(rerouter, since, None))
            seconds = time.perf_counter() - began
            total = rerouter.total()
            print(
                f"{count:>10,} {name:<26} {seconds:>8.2f} {count / seconds:>9,.0f} "
                f"{total.changed:>9,}",
                flush=True,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\npeak resident memory of this process: {peak:.0f} MiB (rows are streamed in "
        "chunks: it does not grow with the period).\nseconds: scan of the period's "
        "rows (ts index), re-ranking every auto decision with routing's `rank`, and the "
        "table; the first run of a size also pays for reading the file from disk."
    )


if __name__ == "__main__":
    main()
