"""Many rows in few SQLite calls: `INSERT ... VALUES (...), (...), ...` in chunks.

Each sqlite3 call releases the GIL, and while the event loop is busy, getting it back can
take up to `sys.getswitchinterval()` (5 ms; StoreWriter lowers it to 1 ms). `executemany`,
one call per row, left the writer seconds behind the clients at 1,000 req/s
(bench/store_kill.py); a multi-row VALUES statement costs the same per row inside SQLite,
but one call per chunk.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

from omen_store.dbapi import Connection

# SQLite allows 32,766 parameters a statement; a chunk also stays a modest statement to parse.
_MAX_PARAMS = 8192
_MAX_ROWS = 256


def insert_rows(conn: Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
    """Run `head VALUES (?, ...), ... tail` over `rows`, all of one width, in chunks."""
    if not rows:
        return
    width = len(rows[0])
    chunk = max(1, min(_MAX_ROWS, _MAX_PARAMS // width))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        conn.execute(_statement(head, width, len(part), tail), list(itertools.chain(*part)))


@functools.lru_cache(maxsize=128)
def _statement(head: str, width: int, count: int, tail: str) -> str:
    # The text is the sqlite3 module's statement-cache key: full chunks reuse one prepared
    # statement; only the last, shorter chunk of a batch is parsed anew.
    group = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([group] * count)} {tail}"
