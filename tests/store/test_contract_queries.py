"""The store's read contract, the same on SQLite and PostgreSQL: filters, follow, spend rollups
equal to sums over the request rows, windows, sessions, outcomes, streaming. Every expectation
is computed from the records written, never from the database under test."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Generator, Iterable, Sequence
from typing import Any

import pytest

from omen_store import (
    FeedbackRecord,
    OutcomeRow,
    RequestRecord,
    SpendTotals,
    StoreReader,
    day_name,
    hour_name,
)
from omen_store.batch import REQUEST_COLUMNS, Batch
from omen_store.schema import connect_for_writing
from omen_store.writer import _write
from tests.store.conftest import WriterFactory
from tests.store.helpers import DAY, HOUR, NOW, query, request

# -- expectations from the records themselves ----------------------------------------------

COUNTERS = (
    "requests, errors, prompt_tokens, completion_tokens, cost_usd, latency_ms_sum, "
    "cached_tokens, cache_write_tokens, cache_saved_usd"
)


def counters(rec: RequestRecord) -> list[float]:
    return [
        1,
        int(rec.level == "error"),
        rec.prompt_tokens,
        rec.completion_tokens,
        rec.cost_usd,
        rec.latency_ms,
        rec.cached_tokens,
        rec.cache_write_tokens,
        rec.cache_saved_usd,
    ]


def summed(records: Iterable[RequestRecord]) -> list[float]:
    total = [0.0] * 9
    for rec in records:
        total = [a + b for a, b in zip(total, counters(rec), strict=True)]
    return total


def totals_list(totals: SpendTotals) -> list[float]:
    return [getattr(totals, name) for name in COUNTERS.split(", ")]


def minute_of(ts: float) -> int:
    return int(ts // 60) * 60


def grouped(records: Iterable[RequestRecord], key: Any) -> dict[tuple[Any, ...], list[float]]:
    groups: dict[tuple[Any, ...], list[RequestRecord]] = defaultdict(list)
    for rec in records:
        groups[key(rec)].append(rec)
    return {k: summed(v) for k, v in groups.items()}


def assert_same_totals(
    actual: dict[tuple[Any, ...], Sequence[float]], expected: dict[tuple[Any, ...], list[float]]
) -> None:
    assert sorted(actual) == sorted(expected)
    for key, values in expected.items():
        assert list(actual[key]) == pytest.approx(values, rel=1e-9, abs=1e-12), key


def rollup(target: str, table: str, keys: int) -> dict[tuple[Any, ...], Sequence[float]]:
    rows = query(target, f"SELECT {_KEYS[table]}, {COUNTERS} FROM {table}")
    return {tuple(row[:keys]): row[keys:] for row in rows}


_KEYS = {
    "spend_daily": "day, container, provider, model",
    "spend_hourly": "hour, container, provider",
    "spend_minutely": "minute, container, provider",
}


# -- a store of 300 requests -----------------------------------------------------------------


@pytest.fixture
def filled(make_writer: WriterFactory, store_target: str) -> str:
    writer = make_writer(instance="omen-1")
    for n in range(300):
        writer.record_request(
            request(
                n,
                container=("app", "web", "batch")[n % 3],
                provider=("ollama", "openai")[n % 2],
                status=(200, 200, 200, 429, 503)[n % 5],
                replay_of="req-0" if n in (150, 151) else None,
            )
        )
    assert writer.flush()
    return store_target


def test_recent_requests_filter_by_container_provider_level_since_and_instance(
    filled: str,
) -> None:
    with StoreReader(filled) as reader:
        newest = reader.recent_requests(limit=5)
        assert [row.id for row in newest] == [f"req-{n}" for n in (299, 298, 297, 296, 295)]
        assert newest[0].decision == {"candidates": [{"provider": "ollama", "score": 0.2}]}
        assert newest[0].rowid == 300 and newest[0].instance == "omen-1"
        assert len(reader.recent_requests()) == 100  # the default limit

        web = reader.recent_requests(container="web", limit=1000)
        assert [row.id for row in web] == [f"req-{n}" for n in range(298, -1, -3)]

        openai_web = reader.recent_requests(container="web", provider="openai", limit=1000)
        assert [row.id for row in openai_web] == [
            f"req-{n}" for n in range(299, -1, -1) if n % 3 == 1 and n % 2 == 1
        ]

        warn_up = reader.recent_requests(level="warn", limit=1000)
        assert [row.id for row in warn_up] == [
            f"req-{n}" for n in range(299, -1, -1) if n % 5 in (3, 4)
        ]
        errors = reader.recent_requests(level="error", container="app", limit=1000)
        assert [row.id for row in errors] == [
            f"req-{n}" for n in range(299, -1, -1) if n % 5 == 4 and n % 3 == 0
        ]
        assert len(reader.recent_requests(level="info", limit=1000)) == 300
        assert [row.id for row in reader.recent_requests(level="warn", limit=3)] == [
            "req-299",
            "req-298",
            "req-294",
        ]
        since = reader.recent_requests(since_ts=NOW + 290, limit=1000)
        assert [row.id for row in since] == [f"req-{n}" for n in range(299, 289, -1)]
        both = reader.recent_requests(since_ts=NOW + 280, level="error", provider="ollama")
        assert [row.id for row in both] == ["req-294", "req-284"]

        assert len(reader.recent_requests(instance="omen-1", limit=1000)) == 300
        assert reader.recent_requests(instance="omen-2") == []

        assert [row.id for row in reader.replays_of("req-0")] == ["req-150", "req-151"]
        assert [row.id for row in reader.replays_of("req-0", limit=1)] == ["req-150"]


def test_rows_started_together_come_newest_inserted_first(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    for n in range(5):
        writer.record_request(request(n, ts=NOW))  # one start time
    writer.record_request(request(5, ts=NOW - 1))
    assert writer.flush()
    with StoreReader(store_target) as reader:
        assert [row.id for row in reader.recent_requests()] == [
            "req-4",
            "req-3",
            "req-2",
            "req-1",
            "req-0",
            "req-5",
        ]


def test_follow_returns_rows_after_the_last_seen_rowid_oldest_first(
    filled: str, make_writer: WriterFactory
) -> None:
    with StoreReader(filled) as reader:
        last = reader.max_rowid()
        assert last == 300
        assert reader.recent_requests(after_rowid=last) == []

        writer = make_writer()
        for n in range(300, 310):
            writer.record_request(
                request(n, container="web" if n % 2 else "app", status=(200, 503)[n % 3 == 0])
            )
        assert writer.flush()

        new = reader.recent_requests(after_rowid=last, limit=4)
        assert [row.id for row in new] == ["req-300", "req-301", "req-302", "req-303"]
        assert [row.rowid for row in new] == [301, 302, 303, 304]
        rest = reader.recent_requests(after_rowid=new[-1].rowid, container="web")
        assert [row.id for row in rest] == ["req-305", "req-307", "req-309"]
        assert reader.recent_requests(after_rowid=rest[-1].rowid, container="web") == []


def test_a_follow_under_another_filter_returns_only_rows_after_its_mark(
    filled: str, make_writer: WriterFactory
) -> None:
    # One reader, its follow's filter changed (the console narrows, then widens, its feed):
    # rows at or below the mark were there all along and are not news under any filter.
    with StoreReader(filled) as reader:
        last = reader.max_rowid()
        writer = make_writer()
        for n in range(300, 310):
            writer.record_request(request(n, status=(200, 503)[n % 3 == 0]))
        assert writer.flush()

        errors = reader.recent_requests(after_rowid=last, level="error")
        assert [row.id for row in errors] == ["req-300", "req-303", "req-306", "req-309"]
        mark = max(row.rowid for row in errors)
        assert mark == reader.max_rowid() == 310
        assert reader.recent_requests(after_rowid=mark) == []
        assert reader.recent_requests(after_rowid=mark, container="app") == []


def test_the_level_filter_rejects_an_unknown_level(filled: str) -> None:
    with StoreReader(filled) as reader, pytest.raises(ValueError, match="debug"):
        reader.recent_requests(level="debug")  # type: ignore[arg-type]


# -- rollups ---------------------------------------------------------------------------------


def spread(n: int) -> RequestRecord:
    """Request n of 3000, 97.3 s apart from three days ago: over day, hour and minute
    boundaries, some refused before routing (no provider, no model), some failing."""
    return request(
        n,
        ts=NOW - 3 * DAY + n * 97.3,
        container=("app", "billing", "search")[n % 3],
        provider=("ollama", "openai", None)[n % 7 % 3],
        model=None if n % 11 == 0 else f"model-{n % 4}",
        status=(200, 200, 429, 502, 200)[n % 5],
        error="stream cut" if n % 13 == 0 else None,  # an error at status 200
        prompt_tokens=n % 13,
        completion_tokens=n % 17,
        cost_usd=(n % 5) * 0.0007,
        latency_ms=float(n % 19) + 0.25,
        cached_tokens=n % 7,
        cache_write_tokens=n % 3,
        cache_saved_usd=(n % 7) * 0.00003,
    )


def test_rollups_equal_sums_over_the_request_rows(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer(max_batch=97)  # many batches, many upsert conflicts
    records = [spread(n) for n in range(3000)]
    for rec in records:
        writer.record_request(rec)
    assert writer.flush()

    def who(rec: RequestRecord) -> tuple[str, str]:
        return rec.container, rec.provider or ""

    daily = grouped(records, lambda r: (day_name(r.ts), *who(r), r.model or ""))
    assert len({key[0] for key in daily}) == 4  # several UTC days
    assert_same_totals(rollup(store_target, "spend_daily", 4), daily)
    assert_same_totals(
        rollup(store_target, "spend_hourly", 3),
        grouped(records, lambda r: (hour_name(r.ts), *who(r))),
    )
    assert_same_totals(
        rollup(store_target, "spend_minutely", 3),
        grouped(records, lambda r: (minute_of(r.ts), *who(r))),
    )

    with StoreReader(store_target) as reader:
        first_day = day_name(NOW - 3 * DAY)
        rows = reader.spend_daily_rows(since_day=first_day)
        assert [(r.day, r.container, r.provider, r.model) for r in rows] == sorted(daily)
        assert_same_totals(
            {(r.day, r.container, r.provider, r.model): totals_list(r.totals) for r in rows},
            daily,
        )
        one_day = reader.spend_daily_rows(
            since_day=day_name(NOW - DAY), until_day=day_name(NOW - DAY), container="billing"
        )
        assert {(r.day, r.container) for r in one_day} == {(day_name(NOW - DAY), "billing")}
        by_container = reader.spend_by_container(first_day)
        assert [c.container for c in by_container] == ["app", "billing", "search"]
        assert_same_totals(
            {(c.container,): totals_list(c.totals) for c in by_container},
            grouped(records, lambda r: (r.container,)),
        )
        yesterday = reader.spend_by_container(day_name(NOW - DAY), day_name(NOW - DAY))
        assert_same_totals(
            {(c.container,): totals_list(c.totals) for c in yesterday},
            grouped(
                [r for r in records if day_name(r.ts) == day_name(NOW - DAY)],
                lambda r: (r.container,),
            ),
        )


def test_rollup_buckets_floor_the_start_time_as_day_name_does(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    writer.record_request(request(1, ts=NOW - 0.0001))  # SQLite's date maths would round up
    writer.record_request(request(2, ts=NOW))
    assert writer.flush()
    assert query(store_target, "SELECT day, requests FROM spend_daily ORDER BY day") == [
        ("2025-12-31", 1),
        ("2026-01-01", 1),
    ]
    assert query(store_target, "SELECT hour FROM spend_hourly ORDER BY hour") == [
        ("2025-12-31T23",),
        ("2026-01-01T00",),
    ]
    assert query(store_target, "SELECT minute FROM spend_minutely ORDER BY minute") == [
        (int(NOW) - 60,),
        (int(NOW),),
    ]


def window_records() -> list[RequestRecord]:
    return [
        request(
            n,
            ts=NOW + n * 37.0,
            container="app" if n % 2 else "web",
            status=(200, 503, 200, 429)[n % 4],
            cost_usd=0.01 + n * 1e-5,
            prompt_tokens=n,
            cached_tokens=n // 2,
            cache_write_tokens=n % 5,
            cache_saved_usd=n * 1e-6,
            latency_ms=n / 3,
        )
        for n in range(600)
    ]


def test_spend_window_is_exact_even_when_it_starts_mid_hour(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    records = window_records()
    for rec in records:
        writer.record_request(rec)
    assert writer.flush()
    with StoreReader(store_target) as reader:
        for since in (
            NOW + 1234.5,  # mid-hour: the partial first hour comes from the rows
            NOW + 2 * HOUR,  # on the hour: rollups only
            NOW + HOUR - 0.001,  # a sliver of an hour
            NOW + 3 * HOUR + 36.9,  # between two requests
            NOW - 100,  # before every request
            NOW + 600 * 37.0,  # after every request
        ):
            for container in ("app", "web", None):
                expected = summed(
                    r for r in records if r.ts >= since and container in (None, r.container)
                )
                window = reader.spend_window(container, since)
                assert totals_list(window) == pytest.approx(expected, rel=1e-9, abs=1e-12), (
                    since,
                    container,
                )


def test_admitted_since_counts_admitted_requests_and_gives_their_times(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    records = [
        request(
            n,
            ts=NOW + n * 10,
            container=("app", "web")[n % 2],
            status=(200, 429, 503, 201, 400)[n % 5],
        )
        for n in range(40)
    ]
    for rec in records:
        writer.record_request(rec)
    assert writer.flush()
    admitted = sorted(
        (r.ts for r in records if r.container == "app" and r.ts >= NOW + 55 and r.status < 400),
        reverse=True,
    )
    with StoreReader(store_target) as reader:
        assert reader.admitted_since("app", NOW + 55) == (len(admitted), [])
        assert reader.admitted_since("app", NOW + 55, times_limit=3) == (
            len(admitted),
            admitted[:3],
        )
        assert reader.admitted_since("app", NOW + 55, times_limit=100) == (len(admitted), admitted)
        assert reader.admitted_since("nobody", 0, times_limit=3) == (0, [])


def test_container_sessions_since_and_by_rowid_range(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    for n in range(10):
        session = (f"s{n % 3}", None)[n % 4 == 3]
        writer.record_request(request(n, container=("app", "web")[n % 2], session=session))
    assert writer.flush()
    with StoreReader(store_target) as reader:
        assert reader.container_sessions(NOW) == {
            ("app", "s0"),
            ("app", "s2"),
            ("app", "s1"),
            ("web", "s1"),
            ("web", "s0"),
            ("web", "s2"),
        }
        assert reader.container_sessions(NOW + 8) == {("app", "s2"), ("web", "s0")}
        mark = reader.max_rowid()
        assert reader.container_sessions(NOW, after_rowid=mark) == set()

        for n in range(10, 14):
            writer.record_request(request(n, container="app", session=f"new-{n}"))
        writer.record_request(request(14, ts=NOW - DAY, container="app", session="yesterday"))
        assert writer.flush()
        assert reader.container_sessions(NOW, after_rowid=mark) == {
            ("app", f"new-{n}") for n in range(10, 14)
        }
        assert reader.container_sessions(NOW, after_rowid=mark, until_rowid=mark + 2) == {
            ("app", "new-10"),
            ("app", "new-11"),
        }
        assert reader.container_sessions(NOW - DAY, after_rowid=mark + 4) == {("app", "yesterday")}
        assert reader.container_sessions(NOW, until_rowid=2) == {("app", "s0"), ("web", "s1")}


def test_per_minute_traffic_by_container_and_provider(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    records = [
        request(
            n,
            ts=NOW + n * 7.3,
            container=("app", "web")[n % 2],
            provider=("ollama", "openai", None)[n % 3],
            status=(200, 502, 429, 200)[n % 4],
            cost_usd=0.002 * (n % 3),
        )
        for n in range(200)
    ]
    for rec in records:
        writer.record_request(rec)
    assert writer.flush()

    since = NOW + 61.5  # mid-minute: the minute it falls in counts
    kept = [r for r in records if minute_of(r.ts) >= minute_of(since)]

    def per_minute(recs: list[RequestRecord]) -> list[tuple[int, int, int, float]]:
        out = grouped(recs, lambda r: (minute_of(r.ts),))
        return [(k[0], int(v[0]), int(v[1]), v[4]) for k, v in sorted(out.items())]

    with StoreReader(store_target) as reader:
        for container in (None, "web"):
            minutes = reader.requests_per_minute(since, container=container)
            expected = per_minute([r for r in kept if container in (None, r.container)])
            assert [(m.minute, m.requests, m.errors) for m in minutes] == [e[:3] for e in expected]
            assert [m.cost_usd for m in minutes] == pytest.approx([e[3] for e in expected])
        traffic = reader.traffic_by_provider(since)
        assert_same_totals(
            {(p,): totals_list(t) for p, t in traffic.items()},
            grouped(kept, lambda r: (r.provider or "",)),
        )
        assert set(traffic) == {"ollama", "openai", ""}
        burn = reader.spend_by_container_since(since)
        assert list(burn) == ["app", "web"]
        assert_same_totals(
            {(c,): totals_list(t) for c, t in burn.items()},
            grouped(kept, lambda r: (r.container,)),
        )


def test_each_containers_cache_hit_ratio_and_savings(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    for n in range(4):  # app: 1000 prompt tokens each, 750 of them from the cache
        writer.record_request(
            request(
                n,
                ts=NOW + 600 * n,
                container="app",
                provider="anthropic",
                prompt_tokens=1000,
                cached_tokens=750,
                cache_write_tokens=100 * n,
                cache_saved_usd=0.0002,
            )
        )
    writer.record_request(request(10, ts=NOW + 5, container="web", prompt_tokens=300))
    writer.record_request(
        request(11, ts=NOW - DAY, container="app", prompt_tokens=1000, cached_tokens=0)
    )
    assert writer.flush()
    with StoreReader(store_target) as reader:
        today = {c.container: c.totals for c in reader.spend_by_container(day_name(NOW))}
        assert today["app"].cache_hit_ratio == 0.75
        assert today["app"].cache_saved_usd == pytest.approx(0.0008)
        assert today["app"].cache_write_tokens == 600
        assert today["web"].cache_hit_ratio == 0.0 and today["web"].cache_saved_usd == 0.0
        both = {c.container: c.totals for c in reader.spend_by_container(day_name(NOW - DAY))}
        assert both["app"].cache_hit_ratio == 3000 / 5000
        window = reader.spend_window("app", NOW + 1000)
        assert (window.requests, window.cached_tokens, window.cache_write_tokens) == (2, 1500, 500)
        assert window.cache_saved_usd == pytest.approx(0.0004)


# -- outcomes ----------------------------------------------------------------------------------


def attempt(provider: str | None, model: str, status: int, ms: float) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "status": status, "ms": ms}
    if provider is not None:
        out["provider"] = provider
    return out


def routed(n: int, attempts: list[dict[str, Any]], **overrides: Any) -> RequestRecord:
    overrides.setdefault("intent", "code")
    return request(n, ts=NOW + n, decision={"attempts": attempts}, **overrides)


def test_outcomes_count_decision_attempts_and_follow_feedback(
    make_writer: WriterFactory, store_target: str
) -> None:
    # A decision that is not valid JSON (never written by the writer; say, an older omen's
    # row) contributes nothing and does not stop its row from being written.
    conn = connect_for_writing(store_target)
    bad = Batch(keep_bodies=False)
    bad.add(routed(0, [attempt("openai", "gpt", 200, 1)]))
    row, body = bad.requests[0]
    at = REQUEST_COLUMNS.split(", ").index("decision")
    bad.requests[0] = ((*row[:at], '{"attempts": [not json', *row[at + 1 :]), body)
    _write(conn, bad, None)
    conn.close()

    writer = make_writer(flush_interval=5)
    for rec in (
        # an escalation: 429 from gpt, answered by llama
        routed(1, [attempt("openai", "gpt", 429, 5), attempt("ollama", "llama", 200, 100)]),
        routed(2, [attempt("openai", "gpt", 503, 7)]),  # an error, nothing to escalate to
        routed(3, [attempt("openai", "gpt", 499, 50), attempt("ollama", "llama", 200, 40)]),
        routed(4, [attempt("ollama", "llama", 200, 9)], kind="embeddings"),  # not an outcome
        routed(5, [attempt("ollama", "llama", 200, 9)], intent=None),  # not routed by intent
        routed(6, [attempt("openai", "gpt", 404, 9)]),  # the caller's fault: no error
        routed(7, [attempt(None, "x", 200, 1), attempt("ollama", "llama", 200, 10)], intent="chat"),
        routed(8, [attempt("openai", "gpt", 200, 20)], container="web", kind="messages"),
        routed(9, [attempt("ollama", "llama", 200, 9)], kind="count_tokens"),
        routed(10, [], container="web"),  # refused before any attempt
    ):
        writer.record_request(rec)
    assert writer.flush()

    def outcome(
        container: str, intent: str, provider: str, model: str, *values: float
    ) -> OutcomeRow:
        requests, errors, escalations, latency, fb_n, fb_sum, updated = values
        return OutcomeRow(
            container,
            intent,
            provider,
            model,
            int(requests),
            int(errors),
            int(escalations),
            latency,
            int(fb_n),
            fb_sum,
            updated,
        )

    gpt = outcome("app", "code", "openai", "gpt", 3, 2, 1, 0.0, 0, 0.0, NOW + 6)
    llama = outcome("app", "code", "ollama", "llama", 2, 0, 0, 140.0, 0, 0.0, NOW + 3)
    chat = outcome("app", "chat", "ollama", "llama", 1, 0, 0, 10.0, 0, 0.0, NOW + 7)
    web = outcome("web", "code", "openai", "gpt", 1, 0, 0, 20.0, 0, 0.0, NOW + 8)

    def key(row: OutcomeRow) -> tuple[str, ...]:
        return row.container, row.intent, row.provider, row.model

    with StoreReader(store_target) as reader:
        assert sorted(reader.outcomes(), key=key) == sorted([gpt, llama, chat, web], key=key)
        assert sorted(reader.outcomes("web"), key=key) == [web]
        assert reader.get_request("req-10") is not None
    assert query(store_target, "SELECT count(*) FROM requests WHERE id = 'req-0'") == [(1,)]

    writer.record_feedback(
        FeedbackRecord(NOW + 20, "req-1", 1.0, "ops", "app", "code", "ollama", "llama")
    )
    writer.record_feedback(
        FeedbackRecord(NOW + 22, "req-8", 0.5, "ops", "web", "code", "openai", "gpt")
    )
    writer.record_feedback(
        FeedbackRecord(NOW + 23, "req-x", 0.0, "ops", "app", "code", "anthropic", "claude")
    )
    assert writer.flush()
    # A later verdict on the same request replaces the earlier one.
    writer.record_feedback(
        FeedbackRecord(NOW + 21, "req-1", 0.25, "ops", "app", "code", "ollama", "llama")
    )
    assert writer.flush()

    llama = dataclasses.replace(llama, feedback_n=1, feedback_sum=0.25, updated=NOW + 21)
    web = dataclasses.replace(web, feedback_n=1, feedback_sum=0.5, updated=NOW + 22)
    claude = outcome("app", "code", "anthropic", "claude", 0, 0, 0, 0.0, 1, 0.0, NOW + 23)
    with StoreReader(store_target) as reader:
        assert sorted(reader.outcomes(), key=key) == sorted(
            [gpt, llama, chat, web, claude], key=key
        )
        assert reader.feedback_for("req-1") == 0.25
        assert reader.feedback_for("req-8") == 0.5
        assert reader.feedback_for("req-2") is None


def test_outcomes_updated_is_the_newest_start_time_whatever_the_order_recorded(
    make_writer: WriterFactory, store_target: str
) -> None:
    # Records are queued as requests finish, but ts is when they started: a batch often holds
    # them out of start order. Both stores must give the same `updated`.
    writer = make_writer(flush_interval=5)  # one batch
    writer.record_request(routed(10, [attempt("ollama", "llama", 200, 1)]))
    writer.record_request(routed(5, [attempt("ollama", "llama", 200, 1)]))
    assert writer.flush()
    with StoreReader(store_target) as reader:
        [row] = reader.outcomes()
    assert (row.requests, row.updated) == (2, NOW + 10)


# -- streaming -------------------------------------------------------------------------------


def test_stream_requests_gives_chunks_of_the_selected_rows(
    make_writer: WriterFactory, store_target: str
) -> None:
    writer = make_writer()
    records = [request(n, container=("app", "web")[n % 2], cost_usd=n / 1000) for n in range(25)]
    for rec in records:
        writer.record_request(rec)
    assert writer.flush()

    def streamed(**kwargs: Any) -> tuple[list[int], list[tuple[Any, ...]]]:
        chunks = list(reader.stream_requests("id, container, cost_usd", chunk=10, **kwargs))
        return [len(c) for c in chunks], sorted(tuple(row) for c in chunks for row in c)

    def expected(recs: Iterable[RequestRecord]) -> list[tuple[Any, ...]]:
        return sorted((r.id, r.container, r.cost_usd) for r in recs)

    with StoreReader(store_target) as reader:
        assert streamed(since_ts=None, container=None) == ([10, 10, 5], expected(records))
        assert streamed(since_ts=None, container="web") == (
            [10, 2],
            expected(r for r in records if r.container == "web"),
        )
        assert streamed(since_ts=NOW + 20, container="app") == (
            [3],
            expected(r for r in records if r.container == "app" and r.ts >= NOW + 20),
        )
        assert streamed(since_ts=NOW + 1000, container=None) == ([], [])
        # A stream left half-read does not stop the reader.
        stream = reader.stream_requests("id", since_ts=None, container=None, chunk=5)
        assert isinstance(stream, Generator)
        assert len(next(stream)) == 5
        stream.close()
        assert len(reader.recent_requests(limit=1000)) == 25
