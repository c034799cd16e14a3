"""The store's tables and their migrations; `PRAGMA user_version` is the applied version
(PostgreSQL's twins of each migration are in store.pg_schema).

Every query the console and CLI run is bounded by one of these indexes; the spend rollups
exist so that nothing has to aggregate the request table. Migrations only ever append.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from omen_store import pg_schema
from omen_store.dbapi import Connection
from omen_store.errors import StoreUnusableError, in_words
from omen_store.pg import PgConnection, display, is_postgres
from omen_store.rollups import keep_rollups

BUSY_TIMEOUT_MS = 5000

# Each entry is one migration script; its position + 1 is the version it brings the file to.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE requests (
        seq               INTEGER PRIMARY KEY,  -- the rowid: insertion order, used by follow
        id                TEXT NOT NULL UNIQUE,
        ts                REAL NOT NULL,        -- unix time the request started
        container         TEXT NOT NULL,
        key_id            TEXT,
        kind              TEXT NOT NULL,
        requested_model   TEXT NOT NULL,
        model             TEXT,
        provider          TEXT,
        endpoint          TEXT,
        intent            TEXT,
        strategy          TEXT,
        stream            INTEGER NOT NULL,
        status            INTEGER NOT NULL,
        level             TEXT NOT NULL,        -- info | warn | error
        latency_ms        REAL NOT NULL,
        ttft_ms           REAL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cached_tokens     INTEGER NOT NULL DEFAULT 0,
        reasoning_tokens  INTEGER NOT NULL DEFAULT 0,
        cost_usd          REAL NOT NULL DEFAULT 0,
        reason            TEXT NOT NULL DEFAULT '',
        decision          TEXT,                 -- JSON
        error             TEXT,
        trace_id          TEXT,
        replay_of         TEXT,
        client_closed     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX requests_ts ON requests (ts);
    CREATE INDEX requests_container_ts ON requests (container, ts);
    CREATE INDEX requests_provider_ts ON requests (provider, ts);
    -- Warnings and errors are the minority: partial indexes keep them cheap to write and
    -- let a level filter (alone or with a container or provider) walk only those rows.
    CREATE INDEX requests_level_ts ON requests (level, ts) WHERE level <> 'info';
    CREATE INDEX requests_container_level_ts ON requests (container, level, ts)
        WHERE level <> 'info';
    CREATE INDEX requests_provider_level_ts ON requests (provider, level, ts)
        WHERE level <> 'info';
    CREATE INDEX requests_replay_of ON requests (replay_of, ts) WHERE replay_of IS NOT NULL;

    CREATE TABLE request_bodies (
        request_id TEXT PRIMARY KEY,
        ts         REAL NOT NULL,
        body       TEXT NOT NULL               -- JSON, credentials redacted
    );
    CREATE INDEX request_bodies_ts ON request_bodies (ts);

    CREATE TABLE health_samples (
        id         INTEGER PRIMARY KEY,
        ts         REAL NOT NULL,
        provider   TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        healthy    INTEGER NOT NULL,
        latency_ms REAL,
        error      TEXT,
        in_flight  INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX health_samples_ts ON health_samples (ts);
    CREATE INDEX health_samples_endpoint_ts ON health_samples (provider, endpoint, ts);
    -- The newest sample per endpoint, kept by the writer, so "latest" never scans history.
    CREATE TABLE health_latest (
        provider   TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        ts         REAL NOT NULL,
        healthy    INTEGER NOT NULL,
        latency_ms REAL,
        error      TEXT,
        in_flight  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, endpoint)
    );

    CREATE TABLE gpu_samples (
        id               INTEGER PRIMARY KEY,
        ts               REAL NOT NULL,
        provider         TEXT NOT NULL,
        endpoint         TEXT NOT NULL,
        loaded_models    TEXT NOT NULL,         -- JSON list
        vram_used_bytes  INTEGER,
        vram_total_bytes INTEGER,
        gpu_util_percent REAL,
        in_flight        INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX gpu_samples_ts ON gpu_samples (ts);
    CREATE INDEX gpu_samples_endpoint_ts ON gpu_samples (provider, endpoint, ts);
    CREATE TABLE gpu_latest (
        provider         TEXT NOT NULL,
        endpoint         TEXT NOT NULL,
        ts               REAL NOT NULL,
        loaded_models    TEXT NOT NULL,
        vram_used_bytes  INTEGER,
        vram_total_bytes INTEGER,
        gpu_util_percent REAL,
        in_flight        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, endpoint)
    );

    CREATE TABLE drains (
        provider TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        drained  INTEGER NOT NULL,
        reason   TEXT,
        actor    TEXT NOT NULL,
        ts       REAL NOT NULL,
        PRIMARY KEY (provider, endpoint)
    );

    CREATE TABLE budget_overrides (
        container TEXT PRIMARY KEY,
        daily     REAL,                         -- NULL: the configured budget applies
        weekly    REAL,
        monthly   REAL,
        ts        REAL NOT NULL,
        actor     TEXT NOT NULL
    );
    CREATE TABLE budget_changes (
        id        INTEGER PRIMARY KEY,
        ts        REAL NOT NULL,
        container TEXT NOT NULL,
        before    TEXT NOT NULL,                -- JSON
        after     TEXT NOT NULL,                -- JSON
        actor     TEXT NOT NULL
    );
    CREATE INDEX budget_changes_container_ts ON budget_changes (container, ts);

    CREATE TABLE audit (
        id     INTEGER PRIMARY KEY,
        ts     REAL NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before TEXT,                            -- JSON
        after  TEXT,                            -- JSON
        detail TEXT
    );
    CREATE INDEX audit_ts ON audit (ts);

    -- Spend rollups, upserted in the same transaction as the request rows they count.
    -- provider and model are '' for requests refused before any provider was chosen.
    -- errors counts level 'error' (5xx or an upstream error); 4xx are the caller's.
    CREATE TABLE spend_daily (
        day               TEXT NOT NULL,        -- 'YYYY-MM-DD', UTC, of the request start
        container         TEXT NOT NULL,
        provider          TEXT NOT NULL,
        model             TEXT NOT NULL,
        requests          INTEGER NOT NULL,
        errors            INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd          REAL NOT NULL,
        latency_ms_sum    REAL NOT NULL,
        PRIMARY KEY (day, container, provider, model)
    ) WITHOUT ROWID;
    CREATE INDEX spend_daily_container_day ON spend_daily (container, day);

    CREATE TABLE spend_hourly (
        hour              TEXT NOT NULL,        -- 'YYYY-MM-DDTHH', UTC
        container         TEXT NOT NULL,
        provider          TEXT NOT NULL,
        requests          INTEGER NOT NULL,
        errors            INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd          REAL NOT NULL,
        latency_ms_sum    REAL NOT NULL,
        PRIMARY KEY (hour, container, provider)
    ) WITHOUT ROWID;
    CREATE INDEX spend_hourly_container_hour ON spend_hourly (container, hour);

    -- Per-minute traffic for sparklines and burn rates; pruned with the samples.
    CREATE TABLE spend_minutely (
        minute            INTEGER NOT NULL,     -- unix time of the minute's start
        container         TEXT NOT NULL,
        provider          TEXT NOT NULL,
        requests          INTEGER NOT NULL,
        errors            INTEGER NOT NULL,
        prompt_tokens     INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd          REAL NOT NULL,
        latency_ms_sum    REAL NOT NULL,
        PRIMARY KEY (minute, container, provider)
    ) WITHOUT ROWID;
    """,
    # 2: prompt-cache economics and the agent session on each request; the rollups count
    # cache reads, cache writes and what the reads saved, so the console reads no requests.
    # Adding a column with a constant default rewrites nothing; only the backfill reads the
    # request table (once, the rows that had cache reads), so the rollups keep equalling it.
    """
    ALTER TABLE requests ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN cache_saved_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN session TEXT;

    ALTER TABLE spend_daily ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE spend_daily ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE spend_daily ADD COLUMN cache_saved_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE spend_hourly ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE spend_hourly ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE spend_hourly ADD COLUMN cache_saved_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE spend_minutely ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE spend_minutely ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE spend_minutely ADD COLUMN cache_saved_usd REAL NOT NULL DEFAULT 0;

    -- cached_tokens was recorded before this version: carry it into the rollups. One pass
    -- over the rows by hour feeds the daily and hourly rollups; the minutely one holds only
    -- the last few days, so only those rows are read again.
    CREATE TEMP TABLE cache_backfill AS
        SELECT CAST(ts / 3600 AS INTEGER) * 3600 AS hour_start, container,
               coalesce(provider, '') AS provider, coalesce(model, '') AS model,
               sum(cached_tokens) AS cached_tokens
        FROM requests WHERE cached_tokens <> 0 GROUP BY 1, 2, 3, 4;
    UPDATE spend_daily SET cached_tokens = b.cached_tokens
        FROM (
            SELECT strftime('%Y-%m-%d', hour_start, 'unixepoch') AS day, container, provider,
                   model, sum(cached_tokens) AS cached_tokens
            FROM temp.cache_backfill GROUP BY 1, 2, 3, 4
        ) AS b
        WHERE spend_daily.day = b.day AND spend_daily.container = b.container
          AND spend_daily.provider = b.provider AND spend_daily.model = b.model;
    UPDATE spend_hourly SET cached_tokens = b.cached_tokens
        FROM (
            SELECT strftime('%Y-%m-%dT%H', hour_start, 'unixepoch') AS hour, container,
                   provider, sum(cached_tokens) AS cached_tokens
            FROM temp.cache_backfill GROUP BY 1, 2, 3
        ) AS b
        WHERE spend_hourly.hour = b.hour AND spend_hourly.container = b.container
          AND spend_hourly.provider = b.provider;
    DROP TABLE temp.cache_backfill;
    UPDATE spend_minutely SET cached_tokens = b.cached_tokens
        FROM (
            SELECT CAST(ts / 60 AS INTEGER) * 60 AS minute, container,
                   coalesce(provider, '') AS provider, sum(cached_tokens) AS cached_tokens
            FROM requests
            WHERE ts >= (SELECT min(minute) FROM spend_minutely) AND cached_tokens <> 0
            GROUP BY 1, 2, 3
        ) AS b
        WHERE spend_minutely.minute = b.minute AND spend_minutely.container = b.container
          AND spend_minutely.provider = b.provider;
    """,
    # 3: batches replayed from the spill file (store.spill), recorded in the transaction that
    # replays them, so a crash in the middle of a replay replays no batch twice.
    """
    CREATE TABLE spilled_batches (
        id TEXT PRIMARY KEY,
        ts REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: what happened after routing decided, for `routing.adaptive`: per container, intent
    # and model, requests, errors, escalations (a failed attempt the request moved on from),
    # latency and client feedback — kept by triggers (store.rollups), so they always equal
    # the request and feedback tables. Only rows from now on count: no backfill.
    """
    CREATE TABLE outcomes (
        container      TEXT NOT NULL,
        intent         TEXT NOT NULL,
        provider       TEXT NOT NULL,
        model          TEXT NOT NULL,
        requests       INTEGER NOT NULL DEFAULT 0,
        errors         INTEGER NOT NULL DEFAULT 0,
        escalations    INTEGER NOT NULL DEFAULT 0,
        latency_ms_sum REAL NOT NULL DEFAULT 0,
        feedback_n     INTEGER NOT NULL DEFAULT 0,
        feedback_sum   REAL NOT NULL DEFAULT 0,
        updated        REAL NOT NULL,
        PRIMARY KEY (container, intent, provider, model)
    ) WITHOUT ROWID;

    CREATE TABLE feedback (
        request_id TEXT PRIMARY KEY,
        ts         REAL NOT NULL,
        score      REAL NOT NULL,
        actor      TEXT NOT NULL,
        container  TEXT NOT NULL,
        intent     TEXT NOT NULL,
        provider   TEXT NOT NULL,
        model      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX feedback_ts ON feedback (ts);
    """,
    # 5: the console counts today's agent sessions per container: a partial index holding only
    # the rows that have a session, covering the query, so the first count of the day reads
    # those index entries and no table rows.
    """
    CREATE INDEX requests_session_ts ON requests (ts, container, session)
        WHERE session IS NOT NULL;
    """,
    # 6: every row names the instance that wrote it (server.instance): a fleet of instances
    # shares one PostgreSQL store, and a SQLite file keeps the same columns. The newest health
    # and GPU sample are kept per instance (each sees the endpoints from where it runs).
    # Rows written before this version name no instance ('').
    """
    ALTER TABLE requests ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    CREATE INDEX requests_instance_ts ON requests (instance, ts);
    ALTER TABLE health_samples ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE gpu_samples ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE budget_changes ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE drains ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE budget_overrides ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE feedback ADD COLUMN instance TEXT NOT NULL DEFAULT '';

    CREATE TABLE health_latest_6 (
        instance   TEXT NOT NULL,
        provider   TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        ts         REAL NOT NULL,
        healthy    INTEGER NOT NULL,
        latency_ms REAL,
        error      TEXT,
        in_flight  INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (instance, provider, endpoint)
    );
    INSERT INTO health_latest_6
        SELECT '', provider, endpoint, ts, healthy, latency_ms, error, in_flight
        FROM health_latest;
    DROP TABLE health_latest;
    ALTER TABLE health_latest_6 RENAME TO health_latest;
    CREATE TABLE gpu_latest_6 (
        instance         TEXT NOT NULL,
        provider         TEXT NOT NULL,
        endpoint         TEXT NOT NULL,
        ts               REAL NOT NULL,
        loaded_models    TEXT NOT NULL,
        vram_used_bytes  INTEGER,
        vram_total_bytes INTEGER,
        gpu_util_percent REAL,
        in_flight        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (instance, provider, endpoint)
    );
    INSERT INTO gpu_latest_6
        SELECT '', provider, endpoint, ts, loaded_models, vram_used_bytes, vram_total_bytes,
               gpu_util_percent, in_flight
        FROM gpu_latest;
    DROP TABLE gpu_latest;
    ALTER TABLE gpu_latest_6 RENAME TO gpu_latest;
    """,
    # 7: operators by name (an OIDC sign-in's e-mail or subject as the actor, its role here)
    # and API keys made through the admin API without a restart: only each key's SHA-256
    # digest is stored (`id` is the key id requests and audit rows name); a revoked key keeps
    # its row, so its past requests stay attributable.
    """
    ALTER TABLE audit ADD COLUMN role TEXT NOT NULL DEFAULT '';
    CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        digest     TEXT NOT NULL UNIQUE,
        container  TEXT,
        scope      TEXT NOT NULL,
        name       TEXT,
        created_ts REAL NOT NULL,
        created_by TEXT NOT NULL,
        revoked_ts REAL,
        revoked_by TEXT,
        instance   TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX api_keys_container ON api_keys (container);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
assert len(pg_schema.MIGRATIONS) == SCHEMA_VERSION, "each migration has its PostgreSQL twin"


def connect_for_writing(target: str | Path, *, name: str = "omen") -> Connection:
    """Open the store for the writer, migrated: a SQLite file (created if needed, in WAL
    mode) or a PostgreSQL database (store.pg; `name` is the connection's application name)."""
    if is_postgres(target):
        conn = PgConnection(str(target), name=name)
        try:
            pg_schema.migrate(conn, SCHEMA_VERSION)
        except BaseException:
            conn.close()
            raise
        return conn
    return _connect_sqlite(target)


def _connect_sqlite(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, cached_statements=64
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a commit survives a process crash; only power loss can undo one.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("PRAGMA temp_store = MEMORY")
    migrate(conn)
    keep_rollups(conn)
    return conn


def check_store(path: str | Path) -> None:
    """What `omen serve` does before serving: open the store as the writer will (creating and
    migrating it), read every table once and commit a write that changes nothing.

    Raises StoreUnusableError saying why in words. Corruption in pages no query touches here
    shows later, as a write failure (`StoreWriter.failure`).
    """
    if is_postgres(path):
        _check_postgres(str(path))
        return
    path = Path(path)
    above = next((folder for folder in path.parents if folder.exists()), None)
    if above is not None and not above.is_dir():
        raise StoreUnusableError(str(path), f"{above} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnusableError(
            str(path), f"cannot create its folder {path.parent}: {in_words(exc)}"
        ) from None
    if path.is_dir():
        raise StoreUnusableError(str(path), "it is a directory")
    conn = None
    try:
        conn = connect_for_writing(path)
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            conn.execute(f'SELECT * FROM "{table}" LIMIT 1').fetchall()
        conn.execute("SELECT max(seq) FROM requests").fetchone()  # the pages writes append to
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO spilled_batches (id, ts) VALUES ('check', 0) ON CONFLICT DO NOTHING"
        )
        conn.execute("DELETE FROM spilled_batches WHERE id = 'check'")
        conn.execute("COMMIT")
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnusableError(str(path), in_words(exc) + _why_not_writable(path)) from None
    finally:
        if conn is not None:
            conn.close()


def _check_postgres(url: str) -> None:
    """check_store for a PostgreSQL URL: connect, migrate, read every table, write nothing."""
    conn = None
    try:
        conn = connect_for_writing(url, name="omen check")
        for table in pg_schema.TABLES:
            conn.execute(f'SELECT * FROM "{table}" LIMIT 1').fetchall()
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO spilled_batches (id, ts) VALUES ('check', 0) ON CONFLICT DO NOTHING"
        )
        conn.execute("DELETE FROM spilled_batches WHERE id = 'check'")
        conn.execute("COMMIT")
    except Exception as exc:
        raise StoreUnusableError(display(url), in_words(exc)) from None
    finally:
        if conn is not None:
            conn.close()


def _why_not_writable(path: Path) -> str:
    """SQLite does not say why it cannot open or write a file; the file system may."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"; {folder} is on a read-only file system"
    except OSError:
        return ""
    for target in (path, folder):
        if target.exists() and not os.access(target, os.W_OK):
            return f"; no permission to write {target}"
    return ""


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations in one transaction; returns the version now in the file.

    The version is re-read under the write lock, so two processes opening the same new file
    at once do not both migrate it.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = user_version(conn)
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"it was written by a newer omen (store schema version {version}; this omen "
                f"knows up to {SCHEMA_VERSION})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in split_statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return user_version(conn)


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements (executescript would commit our transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:80]}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
