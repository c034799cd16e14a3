"""PostgreSQL for a fleet: one store shared by several Omen instances.

The writer and the reader were written against sqlite3's connection; `PgConnection` gives
them the same small surface (`execute`, `executemany`, `in_transaction`, `close`) over a
psycopg 3 connection, so that batching, spilling, retries and every query stay one code path.
The store's SQL is written in the common subset of both databases; `to_pg` rewrites the few
spellings that differ (placeholders, SQLite's index hints, `BEGIN IMMEDIATE`, `rowid`), once
per statement text. The schema and its migrations are in `store.pg_schema`.

Autocommit is on, as sqlite3's `isolation_level=None`: a transaction is exactly what the
store opens with `BEGIN` and ends with `COMMIT`/`ROLLBACK`. A connection the server dropped
is reopened on the next statement outside a transaction (inside one, the statement fails and
the writer's backlog holds the batch until a retry begins a new transaction).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.types.string import StrDumperUnknown

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 5
# The advisory lock every writer of a fleet takes for each batch (store.writer._write).
COMMIT_ORDER_LOCK = 0x6F6D656E01
# A statement that runs this long is a stuck server, not a slow one: the writer's backlog
# takes over (and the console says so) instead of the writer thread waiting forever.
STATEMENT_TIMEOUT_MS = 30_000


def is_postgres(target: object) -> bool:
    """Whether a store location is a PostgreSQL URL (anything else is a SQLite path)."""
    return isinstance(target, str) and target.startswith(SCHEMES)


def display(target: object) -> str:
    """A store location fit for logs and screens: a URL's password (in its user part or as a
    `password=` parameter) is never shown."""
    text = str(target)
    if not is_postgres(text):
        return text
    parts = urlsplit(text)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        name = user.split(":", 1)[0]
        netloc = f"{name}:***@{host}" if name else f"***@{host}"
    query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class _BoolAsInt(Dumper):
    """Booleans go in as 0/1, as SQLite stores them: the columns stay integers on both."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: bool) -> bytes:
        return b"1" if obj else b"0"


class _TextWithoutNul(StrDumperUnknown):
    """PostgreSQL text cannot hold NUL (SQLite's can): an upstream's garbled error text is
    kept with U+FFFD in its place rather than the whole record refused."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


_HINTS = re.compile(r"\s+(NOT INDEXED|INDEXED BY \w+)\b")
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@functools.lru_cache(maxsize=512)
def to_pg(sql: str) -> str:
    """The store's SQL in PostgreSQL's spelling (see the module docstring)."""
    sql = _HINTS.sub("", sql)
    sql = sql.replace("BEGIN IMMEDIATE", "BEGIN").replace("GROUP BY +", "GROUP BY ")
    sql = sql.replace("COLLATE BINARY", 'COLLATE "C"')
    sql = re.sub(r"\browid\b", "ctid", sql)
    sql = sql.replace("%", "%%")
    out: list[str] = []
    for piece in re.split(r"('[^']*')", sql):  # placeholders only outside string literals
        if piece.startswith("'") and piece.endswith("'") and len(piece) >= 2:
            out.append(piece)
            continue
        piece = piece.replace("?", "%s")
        out.append(_NAMED.sub(r"%(\1)s", piece))
    return "".join(out)


class PgConnection:
    """The part of sqlite3.Connection the store uses, over one psycopg connection."""

    def __init__(self, url: str, *, read_only: bool = False, name: str = "omen") -> None:
        self.url = url
        self.read_only = read_only
        self.name = name
        self._conn: psycopg.Connection[Any] | None = None
        self._in_transaction = False  # between our BEGIN and COMMIT/ROLLBACK
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=self.name,
        )
        conn.adapters.register_dumper(bool, _BoolAsInt)
        conn.adapters.register_dumper(str, _TextWithoutNul)
        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        if self.read_only:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if self._in_transaction:  # its statements so far are gone with the connection
                raise psycopg.OperationalError("the connection to PostgreSQL was lost")
            self._conn = conn = self._connect()
        return conn

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> psycopg.Cursor[Any]:
        statement = to_pg(sql)
        word = statement.lstrip()[:8].upper()
        if word.startswith(("COMMIT", "ROLLBACK")):
            self._in_transaction = False  # whatever happens next, that transaction is over
        conn = self._live()
        cursor = conn.execute(statement, params if params else [])
        if word.startswith("BEGIN"):
            self._in_transaction = True
        return cursor

    def executemany(self, sql: str, rows: Sequence[Any]) -> None:
        with self._live().cursor() as cursor:
            cursor.executemany(to_pg(sql), rows)

    def stream(
        self, sql: str, params: Sequence[Any], chunk: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """A large result `chunk` rows at a time, through a server-side cursor in one
        read-only transaction (one snapshot; the client never holds the whole result)."""
        conn = self._live()
        with conn.transaction(), conn.cursor(name="omen_stream") as cursor:
            cursor.execute(to_pg(sql), params)
            while rows := cursor.fetchmany(chunk):
                yield rows

    def executescript(self, script: str) -> None:
        """Run several statements as they are written (migrations; no parameters)."""
        self._live().execute(script.encode())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
