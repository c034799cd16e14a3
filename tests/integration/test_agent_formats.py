"""What coding agents send, through the real stack: Messages passed through to an Anthropic
upstream unchanged, translated for a local model with what was dropped named; count_tokens;
context-length errors in the wording agents act on; sessions that keep their model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes import (
    FakeState,
    RunningFake,
    make_anthropic_app,
    make_ollama_app,
    run_fake,
)
from tests.fakes.anthropic_upstream import PromptCache
from tests.integration.conftest import ADMIN_KEY, APP_KEY, UPSTREAM_KEY, Omen, wait_for_rows

CLAUDE = "claude-sonnet-4"
LOCAL = "llama3.1:8b"
BETA = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"
SESSION = "6f1c9f0e-4a8b-4d3c-9e2a-1b2c3d4e5f60"


@dataclass
class Upstreams:
    anthropic: FakeState
    cache: PromptCache
    anthropic_server: RunningFake
    ollama: FakeState
    ollama_server: RunningFake


@pytest.fixture
def ups() -> Iterator[Upstreams]:
    claude = FakeState(models=[CLAUDE], api_key=UPSTREAM_KEY)
    cache = PromptCache()
    local = FakeState(models=[LOCAL], loaded=[LOCAL])
    with (
        run_fake(make_anthropic_app(claude, cache)) as anthropic_server,
        run_fake(make_ollama_app(local)) as ollama_server,
    ):
        yield Upstreams(claude, cache, anthropic_server, local, ollama_server)


def config(up: Upstreams, routing: str = "") -> str:
    return f"""
[auth]
api_keys = [{{ key = "env:TEST_ADMIN_KEY", scope = "admin" }}]

[routing]
default_strategy = "cost-optimized"
quality_threshold = 0.5
{routing}

[providers.anthropic]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{up.anthropic_server.url}"
models = ["{CLAUDE}"]
cost_per_1k_input_tokens = 0.003
cost_per_1k_output_tokens = 0.015
health_check_interval = "1h"
quality = 0.95

[providers.ollama]
endpoints = ["{up.ollama_server.url}"]
models = ["{LOCAL}"]
health_check_interval = "1h"
model_info."{LOCAL}" = {{ context_window = 8192 }}

[containers.app]
api_key = "env:TEST_APP_KEY"
"""


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], ups: Upstreams) -> Omen:
    return omen_factory(config(ups))


def claude_code_body(model: str, *, stream: bool = True) -> dict[str, Any]:
    """A Claude Code turn as it sends it: cache marks on system, tools and the last user turn,
    thinking, context management, a session in metadata.user_id, a mid-conversation system
    message."""
    return {
        "model": model,
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
            {
                "type": "text",
                "text": "Tools and conventions. " * 40,
                "cache_control": {"type": "ephemeral"},
            },
        ],
        "tools": [
            {
                "name": "Bash",
                "description": "Run a shell command",
                "input_schema": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"],
                },
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What does main.py do?"}]},
            {
                "role": "system",
                "content": "<system-reminder>Files changed: main.py</system-reminder>",
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "Explain briefly.",
                        "cache_control": {"type": "ephemeral"},
                    }
                ],
            },
        ],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": json.dumps({"device_id": "d1", "session_id": SESSION})},
    }


def post_messages(omen: Omen, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/messages?beta=true",
        json=body,
        headers={
            "x-api-key": APP_KEY,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": BETA,
            "x-claude-code-session-id": SESSION,
        },
        timeout=20,
    )


def sse_events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def marks(value: Any) -> int:
    """How many cache_control breakpoints a body carries, wherever they are."""
    if isinstance(value, dict):
        return ("cache_control" in value) + sum(marks(v) for v in value.values())
    if isinstance(value, list):
        return sum(marks(v) for v in value)
    return 0


def test_messages_reach_an_anthropic_upstream_as_sent(omen: Omen, ups: Upstreams) -> None:
    body = claude_code_body(CLAUDE)
    reply = post_messages(omen, body)
    assert reply.status_code == 200, reply.text
    sent = ups.anthropic.requests_to("/v1/messages")[-1]
    assert sent.json == body  # every field, in order, the model unchanged
    assert marks(sent.json) == 3
    assert sent.headers["anthropic-beta"] == BETA
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY  # Omen's key, never the client's
    assert reply.headers["x-omen-session"] == SESSION
    events = sse_events(reply.text)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    thinking = [e for e in events if e.get("delta", {}).get("type") == "signature_delta"]
    assert thinking, "the thinking block's signature is relayed"

    rows = wait_for_rows(omen.database, 1)
    row = rows[-1]
    assert row.kind == "messages" and row.provider == "anthropic"  # type: ignore[attr-defined]
    decision = row.decision  # type: ignore[attr-defined]
    assert decision["passthrough"] is True
    assert decision["session"]["id"] == SESSION


def test_thinking_signatures_survive_the_next_turn(omen: Omen, ups: Upstreams) -> None:
    first = post_messages(omen, claude_code_body(CLAUDE, stream=False))
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["content"][0]["type"] == "thinking" and answer["content"][0]["signature"]
    body = claude_code_body(CLAUDE, stream=False)
    body["messages"] += [
        {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": "And then?"},
    ]
    # The fake refuses a thinking block whose signature it did not issue, as Anthropic does.
    second = post_messages(omen, body)
    assert second.status_code == 200, second.text
    assert ups.anthropic.requests_to("/v1/messages")[-1].json["messages"][3] == body["messages"][3]


def test_cache_reads_and_writes_are_recorded_and_priced(omen: Omen, ups: Upstreams) -> None:
    # The first turn writes the cache, the second reads it (as Anthropic reports it).
    for creation, read_tokens in ((150, 0), (0, 150)):
        ups.cache.creation_tokens, ups.cache.read_tokens = creation, read_tokens
        reply = post_messages(omen, claude_code_body(CLAUDE, stream=True))
        assert reply.status_code == 200, reply.text
    rows = wait_for_rows(omen.database, 2)
    write, read = rows[-2], rows[-1]
    assert write.cache_write_tokens > 0  # type: ignore[attr-defined]
    assert read.cached_tokens > 0  # type: ignore[attr-defined]
    # Cache reads cost a tenth of fresh input: the second turn is cheaper than the first.
    assert 0 < read.cost_usd < write.cost_usd  # type: ignore[attr-defined]
    assert read.cache_saved_usd > 0  # type: ignore[attr-defined]


def test_a_local_model_gets_a_translation_that_names_what_it_dropped(
    omen: Omen, ups: Upstreams
) -> None:
    reply = post_messages(omen, claude_code_body(LOCAL))
    assert reply.status_code == 200, reply.text
    kinds = [e["type"] for e in sse_events(reply.text)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    sent = ups.ollama.requests_to("/api/chat")[-1].json
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "user", "system", "user"]  # the reminder kept its place
    assert sent["messages"][2]["content"].startswith("<system-reminder>")
    assert sent.get("think") in (True, "high")  # Claude Code's thinking, in Ollama's terms
    row = wait_for_rows(omen.database, 1)[-1]
    decision = row.decision  # type: ignore[attr-defined]
    assert decision["passthrough"] is False
    assert "context_management (ollama)" in decision["dropped"]
    assert "dropped: context_management (ollama)" in row.reason  # type: ignore[attr-defined]


def test_count_tokens_asks_the_upstream_and_estimates_otherwise(omen: Omen) -> None:
    client = anthropic.Anthropic(base_url=omen.url, api_key=APP_KEY, max_retries=0)
    messages: Any = [{"role": "user", "content": "How many tokens is this?"}]
    counted = client.messages.with_raw_response.count_tokens(model=CLAUDE, messages=messages)
    assert counted.parse().input_tokens > 0
    assert "x-omen-estimate" not in counted.headers
    estimated = client.messages.with_raw_response.count_tokens(model=LOCAL, messages=messages)
    assert estimated.parse().input_tokens > 0
    assert estimated.headers["x-omen-estimate"] == "true"


def test_a_prompt_too_long_gets_the_wording_claude_code_compacts_on(omen: Omen) -> None:
    body = claude_code_body(LOCAL, stream=False)
    body["messages"][0]["content"][0]["text"] = "word " * 40_000  # ~50,000 tokens > 8,192
    reply = post_messages(omen, body)
    assert reply.status_code == 400
    error = reply.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert "prompt is too long:" in error["error"]["message"]
    assert error["error"]["message"].endswith("8192 maximum")
    chat = httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": LOCAL, "messages": [{"role": "user", "content": "word " * 40_000}]},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=20,
    )
    assert chat.status_code == 400
    assert chat.json()["error"]["code"] == "context_length_exceeded"


def test_bad_messages_input_is_a_400_in_anthropic_shape(omen: Omen) -> None:
    body = claude_code_body(CLAUDE, stream=False)
    body["messages"][0]["content"] = [{"type": "text", "text": 5}]
    reply = post_messages(omen, body)
    assert reply.status_code == 400
    assert reply.json()["type"] == "error"
    assert "messages.0.content.0.text" in reply.json()["error"]["message"]


# --- sessions ----------------------------------------------------------------------------


@pytest.fixture
def routed(omen_factory: Callable[..., Omen], ups: Upstreams) -> Omen:
    rules = f"""
[routing.intent_rules]
code = {{ provider = "ollama", model = "{LOCAL}" }}
reasoning = {{ provider = "anthropic", model = "{CLAUDE}" }}
"""
    return omen_factory(config(ups, rules))


CODE = "Write a python function that parses a CSV file:\n```python\ndef parse(path):\n```"
REASONING = (
    "Think step by step and explain why the trade-off between consistency and availability "
    "forces a choice during a network partition; reason carefully about each case."
)


def turn(omen: Omen, prompt: str, session: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {APP_KEY}"}
    if session:
        headers["x-omen-session"] = session
    reply = httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
        headers=headers,
        timeout=20,
    )
    assert reply.status_code == 200, reply.text
    return reply


def test_a_session_keeps_its_model_and_only_moves_up(routed: Omen, ups: Upstreams) -> None:
    assert turn(routed, CODE, None).headers["x-omen-provider"] == "ollama"  # the rule, no session
    first = turn(routed, CODE, "s-1")
    assert first.headers["x-omen-provider"] == "ollama"
    assert first.headers["x-omen-session"] == "s-1"
    again = turn(routed, REASONING, "s-1")  # a turn that needs the stronger model moves up …
    assert again.headers["x-omen-provider"] == "anthropic"
    assert "session upgraded" in again.headers["x-omen-route-reason"]
    back = turn(routed, CODE, "s-1")  # … and the session never drops back down
    assert back.headers["x-omen-provider"] == "anthropic"
    assert "session kept" in back.headers["x-omen-route-reason"]
    fresh = turn(routed, CODE, "s-2")  # a new session routes afresh
    assert fresh.headers["x-omen-provider"] == "ollama"
    rows = wait_for_rows(routed.database, 5)
    actions = [r.decision.get("session", {}).get("action") for r in rows]  # type: ignore[attr-defined]
    assert actions == [None, "new", "upgraded", "kept", "new"]
    assert [r.session for r in rows] == [None, "s-1", "s-1", "s-1", "s-2"]  # type: ignore[attr-defined]


def test_a_session_moves_away_from_a_drained_endpoint(routed: Omen, ups: Upstreams) -> None:
    assert turn(routed, REASONING, "s-3").headers["x-omen-provider"] == "anthropic"
    admin = httpx.post(
        f"{routed.url}/admin/endpoints/drain",
        json={"provider": "anthropic", "endpoint": ups.anthropic_server.url.split("//")[1]},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert admin.status_code == 200, admin.text
    moved = turn(routed, REASONING, "s-3")
    # Nothing as strong is left, so the session is routed afresh rather than failing.
    assert moved.headers["x-omen-provider"] == "ollama"
    assert "session rerouted" in moved.headers["x-omen-route-reason"]


def test_the_anthropic_sdk_lists_models(omen: Omen) -> None:
    client = anthropic.Anthropic(base_url=omen.url, api_key=APP_KEY, max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert {"auto", CLAUDE, LOCAL} <= set(ids)


def test_an_ollama_that_serves_messages_gets_the_body_as_sent(
    omen_factory: Callable[..., Omen], ups: Upstreams
) -> None:
    text = config(ups).replace(
        'health_check_interval = "1h"\nmodel_info',
        'health_check_interval = "1h"\npassthrough = ["messages"]\nmodel_info',
    )
    assert 'passthrough = ["messages"]' in text
    omen = omen_factory(text)
    body = claude_code_body(LOCAL)
    body["messages"][0]["content"][0]["text"] = "short"
    reply = post_messages(omen, body)
    assert reply.status_code == 200, reply.text
    sent = ups.ollama.requests_to("/v1/messages")[-1]
    assert sent.json == body
    assert sent.headers["anthropic-beta"] == BETA
    kinds = [e["type"] for e in sse_events(reply.text)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    row = wait_for_rows(omen.database, 1)[-1]
    assert row.decision["passthrough"] is True  # type: ignore[attr-defined]
    assert "dropped" not in row.decision  # type: ignore[attr-defined]


def test_anthropic_saying_the_prompt_is_too_long_reaches_claude_code_in_its_words(
    omen: Omen, ups: Upstreams
) -> None:
    from tests.fakes import ErrorReply

    words = "prompt is too long: 210345 tokens > 200000 maximum"
    ups.anthropic.script.push(
        ErrorReply(
            400,
            body={"type": "error", "error": {"type": "invalid_request_error", "message": words}},
        )
    )
    reply = post_messages(omen, claude_code_body(CLAUDE))
    assert reply.status_code == 400
    assert reply.json()["error"] == {"type": "invalid_request_error", "message": words}
