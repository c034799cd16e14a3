"""Errors the store raises, and the databases' failures in an operator's words."""

from __future__ import annotations

import sqlite3

import psycopg
from psycopg import errors as pg_errors


class StoreError(Exception):
    """The store cannot be read as asked."""


class StoreMissingError(StoreError):
    """There is no store file (yet) at the configured path."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no store at {path} — has `omen serve` run with this config?")
        self.path = path


class StoreUnusableError(StoreError):
    """The store cannot be opened for writing; `reason` says why, in words."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot open the store at {path}: {reason}")
        self.path = path
        self.reason = reason


# Primary SQLite result codes (the low byte of an extended code) and what they mean here.
_MEANINGS = {
    3: "permission denied",  # SQLITE_PERM
    8: "the database is read-only",  # SQLITE_READONLY
    10: "disk I/O error",  # SQLITE_IOERR
    11: "the database file is corrupt",  # SQLITE_CORRUPT
    13: "the disk is full",  # SQLITE_FULL
    14: "cannot open the database file",  # SQLITE_CANTOPEN
    23: "permission denied",  # SQLITE_AUTH
    26: "the file is not a database",  # SQLITE_NOTADB
}


def in_words(exc: BaseException) -> str:
    """One line on why a store operation failed, SQLite's own message in brackets."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, psycopg.Error):
        # The first line says it (which server refused and why); the rest are hints.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first.removeprefix("connection failed: ").replace("FATAL:  ", "")
    message = str(exc) or type(exc).__name__
    code = getattr(exc, "sqlite_errorcode", None)
    meaning = _MEANINGS.get(code & 0xFF) if isinstance(code, int) else None
    if meaning is None:
        return message
    if message.lower() in meaning or meaning in message.lower():  # SQLite's own words
        return meaning
    return f"{meaning} ({message})"


def is_store_fault(exc: BaseException) -> bool:
    """Whether the database itself failed (full, read-only, corrupt, I/O), as opposed to one
    record it refused (a constraint, a value it cannot bind) or a lock another writer holds."""
    if isinstance(
        exc,
        sqlite3.IntegrityError
        | sqlite3.DataError
        | sqlite3.InterfaceError
        | sqlite3.ProgrammingError,
    ):
        return False
    if isinstance(exc, sqlite3.DatabaseError):
        return not is_busy(exc)
    if isinstance(exc, psycopg.Error):
        # Connection lost, server gone or shutting down, disk full, read-only, out of
        # resources: the database's trouble. A value or a constraint it refused: the record's.
        return not is_busy(exc) and not isinstance(
            exc,
            psycopg.IntegrityError
            | psycopg.DataError
            | psycopg.ProgrammingError
            | psycopg.NotSupportedError,
        )
    return isinstance(exc, OSError | MemoryError)


def is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock (or, on PostgreSQL, two instances' transactions
    deadlocked and this one was chosen to yield): wait and retry, it is nobody's fault."""
    if isinstance(exc, _PG_BUSY):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _BUSY_CODES


_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_PG_BUSY = (
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
)
