"""Routing that learns: difficulty steering, outcome reordering and exploration, custom
intents taught in config, and the daemon's outcome book counting what the store's trigger
counts."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from omen.outcomes import OutcomeBook, Route
from omen.routing.adaptive import MIN_EVIDENCE, Outcome, adapt
from omen.routing.custom import CustomIntents
from omen.routing.strategies import Option, Weights, rank, steer
from omen_store import StoreReader
from omen_store.rollups import keep_rollups
from omen_store.schema import migrate


def option(
    provider: str, model: str, *, quality: float, cost: float, local: bool = False
) -> Option:
    return Option(provider, model, local, quality, cost, 100.0, True)


def fleet() -> list[Option]:
    return [
        option("ollama", "llama3.1:8b", quality=0.6, cost=0.0, local=True),
        option("openai", "gpt-4o-mini", quality=0.8, cost=0.001),
        option("anthropic", "claude-sonnet-4", quality=0.95, cost=0.02),
    ]


# --- difficulty ------------------------------------------------------------------------------


def test_steer_moves_the_threshold_by_difficulty_and_says_so() -> None:
    weights = Weights(cost=0.3, latency=0.4, quality=0.3)
    assert steer(0.8, weights, None, 0.2) == (0.8, weights, "")
    assert steer(0.8, weights, 0.9, 0.0) == (0.8, weights, "")
    easy, easy_w, said = steer(0.8, weights, 0.0, 0.2)
    assert easy == pytest.approx(0.6) and said == "easy (0.00)"
    assert easy_w.cost == pytest.approx(0.3 * 1.4) and easy_w.quality == pytest.approx(0.3 * 0.6)
    hard, hard_w, said = steer(0.8, weights, 1.0, 0.2)
    assert hard == pytest.approx(1.0) and said == "hard (1.00)"
    assert hard_w.quality > weights.quality > easy_w.quality


def test_an_easy_prompt_stays_local_and_a_hard_one_goes_to_the_strong_model() -> None:
    kwargs = {"prefer_local": True, "quality_threshold": 0.7, "weights": Weights()}
    plain, _ = rank(fleet(), "cost-optimized", **kwargs)  # type: ignore[arg-type]
    assert plain[0].model == "gpt-4o-mini"  # the local 0.6 misses 0.7
    easy, note = rank(fleet(), "cost-optimized", difficulty=0.1, difficulty_weight=0.2, **kwargs)  # type: ignore[arg-type]
    assert easy[0].provider == "ollama" and note.startswith("easy (0.10): ")  # 0.7 - 0.16
    hard, note = rank(fleet(), "cost-optimized", difficulty=0.95, difficulty_weight=0.2, **kwargs)  # type: ignore[arg-type]
    assert hard[0].model == "claude-sonnet-4" and note.startswith("hard (0.95): ")  # 0.7 + 0.18
    # latency-first and quality-first are not steered.
    _, note = rank(fleet(), "latency-first", difficulty=0.95, difficulty_weight=0.2, **kwargs)  # type: ignore[arg-type]
    assert not note.startswith("hard")


# --- outcomes --------------------------------------------------------------------------------


def test_outcome_value_has_priors_and_words() -> None:
    assert Outcome().value == pytest.approx(0.75)  # 2/2 reliable × 1.5/2 satisfied
    failing = Outcome(requests=8, errors=6, escalations=6)
    assert failing.reliability == pytest.approx(4 / 10)
    liked = Outcome(requests=8, feedback_n=4, feedback_sum=4.0)
    assert liked.satisfaction == pytest.approx(5.5 / 6)
    assert failing.describe() == "ok 25% of 8"
    assert liked.describe() == "ok 100% of 8, feedback 1.00 of 4"


def test_adapt_reorders_within_the_threshold_only_on_evidence() -> None:
    ranked, _ = rank(
        fleet(), "cost-optimized", prefer_local=False, quality_threshold=0.75, weights=Weights()
    )
    assert [o.provider for o in ranked] == ["openai", "anthropic", "ollama"]
    few = {("openai", "gpt-4o-mini"): Outcome(requests=MIN_EVIDENCE - 1, errors=MIN_EVIDENCE - 1)}
    same, note = adapt(ranked, few, quality_threshold=0.75, explore=0.0, draw=0.5, pick=0.0)
    assert same == ranked and note == ""
    bad = {("openai", "gpt-4o-mini"): Outcome(requests=10, errors=7, escalations=7)}
    learnt, note = adapt(ranked, bad, quality_threshold=0.75, explore=0.0, draw=0.5, pick=0.0)
    assert [o.provider for o in learnt] == ["anthropic", "openai", "ollama"]  # ollama < 0.75 stays
    assert note == (
        "adaptive: anthropic/claude-sonnet-4 (no outcomes yet) over "
        "openai/gpt-4o-mini (ok 30% of 10)"
    )
    # Values in the same band keep the strategy's (cheaper first) order.
    close = {
        ("openai", "gpt-4o-mini"): Outcome(requests=50, errors=3),
        ("anthropic", "claude-sonnet-4"): Outcome(requests=50, errors=1),
    }
    kept, note = adapt(ranked, close, quality_threshold=0.75, explore=0.0, draw=0.5, pick=0.0)
    assert kept == ranked and note == ""


def test_adapt_explores_another_option_meeting_the_threshold() -> None:
    ranked, _ = rank(
        fleet(), "cost-optimized", prefer_local=False, quality_threshold=0.75, weights=Weights()
    )
    explored, note = adapt(ranked, {}, quality_threshold=0.75, explore=0.05, draw=0.01, pick=0.99)
    assert explored[0].provider == "anthropic"
    assert note == "adaptive: exploring anthropic/claude-sonnet-4 (5% of requests)"
    kept, note = adapt(ranked, {}, quality_threshold=0.75, explore=0.05, draw=0.06, pick=0.99)
    assert kept == ranked and note == ""


# --- custom intents -------------------------------------------------------------------------


def test_custom_intents_match_keywords_and_examples_and_name_the_evidence() -> None:
    custom = CustomIntents(
        {
            "refactor": (
                [
                    "Refactor this class to use dependency injection",
                    "split this function into smaller ones",
                ],
                ["refactor"],
            ),
            "translate": (
                ["Translate this paragraph into German", "how do you say thank you in French"],
                [],
            ),
        }
    )
    hit = custom.match("Could you REFACTOR the payment module?")
    assert hit is not None and (hit.intent, hit.source, hit.signals) == (
        "refactor",
        "custom",
        ("keyword 'refactor'",),
    )
    near = custom.match("Please translate this paragraph into Spanish")
    assert near is not None and near.intent == "translate"
    assert near.signals[0].startswith("like 'Translate this paragraph into German'")
    assert custom.match("What is the capital of Australia?") is None
    assert custom.match("the refactoring-tool docs") is None  # a whole word, not a prefix
    assert not CustomIntents({})


# --- the outcome book and the store's trigger count the same -----------------------------


def _insert(
    conn: sqlite3.Connection, request_id: str, attempts: list[dict[str, object]], kind: str = "chat"
) -> None:
    row = {
        "id": request_id, "ts": time.time(), "container": "app", "kind": kind,
        "requested_model": "auto", "model": "m", "provider": "p", "intent": "code",
        "stream": 0, "status": 200, "level": "info", "latency_ms": 12.0,
        "prompt_tokens": 1, "completion_tokens": 1, "decision": json.dumps({"attempts": attempts}),
    }  # fmt: skip
    conn.execute(
        f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )


HISTORY: list[tuple[str, list[dict[str, object]], str]] = [
    ("r1", [{"provider": "openai", "model": "gpt-4o", "status": 503, "ms": 5.0},
            {"provider": "anthropic", "model": "claude", "status": 200, "ms": 40.0}], "chat"),
    ("r2", [{"provider": "openai", "model": "gpt-4o", "status": 200, "ms": 20.0}], "chat"),
    ("r3", [{"provider": "openai", "model": "gpt-4o", "status": 429, "ms": 1.0}], "chat"),
    ("r4", [{"provider": "openai", "model": "gpt-4o", "status": 499, "ms": 9.0}], "chat"),
    ("r5", [{"provider": "openai", "model": "text-embed", "status": 200, "ms": 9.0}], "embeddings"),
]  # fmt: skip


_FEEDBACK = (
    "INSERT INTO feedback (request_id, ts, score, actor, container, intent, provider, model)"
)


def test_the_outcome_book_counts_what_the_store_trigger_counts(tmp_path: Path) -> None:
    database = tmp_path / "omen.db"
    conn = sqlite3.connect(database, isolation_level=None)
    migrate(conn)
    keep_rollups(conn)
    book = OutcomeBook()
    for request_id, attempts, kind in HISTORY:
        _insert(conn, request_id, attempts, kind)
        book.observe(request_id, "app", "code", kind, attempts)
    conn.execute(
        f"{_FEEDBACK} VALUES ('r2', 1.0, 0.25, 'key_x', 'app', 'code', 'openai', 'gpt-4o')"
    )
    conn.execute(
        f"{_FEEDBACK} VALUES ('r2', 2.0, 0.75, 'key_x', 'app', 'code', 'openai', 'gpt-4o') "
        "ON CONFLICT (request_id) DO UPDATE SET ts = excluded.ts, score = excluded.score"
    )
    route = book.route_of("r2")
    assert route == Route("app", "code", "openai", "gpt-4o")
    book.feedback("r2", route, 0.25, None)
    book.feedback("r2", route, 0.75, book.verdict("r2"))
    conn.close()
    with StoreReader(database) as reader:
        stored = OutcomeBook()
        stored.load(reader.outcomes())
    assert stored.rows() == book.rows()
    openai = book.view("app", "code")[("openai", "gpt-4o")]
    # r1 failed over (error, escalation), r2 ok in 20 ms, r3 failed last (error only), r4 the
    # client left (not counted), r5 an embedding (not an outcome); one verdict, replaced.
    assert openai == Outcome(
        requests=3, errors=2, escalations=1, latency_ms_sum=20.0, feedback_n=1, feedback_sum=0.75
    )
    assert book.view("app", "code")[("anthropic", "claude")] == Outcome(
        requests=1, latency_ms_sum=40.0
    )
