"""Claude Code (npm @anthropic-ai/claude-code) as Omen's client: `claude -p` with
ANTHROPIC_BASE_URL at `omen serve`, to an Anthropic upstream (passed through) and a local
Ollama model (translated), and straight to the same fake, to compare what the upstream gets."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agents.conftest import (
    AGENT_TEST_TIMEOUT,
    ANTHROPIC_MODEL,
    CONTAINER,
    INPUT_PER_1K,
    MARKER,
    MARKER_COMMAND,
    OUTPUT_PER_1K,
    ClaudeCode,
    Upstream,
    new_session_id,
    session_of,
    store_rows,
    tool_results,
)
from tests.fakes import RecordedRequest, Script, TextReply, ToolCall, ToolCallReply
from tests.fakes.anthropic_upstream import Thinking
from tests.integration.conftest import APP_KEY, UPSTREAM_KEY, Omen

pytestmark = pytest.mark.timeout(AGENT_TEST_TIMEOUT)

UPSTREAM_PATHS = {"anthropic": "/v1/messages", "ollama": "/api/chat"}
KINDS = ["anthropic", "ollama"]


def run_marker_command() -> ToolCallReply:
    arguments = {"command": MARKER_COMMAND, "description": "Print the marker"}
    return ToolCallReply([ToolCall("Bash", arguments, id="toolu_01Marker")])


def cache_marks(value: Any) -> int:
    return json.dumps(value).count('"cache_control"')


# --- Claude Code with nobody in between ---------------------------------------------------


def test_claude_code_sends_one_streamed_messages_request_with_its_session(
    claude_bin: Path, start_upstream: Callable[..., Upstream], tmp_path: Path
) -> None:
    upstream = start_upstream("anthropic")
    upstream.script.push(TextReply("hello straight from the fake"))
    claude = ClaudeCode(claude_bin, tmp_path, upstream.urls[0], UPSTREAM_KEY)
    session = new_session_id()

    run = claude.ask("Say hello", ANTHROPIC_MODEL, "--session-id", session).ok()

    assert "hello straight from the fake" in run.stdout, run.describe()
    # No GET /v1/models, no count_tokens, no HEAD probe in print mode: one POST per turn.
    routes = [(r.method, r.path, r.query) for r in upstream.fake.requests]
    assert routes == [("POST", "/v1/messages", {"beta": "true"})]
    (request,) = upstream.fake.requests
    headers = request.headers
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert "claude-code-20250219" in headers["anthropic-beta"].split(",")
    assert headers["x-claude-code-session-id"] == session
    assert headers["x-app"] == "cli"
    body = request.json
    assert list(body) == [
        "model",
        "messages",
        "system",
        "tools",
        "metadata",
        "max_tokens",
        "thinking",
        "context_management",
        "output_config",
        "stream",
    ]
    assert body["stream"] is True
    assert body["thinking"]["type"] == "adaptive"
    assert body["context_management"]["edits"][0]["type"] == "clear_thinking_20251015"
    assert json.loads(body["metadata"]["user_id"])["session_id"] == session
    assert [m["role"] for m in body["messages"]] == ["user", "system"]  # system mid-way
    assert cache_marks(body) == 3  # one system block, the mid-way system message, … as sent
    tools = {t["name"]: t for t in body["tools"]}
    assert tools["Bash"]["input_schema"]["required"] == ["command"]


def test_claude_code_runs_bash_and_sends_the_signed_thinking_back(
    claude_bin: Path, start_upstream: Callable[..., Upstream], tmp_path: Path
) -> None:
    upstream = start_upstream("anthropic")
    upstream.script.push(run_marker_command())
    upstream.script.push(TextReply("the marker came back"))
    claude = ClaudeCode(claude_bin, tmp_path, upstream.urls[0], UPSTREAM_KEY)

    run = claude.ask("Run the marker command", ANTHROPIC_MODEL).ok()

    assert "the marker came back" in run.stdout, run.describe()
    _, second = upstream.inference()
    assistant, user = second.json["messages"][-2:]
    thinking, call = assistant["content"]
    assert thinking["type"] == "thinking"
    assert thinking["signature"] == upstream.thinking.signatures[0]  # byte for byte
    assert call == {
        "type": "tool_use",
        "id": "toolu_01Marker",
        "name": "Bash",
        "input": {"command": MARKER_COMMAND, "description": "Print the marker"},
    }
    (result,) = user["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_01Marker"
    assert MARKER in result["content"]
    assert result["cache_control"] == {"type": "ephemeral"}  # the newest turn is marked


# --- through Omen -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_claude_code_answers_through_omen(
    kind: str,
    claude_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    upstream = start_upstream(kind)
    upstream.script.push(TextReply(f"Hello from {kind} through Omen"))
    omen = omen_factory(upstream.toml() + CONTAINER)
    claude = ClaudeCode(claude_bin, tmp_path / "claude", omen.url, APP_KEY)

    run = claude.ask("Say hello", upstream.model).ok()

    assert f"Hello from {kind} through Omen" in run.stdout, run.describe()
    (request,) = upstream.inference()
    assert request.path == UPSTREAM_PATHS[kind]
    (row,) = store_rows(omen.database, 1)
    assert (row["provider"], row["model"], row["status"]) == (kind, upstream.model, 200)


@pytest.mark.parametrize("kind", KINDS)
def test_claude_code_tool_round_trip_through_omen(
    kind: str,
    claude_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    upstream = start_upstream(kind)
    upstream.script.push(run_marker_command())
    upstream.script.push(TextReply("The command printed the marker: round-trip-done"))
    omen = omen_factory(upstream.toml() + CONTAINER)
    claude = ClaudeCode(claude_bin, tmp_path / "claude", omen.url, APP_KEY)

    run = claude.ask("Run the marker command and tell me what it printed", upstream.model).ok()

    assert "round-trip-done" in run.stdout, run.describe()
    first, second = upstream.inference()
    assert tool_results(first) == []
    assert any(MARKER in result for result in tool_results(second)), second.json
    rows = store_rows(omen.database, 2)
    assert [r["status"] for r in rows] == [200, 200]


def _comparable(request: RecordedRequest, thinking: Thinking) -> dict[str, Any]:
    """The body with what differs between two runs by design replaced: thinking signatures
    (each fake signs its own; checked to be one it issued)."""
    body = copy.deepcopy(request.json)
    for message in body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "thinking":
                assert thinking.issued(block["signature"]), "a signature the fake never issued"
                block["signature"] = "<signature>"
    return body


def test_upstream_gets_what_claude_code_sent_and_omen_records_the_cache(
    claude_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    direct = start_upstream("anthropic")
    proxied = start_upstream("anthropic")
    for upstream in (direct, proxied):
        upstream.script.push(run_marker_command())
        upstream.script.push(TextReply("done", prompt_tokens=5000, completion_tokens=7))
    proxied.cache.read_tokens, proxied.cache.creation_tokens = 3000, 1500
    omen = omen_factory(proxied.toml() + CONTAINER)
    # One HOME, working directory and session id for both runs, so that their bodies may be
    # compared; nothing is persisted, so the second run is a new conversation too.
    claude = ClaudeCode(claude_bin, tmp_path / "claude", direct.urls[0], UPSTREAM_KEY)
    once = ("--session-id", new_session_id(), "--no-session-persistence")
    claude.ask("Run the marker command", ANTHROPIC_MODEL, *once).ok()
    claude.base_url, claude.api_key = omen.url, APP_KEY
    claude.ask("Run the marker command", ANTHROPIC_MODEL, *once).ok()

    sent_alone, sent_through = direct.inference(), proxied.inference()
    assert len(sent_alone) == len(sent_through) == 2
    for plain, relayed in zip(sent_alone, sent_through, strict=True):
        assert relayed.query == plain.query or relayed.query == {}
        for header in ("anthropic-beta", "anthropic-version"):
            assert relayed.headers.get(header) == plain.headers[header], header
        assert relayed.headers["x-api-key"] == UPSTREAM_KEY
        want, got = _comparable(plain, direct.thinking), _comparable(relayed, proxied.thinking)
        for key in ("system", "tools", "thinking", "context_management", "metadata"):
            assert got.get(key) == want[key], key
        assert cache_marks(got) == cache_marks(want)
        assert got == want
    rows = store_rows(omen.database, 2)
    last = rows[-1]
    assert (last["prompt_tokens"], last["completion_tokens"]) == (5000, 7)
    assert last["cached_tokens"] == 3000
    assert last["cache_write_tokens"] == 1500
    per_in = INPUT_PER_1K / 1000
    expected = 500 * per_in + 3000 * per_in * 0.1 + 1500 * per_in * 1.25 + 7 * OUTPUT_PER_1K / 1000
    assert last["cost_usd"] == pytest.approx(expected)


def test_count_tokens_of_a_claude_code_body_is_answered_by_the_upstream(
    claude_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    upstream = start_upstream("anthropic")
    upstream.script.push(TextReply("counted"))
    omen = omen_factory(upstream.toml() + CONTAINER)
    claude = ClaudeCode(claude_bin, tmp_path / "claude", omen.url, APP_KEY)
    claude.ask("Say hello", ANTHROPIC_MODEL).ok()
    (sent,) = upstream.inference()
    # What Claude Code counts before compacting: its own body, less what a count does not take.
    body = {k: v for k, v in sent.json.items() if k not in ("max_tokens", "stream", "metadata")}
    headers = {k: sent.headers[k] for k in ("anthropic-version", "anthropic-beta")}

    answer = httpx.post(
        f"{omen.url}/v1/messages/count_tokens",
        json=body,
        headers={**headers, "x-api-key": APP_KEY},
        timeout=30,
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers.get("x-omen-estimate") != "true"
    counted = [r for r in upstream.fake.requests if r.path == "/v1/messages/count_tokens"]
    assert len(counted) == 1
    assert answer.json()["input_tokens"] > 0


def test_claude_code_session_keeps_one_model_and_endpoint_across_turns(
    claude_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    # Two Ollama boxes taken in turn and an Anthropic model: without a session, consecutive
    # requests would alternate between the boxes.
    script = Script()
    local = start_upstream("ollama", endpoints=2, script=script)
    cloud = start_upstream("anthropic", script=script)
    script.push(run_marker_command())
    script.push(TextReply("first turn done"))
    script.push(TextReply("second turn done"))
    omen = omen_factory(local.toml('load_balancing = "round-robin"\n') + cloud.toml() + CONTAINER)
    claude = ClaudeCode(claude_bin, tmp_path / "claude", omen.url, APP_KEY)
    session = new_session_id()

    first = claude.ask("Run the marker command", "auto", "--session-id", session).ok()
    second = claude.ask("Now say you are done", "auto", "--resume", session).ok()

    assert "first turn done" in first.stdout, first.describe()
    assert "second turn done" in second.stdout, second.describe()
    rows = store_rows(omen.database, 3)
    assert len(rows) == 3
    assert {r["requested_model"] for r in rows} == {"auto"}
    assert len({(r["provider"], r["model"], r["endpoint"]) for r in rows}) == 1, rows
    assert [session_of(r) for r in rows] == [session] * 3


# --- the fake these tests lean on (no agent needed) ---------------------------------------


def test_anthropic_fake_counts_tokens_and_refuses_a_signature_it_never_issued(
    start_upstream: Callable[..., Upstream],
) -> None:
    upstream = start_upstream("anthropic")
    url = upstream.urls[0]
    headers = {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"}
    hello = [{"role": "user", "content": "Say hello to everyone here"}]
    counted = httpx.post(
        f"{url}/v1/messages/count_tokens",
        json={"model": ANTHROPIC_MODEL, "messages": hello},
        headers=headers,
    )
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0

    body = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 1000,
        "thinking": {"type": "enabled", "budget_tokens": 500},
        "messages": hello,
    }
    answer = httpx.post(f"{url}/v1/messages", json=body, headers=headers).json()
    thought, text = answer["content"]
    assert thought["type"] == "thinking" and thought["signature"] in upstream.thinking.signatures
    assert text["type"] == "text"
    replayed = [*hello, {"role": "assistant", "content": [thought, text]}, *hello]
    again = httpx.post(f"{url}/v1/messages", json={**body, "messages": replayed}, headers=headers)
    assert again.status_code == 200, again.text
    forged = {**thought, "signature": thought["signature"][:-4] + "AAAA"}
    replayed[1] = {"role": "assistant", "content": [forged, text]}
    refused = httpx.post(f"{url}/v1/messages", json={**body, "messages": replayed}, headers=headers)
    assert refused.status_code == 400
    assert "Invalid `signature` in `thinking` block" in refused.json()["error"]["message"]


def test_anthropic_fake_streams_signed_thinking_before_the_answer(
    start_upstream: Callable[..., Upstream],
) -> None:
    upstream = start_upstream("anthropic")
    body = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 1000,
        "stream": True,
        "thinking": {"type": "adaptive"},
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    headers = {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{upstream.urls[0]}/v1/messages", json=body, headers=headers) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    kinds = [
        (e["type"], e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type"))
        for e in events
        if e["type"].startswith("content_block")
    ]
    assert kinds[0] == ("content_block_start", 0, "thinking")
    assert ("content_block_delta", 0, "thinking_delta") in kinds
    signature = [e for e in events if e.get("delta", {}).get("type") == "signature_delta"]
    assert signature[0]["delta"]["signature"] == upstream.thinking.signatures[0]
    assert ("content_block_start", 1, "text") in kinds
