"""The store's tables on PostgreSQL: the same tables, columns and indexes as SQLite's, in
migrations numbered as SQLite's (store.schema), applied under an advisory lock so that the
instances of a fleet starting together migrate once.

The rollups and outcomes are kept by triggers here too — persistent ones, created by the
migrations (SQLite's are TEMP triggers of the writer's connection). The request trigger runs
once per INSERT statement over its new rows (a transition table) and upserts each bucket
once, sorted by key: a multi-row insert costs one upsert per bucket, not one per row, and two
instances updating the same buckets lock them in the same order. Feedback is rare and its
triggers run per row, as SQLite's do.
"""

from __future__ import annotations

import logging

from omen_store.pg import PgConnection

log = logging.getLogger("omen.store")

# Any fixed number: the advisory lock every instance takes to migrate.
_MIGRATION_LOCK = 0x6F6D656E  # "omen"

_COUNTERS_V1 = "requests, errors, prompt_tokens, completion_tokens, cost_usd, latency_ms_sum"
_SUMS_V1 = (
    "count(*), sum(CASE WHEN level = 'error' THEN 1 ELSE 0 END), sum(prompt_tokens), "
    "sum(completion_tokens), sum(cost_usd), sum(latency_ms)"
)
_CACHE_COUNTERS = ", cached_tokens, cache_write_tokens, cache_saved_usd"
_CACHE_SUMS = ", sum(cached_tokens), sum(cache_write_tokens), sum(cache_saved_usd)"


def _utc(seconds: int, pattern: str) -> str:
    """ts floored to `seconds`, named as store.rollups names it (UTC)."""
    floored = f"floor(ts / {seconds}) * {seconds}"
    return f"to_char(to_timestamp({floored}) AT TIME ZONE 'UTC', '{pattern}')"


def _roll_up(counters: str, sums: str) -> str:
    """The request trigger's function (created or replaced) for these rollup counters."""

    def add(table: str) -> str:
        names = counters.split(", ")
        return ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in names)

    return f"""
CREATE OR REPLACE FUNCTION omen_roll_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO spend_daily (day, container, provider, model, {counters})
    SELECT {_utc(86400, "YYYY-MM-DD")}, container, coalesce(provider, ''),
           coalesce(model, ''), {sums}
    FROM new_rows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (day, container, provider, model) DO UPDATE SET {add("spend_daily")};
    INSERT INTO spend_hourly (hour, container, provider, {counters})
    SELECT {_utc(3600, 'YYYY-MM-DD"T"HH24')}, container, coalesce(provider, ''), {sums}
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (hour, container, provider) DO UPDATE SET {add("spend_hourly")};
    INSERT INTO spend_minutely (minute, container, provider, {counters})
    SELECT (floor(ts / 60) * 60)::bigint, container, coalesce(provider, ''), {sums}
    FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (minute, container, provider) DO UPDATE SET {add("spend_minutely")};
    RETURN NULL;
END $$;
"""


_ROLL_UP_TRIGGER = """
CREATE TRIGGER requests_roll_up AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION omen_roll_up();
"""

# store.rollups.OUTCOME_TRIGGER, set-based: each attempt of a routed request counts for the
# model it went to; a decision that is not valid JSON contributes nothing.
_OUTCOMES = """
CREATE OR REPLACE FUNCTION omen_json(text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN $1::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION omen_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outcomes (container, intent, provider, model, requests, errors, escalations,
                          latency_ms_sum, updated)
    SELECT container, intent, provider, model, count(*),
           sum(CASE WHEN status >= 429 THEN 1 ELSE 0 END),
           sum(CASE WHEN status >= 429 AND ord < n THEN 1 ELSE 0 END),
           sum(CASE WHEN status < 400 THEN coalesce(ms, 0) ELSE 0 END),
           max(ts)
    FROM (
        SELECT r.container, r.intent, r.ts, a.value ->> 'provider' AS provider,
               a.value ->> 'model' AS model,
               CASE WHEN jsonb_typeof(a.value -> 'status') = 'number'
                    THEN (a.value ->> 'status')::float8 END AS status,
               CASE WHEN jsonb_typeof(a.value -> 'ms') = 'number'
                    THEN (a.value ->> 'ms')::float8 END AS ms,
               a.ord, jsonb_array_length(d.attempts) AS n
        FROM new_rows AS r
        CROSS JOIN LATERAL (
            SELECT CASE WHEN jsonb_typeof(omen_json(r.decision) -> 'attempts') = 'array'
                        THEN omen_json(r.decision) -> 'attempts' ELSE '[]'::jsonb END
                   AS attempts
        ) AS d
        CROSS JOIN LATERAL jsonb_array_elements(d.attempts) WITH ORDINALITY AS a(value, ord)
        WHERE r.intent IS NOT NULL AND r.decision IS NOT NULL
          AND r.kind NOT IN ('embeddings', 'count_tokens')
    ) AS attempt
    WHERE status <> 499 AND provider IS NOT NULL AND model IS NOT NULL
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (container, intent, provider, model) DO UPDATE SET
        requests = outcomes.requests + excluded.requests,
        errors = outcomes.errors + excluded.errors,
        escalations = outcomes.escalations + excluded.escalations,
        latency_ms_sum = outcomes.latency_ms_sum + excluded.latency_ms_sum,
        updated = greatest(outcomes.updated, excluded.updated);
    RETURN NULL;
END $$;
CREATE TRIGGER requests_outcomes AFTER INSERT ON requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION omen_outcomes();

CREATE OR REPLACE FUNCTION omen_feedback_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outcomes (container, intent, provider, model, feedback_n, feedback_sum,
                              updated)
        VALUES (NEW.container, NEW.intent, NEW.provider, NEW.model, 1, NEW.score, NEW.ts)
        ON CONFLICT (container, intent, provider, model) DO UPDATE SET
            feedback_n = outcomes.feedback_n + 1,
            feedback_sum = outcomes.feedback_sum + excluded.feedback_sum,
            updated = excluded.updated;
    ELSE
        UPDATE outcomes SET feedback_sum = feedback_sum + NEW.score - OLD.score,
                            updated = NEW.ts
        WHERE container = NEW.container AND intent = NEW.intent AND provider = NEW.provider
          AND model = NEW.model;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER feedback_outcomes AFTER INSERT OR UPDATE ON feedback
    FOR EACH ROW EXECUTE FUNCTION omen_feedback_outcomes();
"""

# One entry per store.schema.MIGRATIONS entry, bringing the database to the same version.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE requests (
        seq               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        id                TEXT NOT NULL UNIQUE,
        ts                DOUBLE PRECISION NOT NULL,
        container         TEXT NOT NULL,
        key_id            TEXT,
        kind              TEXT NOT NULL,
        requested_model   TEXT NOT NULL,
        model             TEXT,
        provider          TEXT,
        endpoint          TEXT,
        intent            TEXT,
        strategy          TEXT,
        stream            BIGINT NOT NULL,
        status            BIGINT NOT NULL,
        level             TEXT NOT NULL,
        latency_ms        DOUBLE PRECISION NOT NULL,
        ttft_ms           DOUBLE PRECISION,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens     BIGINT NOT NULL DEFAULT 0,
        reasoning_tokens  BIGINT NOT NULL DEFAULT 0,
        cost_usd          DOUBLE PRECISION NOT NULL DEFAULT 0,
        reason            TEXT NOT NULL DEFAULT '',
        decision          TEXT,
        error             TEXT,
        trace_id          TEXT,
        replay_of         TEXT,
        client_closed     BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX requests_ts ON requests (ts);
    CREATE INDEX requests_container_ts ON requests (container, ts);
    CREATE INDEX requests_provider_ts ON requests (provider, ts);
    CREATE INDEX requests_level_ts ON requests (level, ts) WHERE level <> 'info';
    CREATE INDEX requests_container_level_ts ON requests (container, level, ts)
        WHERE level <> 'info';
    CREATE INDEX requests_provider_level_ts ON requests (provider, level, ts)
        WHERE level <> 'info';
    CREATE INDEX requests_replay_of ON requests (replay_of, ts) WHERE replay_of IS NOT NULL;

    CREATE TABLE request_bodies (
        request_id TEXT PRIMARY KEY,
        ts         DOUBLE PRECISION NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE INDEX request_bodies_ts ON request_bodies (ts);

    CREATE TABLE health_samples (
        id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        ts         DOUBLE PRECISION NOT NULL,
        provider   TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        healthy    BIGINT NOT NULL,
        latency_ms DOUBLE PRECISION,
        error      TEXT,
        in_flight  BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX health_samples_ts ON health_samples (ts);
    CREATE INDEX health_samples_endpoint_ts ON health_samples (provider, endpoint, ts);
    CREATE TABLE health_latest (
        provider   TEXT NOT NULL,
        endpoint   TEXT NOT NULL,
        ts         DOUBLE PRECISION NOT NULL,
        healthy    BIGINT NOT NULL,
        latency_ms DOUBLE PRECISION,
        error      TEXT,
        in_flight  BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, endpoint)
    );

    CREATE TABLE gpu_samples (
        id               BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        ts               DOUBLE PRECISION NOT NULL,
        provider         TEXT NOT NULL,
        endpoint         TEXT NOT NULL,
        loaded_models    TEXT NOT NULL,
        vram_used_bytes  BIGINT,
        vram_total_bytes BIGINT,
        gpu_util_percent DOUBLE PRECISION,
        in_flight        BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX gpu_samples_ts ON gpu_samples (ts);
    CREATE INDEX gpu_samples_endpoint_ts ON gpu_samples (provider, endpoint, ts);
    CREATE TABLE gpu_latest (
        provider         TEXT NOT NULL,
        endpoint         TEXT NOT NULL,
        ts               DOUBLE PRECISION NOT NULL,
        loaded_models    TEXT NOT NULL,
        vram_used_bytes  BIGINT,
        vram_total_bytes BIGINT,
        gpu_util_percent DOUBLE PRECISION,
        in_flight        BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, endpoint)
    );

    CREATE TABLE drains (
        provider TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        drained  BIGINT NOT NULL,
        reason   TEXT,
        actor    TEXT NOT NULL,
        ts       DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (provider, endpoint)
    );

    CREATE TABLE budget_overrides (
        container TEXT PRIMARY KEY,
        daily     DOUBLE PRECISION,
        weekly    DOUBLE PRECISION,
        monthly   DOUBLE PRECISION,
        ts        DOUBLE PRECISION NOT NULL,
        actor     TEXT NOT NULL
    );
    CREATE TABLE budget_changes (
        id        BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        ts        DOUBLE PRECISION NOT NULL,
        container TEXT NOT NULL,
        before    TEXT NOT NULL,
        after     TEXT NOT NULL,
        actor     TEXT NOT NULL
    );
    CREATE INDEX budget_changes_container_ts ON budget_changes (container, ts);

    CREATE TABLE audit (
        id     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        ts     DOUBLE PRECISION NOT NULL,
        actor  TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        before TEXT,
        after  TEXT,
        detail TEXT
    );
    CREATE INDEX audit_ts ON audit (ts);

    CREATE TABLE spend_daily (
        day               TEXT NOT NULL,
        container         TEXT NOT NULL,
        provider          TEXT NOT NULL,
        model             TEXT NOT NULL,
        requests          BIGINT NOT NULL,
        errors            BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_usd          DOUBLE PRECISION NOT NULL,
        latency_ms_sum    DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (day, container, provider, model)
    );
    CREATE INDEX spend_daily_container_day ON spend_daily (container, day);

    CREATE TABLE spend_hourly (
        hour              TEXT NOT NULL,
        container         TEXT NOT NULL,
        provider          TEXT NOT NULL,
        requests          BIGINT NOT NULL,
        errors            BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_usd          DOUBLE PRECISION NOT NULL,
        latency_ms_sum    DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (hour, container, provider)
    );
    CREATE INDEX spend_hourly_container_hour ON spend_hourly (container, hour);

    CREATE TABLE spend_minutely (
        minute            BIGINT NOT NULL,
        container         TEXT NOT NULL,
        provider          TEXT NOT NULL,
        requests          BIGINT NOT NULL,
        errors            BIGINT NOT NULL,
        prompt_tokens     BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_usd          DOUBLE PRECISION NOT NULL,
        latency_ms_sum    DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (minute, container, provider)
    );
    """
    + _roll_up(_COUNTERS_V1, _SUMS_V1)
    + _ROLL_UP_TRIGGER,
    # 2: prompt-cache economics and the agent session (no rows to backfill on a new store).
    """
    ALTER TABLE requests ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN cache_saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE requests ADD COLUMN session TEXT;
    ALTER TABLE spend_daily ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE spend_daily ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE spend_daily ADD COLUMN cache_saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE spend_hourly ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE spend_hourly ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE spend_hourly ADD COLUMN cache_saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE spend_minutely ADD COLUMN cached_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE spend_minutely ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE spend_minutely ADD COLUMN cache_saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    """
    + _roll_up(_COUNTERS_V1 + _CACHE_COUNTERS, _SUMS_V1 + _CACHE_SUMS),
    """
    CREATE TABLE spilled_batches (
        id TEXT PRIMARY KEY,
        ts DOUBLE PRECISION NOT NULL
    );
    """,
    """
    CREATE TABLE outcomes (
        container      TEXT NOT NULL,
        intent         TEXT NOT NULL,
        provider       TEXT NOT NULL,
        model          TEXT NOT NULL,
        requests       BIGINT NOT NULL DEFAULT 0,
        errors         BIGINT NOT NULL DEFAULT 0,
        escalations    BIGINT NOT NULL DEFAULT 0,
        latency_ms_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
        feedback_n     BIGINT NOT NULL DEFAULT 0,
        feedback_sum   DOUBLE PRECISION NOT NULL DEFAULT 0,
        updated        DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (container, intent, provider, model)
    );
    CREATE TABLE feedback (
        request_id TEXT PRIMARY KEY,
        ts         DOUBLE PRECISION NOT NULL,
        score      DOUBLE PRECISION NOT NULL,
        actor      TEXT NOT NULL,
        container  TEXT NOT NULL,
        intent     TEXT NOT NULL,
        provider   TEXT NOT NULL,
        model      TEXT NOT NULL
    );
    CREATE INDEX feedback_ts ON feedback (ts);
    """
    + _OUTCOMES,
    """
    CREATE INDEX requests_session_ts ON requests (ts, container, session)
        WHERE session IS NOT NULL;
    """,
    # 6: every row names the instance that wrote it (a fleet shares one store).
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
    ALTER TABLE health_latest ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE health_latest DROP CONSTRAINT health_latest_pkey;
    ALTER TABLE health_latest ADD PRIMARY KEY (instance, provider, endpoint);
    ALTER TABLE gpu_latest ADD COLUMN instance TEXT NOT NULL DEFAULT '';
    ALTER TABLE gpu_latest DROP CONSTRAINT gpu_latest_pkey;
    ALTER TABLE gpu_latest ADD PRIMARY KEY (instance, provider, endpoint);
    """,
    """
    ALTER TABLE audit ADD COLUMN role TEXT NOT NULL DEFAULT '';
    CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        digest     TEXT NOT NULL UNIQUE,
        container  TEXT,
        scope      TEXT NOT NULL,
        name       TEXT,
        created_ts DOUBLE PRECISION NOT NULL,
        created_by TEXT NOT NULL,
        revoked_ts DOUBLE PRECISION,
        revoked_by TEXT,
        instance   TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX api_keys_container ON api_keys (container);
    """,
]


TABLES = (
    "requests",
    "request_bodies",
    "health_samples",
    "health_latest",
    "gpu_samples",
    "gpu_latest",
    "drains",
    "budget_overrides",
    "budget_changes",
    "audit",
    "spend_daily",
    "spend_hourly",
    "spend_minutely",
    "spilled_batches",
    "outcomes",
    "feedback",
    "api_keys",
)


def migrate(conn: PgConnection, latest: int) -> int:
    """Apply pending migrations in one transaction under the fleet's migration lock; returns
    the version now in the database."""
    conn.execute("BEGIN")
    try:
        conn.execute("SET LOCAL statement_timeout = 0")  # an index over millions of rows
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS omen_schema (version INTEGER NOT NULL)")
        version = schema_version(conn)
        if version > latest:
            raise ValueError(
                f"it was written by a newer omen (store schema version {version}; this omen "
                f"knows up to {latest})"
            )
        for number, script in enumerate(MIGRATIONS[version:latest], start=version + 1):
            conn.executescript(script)
            conn.execute("DELETE FROM omen_schema")
            conn.execute("INSERT INTO omen_schema (version) VALUES (?)", (number,))
            log.info("store: PostgreSQL schema migrated to version %d", number)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return schema_version(conn)


def schema_version(conn: PgConnection) -> int:
    """The applied version; 0 for a database Omen has not migrated."""
    row = conn.execute(
        "SELECT version FROM omen_schema" if _has_schema_table(conn) else "SELECT 0 WHERE false"
    ).fetchone()
    return int(row[0]) if row else 0


def _has_schema_table(conn: PgConnection) -> bool:
    row = conn.execute("SELECT to_regclass('omen_schema') IS NOT NULL").fetchone()
    return bool(row and row[0])
