"""Spend rollups: spend_daily, spend_hourly and spend_minutely, kept by a trigger.

The writer's connection carries a TEMP trigger that adds every inserted request row to its
three buckets, in the same statement (so the same transaction) as the row: the rollups
always equal sums over the request table, whatever path a row takes in (a batch, one record
at a time, a spill-file replay), and summing costs the writer thread no Python and no GIL.
Buckets are by the request's start time, in UTC, floored exactly as `day_name` and
`hour_name` floor it (SQLite's date functions would round ts to the millisecond first).
"""

from __future__ import annotations

import sqlite3
import time

_COUNTERS = (
    "requests, errors, prompt_tokens, completion_tokens, cost_usd, latency_ms_sum, "
    "cached_tokens, cache_write_tokens, cache_saved_usd"
)
_DELTAS = (
    "1, NEW.level = 'error', NEW.prompt_tokens, NEW.completion_tokens, NEW.cost_usd, "
    "NEW.latency_ms, NEW.cached_tokens, NEW.cache_write_tokens, NEW.cache_saved_usd"
)
_ADD = ", ".join(f"{name} = {name} + excluded.{name}" for name in _COUNTERS.split(", "))


def _floor(seconds: int) -> str:
    """SQL for NEW.ts floored to a multiple of `seconds`, as an exact integer."""
    quotient = f"CAST(NEW.ts / {seconds} AS INTEGER)"
    return f"(({quotient} - ({quotient} * {seconds} > NEW.ts)) * {seconds})"


_WHO = "NEW.container, coalesce(NEW.provider, '')"
ROLLUP_TRIGGER = f"""
    CREATE TEMP TRIGGER IF NOT EXISTS requests_roll_up AFTER INSERT ON main.requests
    BEGIN
        INSERT INTO spend_daily (day, container, provider, model, {_COUNTERS})
        VALUES (strftime('%Y-%m-%d', {_floor(86400)}, 'unixepoch'), {_WHO},
                coalesce(NEW.model, ''), {_DELTAS})
        ON CONFLICT (day, container, provider, model) DO UPDATE SET {_ADD};
        INSERT INTO spend_hourly (hour, container, provider, {_COUNTERS})
        VALUES (strftime('%Y-%m-%dT%H', {_floor(3600)}, 'unixepoch'), {_WHO}, {_DELTAS})
        ON CONFLICT (hour, container, provider) DO UPDATE SET {_ADD};
        INSERT INTO spend_minutely (minute, container, provider, {_COUNTERS})
        VALUES ({_floor(60)}, {_WHO}, {_DELTAS})
        ON CONFLICT (minute, container, provider) DO UPDATE SET {_ADD};
    END
"""


# Outcomes (routing.adaptive), from each routed request's attempts (decision.attempts): every
# attempt counts a request for the model it went to; one answered 429 or 5xx an error, and an
# escalation when the request moved on to another candidate; a successful one its time. An
# attempt the client walked away from (499) says nothing about the model. Token counts and
# embeddings are not outcomes. A decision that is not valid JSON contributes nothing (rather
# than failing the row's insert).
_ATTEMPTS = (
    "json_each(CASE WHEN json_valid(NEW.decision) THEN NEW.decision ELSE '{}' END, '$.attempts')"
)
_STATUS = "json_extract(a.value, '$.status')"
OUTCOME_TRIGGER = f"""
    CREATE TEMP TRIGGER IF NOT EXISTS requests_outcomes AFTER INSERT ON main.requests
    WHEN NEW.intent IS NOT NULL AND NEW.decision IS NOT NULL
         AND NEW.kind NOT IN ('embeddings', 'count_tokens')
    BEGIN
        INSERT INTO outcomes (container, intent, provider, model, requests, errors, escalations,
                              latency_ms_sum, updated)
        SELECT NEW.container, NEW.intent, json_extract(a.value, '$.provider'),
               json_extract(a.value, '$.model'), 1, {_STATUS} >= 429,
               {_STATUS} >= 429 AND a.key < json_array_length(NEW.decision, '$.attempts') - 1,
               CASE WHEN {_STATUS} < 400 THEN coalesce(json_extract(a.value, '$.ms'), 0)
                    ELSE 0 END,
               NEW.ts
        FROM {_ATTEMPTS} AS a
        WHERE {_STATUS} <> 499 AND json_extract(a.value, '$.provider') IS NOT NULL
              AND json_extract(a.value, '$.model') IS NOT NULL
        ON CONFLICT (container, intent, provider, model) DO UPDATE SET
            requests = requests + excluded.requests, errors = errors + excluded.errors,
            escalations = escalations + excluded.escalations,
            latency_ms_sum = latency_ms_sum + excluded.latency_ms_sum,
            updated = max(updated, excluded.updated);
    END
"""
FEEDBACK_TRIGGERS = (
    """
    CREATE TEMP TRIGGER IF NOT EXISTS feedback_outcomes AFTER INSERT ON main.feedback
    BEGIN
        INSERT INTO outcomes (container, intent, provider, model, feedback_n, feedback_sum,
                              updated)
        VALUES (NEW.container, NEW.intent, NEW.provider, NEW.model, 1, NEW.score, NEW.ts)
        ON CONFLICT (container, intent, provider, model) DO UPDATE SET
            feedback_n = feedback_n + 1, feedback_sum = feedback_sum + excluded.feedback_sum,
            updated = excluded.updated;
    END
    """,
    """
    CREATE TEMP TRIGGER IF NOT EXISTS feedback_outcomes_changed AFTER UPDATE ON main.feedback
    BEGIN
        UPDATE outcomes SET feedback_sum = feedback_sum + NEW.score - OLD.score,
                            updated = NEW.ts
        WHERE container = NEW.container AND intent = NEW.intent AND provider = NEW.provider
          AND model = NEW.model;
    END
    """,
)


def keep_rollups(conn: sqlite3.Connection) -> None:
    """Make every request row this connection inserts count in the rollups and outcomes."""
    conn.execute(ROLLUP_TRIGGER)
    conn.execute(OUTCOME_TRIGGER)
    for trigger in FEEDBACK_TRIGGERS:
        conn.execute(trigger)


_day_names: dict[int, str] = {}
_hour_names: dict[int, str] = {}


def day_name(ts: float) -> str:
    """'YYYY-MM-DD' of a unix time, in UTC."""
    number = int(ts // 86400)
    name = _day_names.get(number)
    if name is None:
        name = _day_names[number] = time.strftime("%Y-%m-%d", time.gmtime(number * 86400))
    return name


def hour_name(ts: float) -> str:
    """'YYYY-MM-DDTHH' of a unix time, in UTC."""
    number = int(ts // 3600)
    name = _hour_names.get(number)
    if name is None:
        if len(_hour_names) > 10_000:  # a long-lived daemon must not grow this forever
            _hour_names.clear()
        name = _hour_names[number] = time.strftime("%Y-%m-%dT%H", time.gmtime(number * 3600))
    return name
