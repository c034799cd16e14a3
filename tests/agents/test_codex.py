"""Codex CLI (npm @openai/codex) as Omen's client: `codex exec` with a CODEX_HOME whose
config.toml names Omen as its Responses provider, through `omen serve` to fake upstreams of
every wire format, and once straight to a recording server, to pin what Codex sends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents.conftest import (
    AGENT_TEST_TIMEOUT,
    CONTAINER,
    MARKER,
    MARKER_COMMAND,
    OPENAI_MODEL,
    Codex,
    Recorder,
    Upstream,
    session_of,
    store_rows,
    tool_results,
)
from tests.fakes import Script, TextReply, ToolCall, ToolCallReply
from tests.integration.conftest import APP_KEY, Omen

pytestmark = pytest.mark.timeout(AGENT_TEST_TIMEOUT)

UPSTREAM_PATHS = {"openai": "/v1/responses", "anthropic": "/v1/messages", "ollama": "/api/chat"}
KINDS = ["openai", "anthropic", "ollama"]


def run_marker_command() -> ToolCallReply:
    return ToolCallReply([ToolCall("exec_command", {"cmd": MARKER_COMMAND}, id="call_marker1")])


def test_codex_sends_one_streamed_stateless_responses_request(
    codex_bin: Path, recorder: Recorder, tmp_path: Path
) -> None:
    recorder.fake.script.push(TextReply("hello from the recorder"))
    codex = Codex(codex_bin, tmp_path, f"{recorder.url}/v1", APP_KEY, OPENAI_MODEL)

    run = codex.exec("Say hello").ok()

    assert "hello from the recorder" in run.stdout, run.describe()
    # No GET /models, no HEAD probe, no count: one POST per model turn.
    assert [(r.method, r.path) for r in recorder.fake.requests] == [("POST", "/v1/responses")]
    (request,) = recorder.fake.requests
    session = Codex.session_id(run)
    headers = request.headers
    assert headers["authorization"] == f"Bearer {APP_KEY}"
    assert headers["accept"] == "text/event-stream"
    assert headers["session-id"] == headers["thread-id"] == session
    assert headers["x-client-request-id"] == session
    assert headers["originator"] == "codex_exec"
    assert "content-encoding" not in headers  # plain JSON to a custom provider
    body = request.json
    assert {
        "model",
        "stream",
        "input",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "store",
        "include",
        "prompt_cache_key",
        "client_metadata",
    } <= set(body)
    assert body["model"] == OPENAI_MODEL
    assert body["stream"] is True and body["store"] is False
    assert body["prompt_cache_key"] == session
    assert body["include"] == ["reasoning.encrypted_content"]
    assert "previous_response_id" not in body and "max_output_tokens" not in body
    assert [(i["type"], i["role"]) for i in body["input"]][-1] == ("message", "user")
    assert {i["role"] for i in body["input"]} == {"developer", "user"}
    tools = {t.get("name", t["type"]): t for t in body["tools"]}
    assert tools["exec_command"]["type"] == "function"
    assert tools["exec_command"]["parameters"]["required"] == ["cmd"]
    assert tools["apply_patch"]["type"] == "custom"  # a free-form grammar tool, for gpt-5.5
    assert "web_search" in tools


def test_codex_runs_exec_command_and_sends_its_output_back(
    codex_bin: Path, recorder: Recorder, tmp_path: Path
) -> None:
    recorder.fake.script.push(run_marker_command())
    recorder.fake.script.push(TextReply("the marker came back"))
    codex = Codex(codex_bin, tmp_path, f"{recorder.url}/v1", APP_KEY, OPENAI_MODEL)

    run = codex.exec("Run the marker command").ok()

    assert "the marker came back" in run.stdout, run.describe()
    first, second = recorder.fake.requests
    # Stateless: the second request repeats the history, then the call and its output.
    call, output = second.json["input"][-2:]
    assert call["type"] == "function_call" and call["call_id"] == "call_marker1"
    assert call["name"] == "exec_command"
    assert output["type"] == "function_call_output" and output["call_id"] == "call_marker1"
    assert MARKER in output["output"]
    assert second.json["input"][: len(first.json["input"])] == first.json["input"]


@pytest.mark.parametrize("kind", KINDS)
def test_codex_answers_through_omen(
    kind: str,
    codex_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    upstream = start_upstream(kind)
    upstream.script.push(TextReply(f"Hello from {kind} through Omen"))
    omen = omen_factory(upstream.toml() + CONTAINER)
    codex = Codex(codex_bin, tmp_path / "codex", f"{omen.url}/v1", APP_KEY, upstream.model)

    run = codex.exec("Say hello").ok()

    assert f"Hello from {kind} through Omen" in run.stdout, run.describe()
    (request,) = upstream.inference()
    assert request.path == UPSTREAM_PATHS[kind]
    if kind == "openai":  # passed through: Codex's own body, tool kinds and all
        tools = {t.get("name", t["type"]): t["type"] for t in request.json["tools"]}
        assert tools["apply_patch"] == "custom" and tools["exec_command"] == "function"
        assert request.json["prompt_cache_key"] == Codex.session_id(run)
        assert request.json["include"] == ["reasoning.encrypted_content"]
    (row,) = store_rows(omen.database, 1)
    assert (row["provider"], row["model"], row["status"]) == (kind, upstream.model, 200)


@pytest.mark.parametrize("kind", KINDS)
def test_codex_tool_round_trip_through_omen(
    kind: str,
    codex_bin: Path,
    start_upstream: Callable[..., Upstream],
    omen_factory: Callable[..., Omen],
    tmp_path: Path,
) -> None:
    upstream = start_upstream(kind)
    upstream.script.push(run_marker_command())
    upstream.script.push(TextReply("The command printed the marker: round-trip-done"))
    omen = omen_factory(upstream.toml() + CONTAINER)
    codex = Codex(codex_bin, tmp_path / "codex", f"{omen.url}/v1", APP_KEY, upstream.model)

    run = codex.exec("Run the marker command and tell me what it printed").ok()

    assert "round-trip-done" in run.stdout, run.describe()
    first, second = upstream.inference()
    assert tool_results(first) == []
    results = tool_results(second)
    assert any(MARKER in result for result in results), second.json
    rows = store_rows(omen.database, 2)
    assert [r["status"] for r in rows] == [200, 200]


def test_codex_session_keeps_one_model_and_endpoint_across_turns(
    codex_bin: Path,
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
    codex = Codex(codex_bin, tmp_path / "codex", f"{omen.url}/v1", APP_KEY, "auto")

    first = codex.exec("Run the marker command").ok()
    session = Codex.session_id(first)
    second = codex.resume(session, "Now say you are done").ok()

    assert "first turn done" in first.stdout, first.describe()
    assert "second turn done" in second.stdout, second.describe()
    rows = store_rows(omen.database, 3)
    assert len(rows) == 3
    assert {r["requested_model"] for r in rows} == {"auto"}
    assert len({(r["provider"], r["model"], r["endpoint"]) for r in rows}) == 1, rows
    assert [session_of(r) for r in rows] == [session] * 3
