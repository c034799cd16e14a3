"""Sessions: where agents name their conversation, and the rule that a session only moves up."""

from __future__ import annotations

import asyncio
import json
import uuid

from omen.routing import Candidate, IntentResult, RouteDecision
from omen.routing.session import Pin, keep_session
from omen.sessions import SessionStore, session_id
from tests.redis_support import redis_prefix, redis_url_or_skip

QUALITY = {"ollama": 0.6, "openai": 0.9, "anthropic": 0.95}


def quality(candidate: Candidate) -> float:
    return QUALITY[candidate.provider]


def decision(*cands: tuple[str, str, str]) -> RouteDecision:
    return RouteDecision(
        intent=IntentResult("code", "rules", ()),
        strategy="balanced",
        candidates=[Candidate(p, e, f"http://{e}", m) for p, m, e in cands],
        reason="r",
    )


LOCAL = ("ollama", "llama3.1:8b", "gpu1")
LOCAL2 = ("ollama", "llama3.1:8b", "gpu2")
GPT = ("openai", "gpt-4o", "api.openai.com")
CLAUDE = ("anthropic", "claude-sonnet-4", "api.anthropic.com")


def test_claude_code_names_its_session_in_a_header_or_in_metadata_user_id() -> None:
    assert session_id({"x-claude-code-session-id": "abc"}, {}) == "abc"
    assert session_id({"x-omen-session": "mine", "session-id": "codex"}, {}) == "mine"
    assert session_id({}, {"prompt_cache_key": "conv-1"}) == "conv-1"
    user_id = json.dumps({"device_id": "d", "account_uuid": "", "session_id": "s-42"})
    assert session_id({}, {"metadata": {"user_id": user_id}}) == "s-42"
    legacy = "user_ab12_account__session_0f8e2c1a-1111-2222-3333-444455556666"
    assert session_id({}, {"metadata": {"user_id": legacy}}) == (
        "0f8e2c1a-1111-2222-3333-444455556666"
    )
    assert session_id({}, {"metadata": {"user_id": "plain-user"}}) is None
    assert session_id({}, {"metadata": "not an object"}) is None


def test_first_turn_routes_afresh() -> None:
    d = decision(LOCAL, GPT)
    assert keep_session(d, None, quality).action == "new"
    assert d.candidates[0].provider == "ollama"


def test_the_pinned_model_and_endpoint_go_first() -> None:
    d = decision(LOCAL, LOCAL2, GPT)
    move = keep_session(d, Pin("ollama", "llama3.1:8b", "gpu2", 0.6), quality)
    assert move.action == "kept"
    assert [c.endpoint for c in d.candidates] == ["gpu2", "gpu1", "api.openai.com"]


def test_a_turn_that_needs_a_stronger_model_moves_the_session_up() -> None:
    d = decision(CLAUDE, LOCAL)
    move = keep_session(d, Pin(*LOCAL, 0.6), quality)
    assert move.action == "upgraded"
    # The old pin stays as the fallback: it is not weaker than the session already was.
    assert [c.provider for c in d.candidates] == ["anthropic", "ollama"]


def test_a_session_never_drops_to_a_weaker_model() -> None:
    d = decision(LOCAL, GPT, CLAUDE)  # routing alone would pick the local model
    move = keep_session(d, Pin(*CLAUDE, 0.95), quality)
    assert move.action == "kept"
    assert [c.provider for c in d.candidates] == ["anthropic"]


def test_a_failed_endpoint_moves_the_session_to_another_endpoint_of_its_model() -> None:
    d = decision(LOCAL2, GPT)  # gpu1 is cooling down: not a candidate
    move = keep_session(d, Pin(*LOCAL, 0.6), quality)
    assert move.action == "moved"
    assert d.candidates[0].endpoint == "gpu2"


def test_with_nothing_as_strong_left_the_session_is_rerouted_not_refused() -> None:
    d = decision(LOCAL)
    move = keep_session(d, Pin(*CLAUDE, 0.95), quality)
    assert move.action == "rerouted"
    assert d.candidates[0].provider == "ollama"


async def test_pins_expire_after_the_ttl() -> None:
    store = SessionStore(ttl=0.05)
    await store.put("app", "s", Pin(*LOCAL, 0.6))
    assert await store.get("app", "s") == Pin(*LOCAL, 0.6)
    assert await store.get("other", "s") is None  # containers never share a session
    await asyncio.sleep(0.08)
    assert await store.get("app", "s") is None


async def test_pins_are_shared_through_redis() -> None:
    url = redis_url_or_skip()
    one = SessionStore(ttl=60, redis_url=url, prefix=redis_prefix("sessions"))
    two = SessionStore(ttl=60, redis_url=url, prefix=redis_prefix("sessions"))
    session = uuid.uuid4().hex
    try:
        await one.put("app", session, Pin(*CLAUDE, 0.95))
        assert await two.get("app", session) == Pin(*CLAUDE, 0.95)
    finally:
        await one.aclose()
        await two.aclose()


async def test_an_unreachable_redis_costs_the_pin_not_the_request() -> None:
    store = SessionStore(ttl=60, redis_url="redis://127.0.0.1:1/0")
    await store.put("app", "s", Pin(*LOCAL, 0.6))
    assert await store.get("app", "s") is None
    await store.aclose()
