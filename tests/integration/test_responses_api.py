"""`POST /v1/responses` through the real stack with the official openai SDK: passed through to
an OpenAI upstream, translated for a local Ollama model and for Anthropic, tool round trips,
and bad input named in OpenAI's error shape."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.fakes import (
    FakeState,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_anthropic_app,
    make_ollama_app,
    make_openai_app,
    run_fake,
)
from tests.integration.conftest import APP_KEY, UPSTREAM_KEY, Omen, wait_for_rows

GPT = "gpt-4o"
LOCAL = "llama3.1:8b"
CLAUDE = "claude-sonnet-4"
EXEC_TOOL: Any = {
    "type": "function",
    "name": "exec_command",
    "description": "Run a shell command",
    "strict": False,
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
    },
}


@dataclass
class Ups:
    openai: FakeState
    ollama: FakeState
    anthropic: FakeState
    servers: tuple[RunningFake, RunningFake, RunningFake]


@pytest.fixture
def ups() -> Iterator[Ups]:
    oai = FakeState(models=[GPT], api_key=UPSTREAM_KEY)
    local = FakeState(models=[LOCAL], loaded=[LOCAL])
    claude = FakeState(models=[CLAUDE], api_key=UPSTREAM_KEY)
    with (
        run_fake(make_openai_app(oai)) as o,
        run_fake(make_ollama_app(local)) as l_,
        run_fake(make_anthropic_app(claude)) as a,
    ):
        yield Ups(oai, local, claude, (o, l_, a))


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], ups: Ups) -> Omen:
    o, l_, a = ups.servers
    return omen_factory(f"""
[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{o.url}/v1"
models = ["{GPT}"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "1h"

[providers.ollama]
endpoints = ["{l_.url}"]
models = ["{LOCAL}"]
health_check_interval = "1h"

[providers.anthropic]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{a.url}"
models = ["{CLAUDE}"]
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"
""")


def codex_body(model: str, **extra: Any) -> dict[str, Any]:
    """A Codex CLI turn as it sends it (stateless, streamed, reasoning and cache key)."""
    body: dict[str, Any] = {
        "model": model,
        "instructions": "You are Codex, a coding agent.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [
                    {"type": "input_text", "text": "<permissions>workspace-write</permissions>"}
                ],
            },
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        ],
        "tools": [EXEC_TOOL],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199a213-81c0-7800-8aa1-bbab2a035a53",
    }
    body.update(extra)
    return body


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


def post(omen: Omen, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/responses",
        json=body,
        headers={"authorization": f"Bearer {APP_KEY}", "session-id": "codex-conv-1"},
        timeout=20,
    )


@pytest.mark.parametrize("model", [GPT, LOCAL, CLAUDE])
def test_the_sdk_gets_an_answer_from_every_kind_of_upstream(omen: Omen, model: str) -> None:
    client = omen.client()
    answer = client.responses.create(model=model, input="Say hello", store=False)
    assert answer.status == "completed"
    assert answer.output_text == "Hello! How can I help you today?"
    assert answer.model == model and answer.usage is not None
    assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0
    with client.responses.stream(model=model, input="Say hello") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "Hello! How can I help you today?"
    assert final.status == "completed" and final.usage is not None


def test_an_openai_upstream_gets_the_codex_body_unchanged(omen: Omen, ups: Ups) -> None:
    body = codex_body(GPT)
    reply = post(omen, body)
    assert reply.status_code == 200, reply.text
    sent = ups.openai.requests_to("/v1/responses")[-1]
    assert sent.json == body
    kinds = [e["type"] for e in events(reply.text)]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert reply.headers["x-omen-session"] == "codex-conv-1"
    row = wait_for_rows(omen.database, 1)[-1]
    assert row.kind == "responses" and row.provider == "openai"  # type: ignore[attr-defined]
    assert row.decision["passthrough"] is True  # type: ignore[attr-defined]
    assert row.prompt_tokens > 0 and row.cost_usd > 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", [GPT, LOCAL, CLAUDE])
def test_a_function_tool_round_trip(omen: Omen, ups: Ups, model: str) -> None:
    fake = {GPT: ups.openai, LOCAL: ups.ollama, CLAUDE: ups.anthropic}[model]
    fake.script.push(ToolCallReply([ToolCall("exec_command", {"cmd": "echo omen-7"})]))
    fake.script.push(TextReply("The command printed omen-7."))
    client = omen.client()
    first = client.responses.create(model=model, input="run it", tools=[EXEC_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "exec_command"
    assert json.loads(calls[0].arguments) == {"cmd": "echo omen-7"}
    history: Any = [
        {"role": "user", "content": "run it"},
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "exec_command",
            "arguments": calls[0].arguments,
        },
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "omen-7\n"},
    ]
    with client.responses.stream(model=model, input=history, tools=[EXEC_TOOL]) as stream:
        final = stream.get_final_response()
    assert final.output_text == "The command printed omen-7."
    assert "omen-7" in json.dumps(fake.last_request.json)  # the tool's output reached it


def test_codex_reasoning_and_namespace_items_translate_for_a_local_model(
    omen: Omen, ups: Ups
) -> None:
    body = codex_body(LOCAL)
    body["input"] += [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB..."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "more"}]},
    ]
    body["tools"] = [
        EXEC_TOOL,
        {"type": "web_search"},
        {
            "type": "namespace",
            "name": "mcp__docs",
            "description": "Docs server",
            "tools": [
                {
                    "type": "function",
                    "name": "search",
                    "description": "Search the docs",
                    "parameters": {"type": "object", "properties": {}},
                }
            ],
        },
    ]
    reply = post(omen, body)
    assert reply.status_code == 200, reply.text
    kinds = [e["type"] for e in events(reply.text)]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    sent = ups.ollama.requests_to("/api/chat")[-1].json
    names = [t["function"]["name"] for t in sent["tools"]]
    assert "exec_command" in names and len(names) == 2  # web_search has no local equivalent
    row = wait_for_rows(omen.database, 1)[-1]
    dropped = row.decision["dropped"]  # type: ignore[attr-defined]
    assert any(d.startswith("web_search") and d.endswith("(ollama)") for d in dropped)
    assert any(d.startswith("reasoning") for d in dropped)


def test_an_item_omen_cannot_parse_is_a_400_naming_it(omen: Omen) -> None:
    body = codex_body(GPT)
    body["input"].append({"type": "telepathy", "thought": "?"})
    reply = post(omen, body)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "input[2]" in error["message"] and error["type"] == "invalid_request_error"


def test_a_stateful_request_is_refused_clearly(omen: Omen) -> None:
    reply = post(omen, codex_body(GPT, previous_response_id="resp_123"))
    assert reply.status_code == 400
    assert "previous_response_id" in reply.json()["error"]["message"]


def test_input_tokens_counts_without_running(omen: Omen) -> None:
    reply = httpx.post(
        f"{omen.url}/v1/responses/input_tokens",
        json={"model": LOCAL, "input": "How many tokens is this?"},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["object"] == "response.input_tokens"
    assert reply.json()["input_tokens"] > 0
    assert reply.headers["x-omen-estimate"] == "true"


def test_a_rate_limited_upstream_reaches_codex_as_a_failed_response(omen: Omen, ups: Ups) -> None:
    from tests.fakes import MidStreamError

    ups.ollama.script.push(MidStreamError(after_chunks=2))
    reply = post(omen, codex_body(LOCAL))
    assert reply.status_code == 200
    last = events(reply.text)[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["error"]["code"]


def test_the_sdk_raises_for_errors_in_openai_shape(omen: Omen) -> None:
    client = omen.client()
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")


def test_claude_code_on_an_openai_model_names_what_gpt_4o_cannot_take(omen: Omen, ups: Ups) -> None:
    body = {
        "model": GPT,
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "context_management": {"edits": [{"type": "clear_thinking_20251015"}]},
    }
    reply = httpx.post(
        f"{omen.url}/v1/messages",
        json=body,
        headers={"x-api-key": APP_KEY, "anthropic-version": "2023-06-01"},
        timeout=20,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"][0]["text"] == "Hello! How can I help you today?"
    sent = ups.openai.requests_to("/v1/chat/completions")[-1].json
    assert "reasoning_effort" not in sent  # gpt-4o refuses it
    assert "cache_control" not in json.dumps(sent)  # OpenAI caches prefixes by itself
    row = wait_for_rows(omen.database, 1)[-1]
    dropped = row.decision["dropped"]  # type: ignore[attr-defined]
    assert dropped == ["context_management (openai)", "reasoning_effort (openai)"]
