"""The fake upstreams speak the recorded wire formats (shared/reference/PROVIDER_WIRE_FORMATS.md)
and do what their Script says."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import (
    CutStream,
    Delay,
    ErrorReply,
    FakeState,
    MidStreamError,
    RunningFake,
    Script,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_ollama_app,
    make_openai_app,
    refusing_url,
    run_fake,
)

HELLO = [{"role": "user", "content": "Say hello to me"}]


def _reset(fake: FakeState) -> FakeState:
    fake.script.clear()
    fake.script.default = TextReply()
    fake.models, fake.loaded, fake.api_key = [], [], None
    fake.reset()
    return fake


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[FakeState, RunningFake]]]:
    running: dict[str, tuple[FakeState, RunningFake]] = {}
    for name in ("openai", "xai", "azure", "ollama"):
        fake = FakeState()
        app = make_ollama_app(fake) if name == "ollama" else make_openai_app(fake, name)  # type: ignore[arg-type]
        running[name] = (fake, run_fake(app))
    yield running
    for _, server in running.values():
        server.stop()


def _pick(servers: dict[str, tuple[FakeState, RunningFake]], name: str) -> tuple[FakeState, str]:
    fake, server = servers[name]
    return _reset(fake), server.url


@pytest.fixture
def openai(servers: dict[str, tuple[FakeState, RunningFake]]) -> tuple[FakeState, str]:
    return _pick(servers, "openai")


@pytest.fixture
def xai(servers: dict[str, tuple[FakeState, RunningFake]]) -> tuple[FakeState, str]:
    return _pick(servers, "xai")


@pytest.fixture
def azure(servers: dict[str, tuple[FakeState, RunningFake]]) -> tuple[FakeState, str]:
    return _pick(servers, "azure")


@pytest.fixture
def ollama(servers: dict[str, tuple[FakeState, RunningFake]]) -> tuple[FakeState, str]:
    return _pick(servers, "ollama")


def _sse(response: httpx.Response) -> list[Any]:
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("\n\n")
    events = []
    for block in response.text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def _ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


def _chat(url: str, **body: Any) -> httpx.Response:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", HELLO)
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=5)


# --- OpenAI --------------------------------------------------------------------------------


def test_openai_completion_has_the_recorded_shape(openai: tuple[FakeState, str]) -> None:
    body = _chat(openai[1]).json()
    assert list(body) == [
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "service_tier",
        "system_fingerprint",
    ]
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I help you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = body["usage"]
    assert usage["completion_tokens"] == 7
    assert usage["total_tokens"] == usage["prompt_tokens"] + 7
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert set(usage["completion_tokens_details"]) == {
        "reasoning_tokens",
        "audio_tokens",
        "accepted_prediction_tokens",
        "rejected_prediction_tokens",
    }


def test_openai_stream_with_usage_ends_with_usage_chunk_then_done(
    openai: tuple[FakeState, str],
) -> None:
    events = _chat(openai[1], stream=True, stream_options={"include_usage": True})
    chunks, done = _sse(events)[:-1], _sse(events)[-1]
    assert done == "[DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-2]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 7
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2])
    assert text == "Hello! How can I help you today?"
    for chunk in chunks[:-1]:
        assert chunk["usage"] is None
        assert chunk["service_tier"] == "default" and "obfuscation" in chunk
        assert chunk["choices"][0]["finish_reason"] in (None, "stop")
    assert len({c["id"] for c in chunks}) == 1


def test_openai_stream_without_usage_or_obfuscation_has_neither(
    openai: tuple[FakeState, str],
) -> None:
    chunks = _sse(_chat(openai[1], stream=True, stream_options={"include_obfuscation": False}))
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c and "obfuscation" not in c for c in chunks[:-1])


def test_openai_tool_call_streams_name_first_then_argument_pieces(
    openai: tuple[FakeState, str],
) -> None:
    fake, url = openai
    fake.script.push(
        ToolCallReply([ToolCall("get_weather", {"city": "New York City"}, id="call_1")])
    )
    chunks = _sse(_chat(url, stream=True))[:-1]
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ],
        "refusal": None,
    }
    pieces = [
        c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for c in chunks[1:-1]
    ]
    assert pieces == ['{"', "city", '":"', "New", " York", " City", '"}']
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_tool_call_completion(openai: tuple[FakeState, str]) -> None:
    openai[0].script.push(ToolCallReply([ToolCall("lookup", {"q": 1})]))
    choice = _chat(openai[1]).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "lookup", "arguments": '{"q":1}'}


def test_openai_errors_use_the_real_bodies(openai: tuple[FakeState, str]) -> None:
    fake, url = openai
    fake.api_key = "sk-right-key-1234"
    wrong = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"Authorization": "Bearer sk-wrong-key-9999"},
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert set(wrong.json()["error"]) == {"message", "type", "param", "code"}

    fake.api_key, fake.models = None, ["gpt-4o"]
    missing = _chat(url, model="gpt-9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"

    fake.script.push(ErrorReply(429))
    fake.script.push(ErrorReply(500))
    limited = _chat(url)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["type"] == "tokens"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    broken = _chat(url)
    assert broken.status_code == 500
    assert broken.json()["error"] == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert _chat(url).status_code == 200


def test_openai_mid_stream_error_is_a_data_event(openai: tuple[FakeState, str]) -> None:
    openai[0].script.push(MidStreamError(after_chunks=2, message="boom"))
    events = _sse(_chat(openai[1], stream=True))
    assert [e["choices"][0]["delta"].get("content") for e in events[:3]] == ["", "Hello!", " How"]
    assert events[3] == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": None}
    }
    assert len(events) == 4


def test_cut_stream_drops_the_connection(openai: tuple[FakeState, str]) -> None:
    openai[0].script.push(CutStream(after_chunks=1))
    received = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream(
            "POST", f"{openai[1]}/v1/chat/completions", json={"model": "m", "stream": True}
        ) as r,
    ):
        for line in r.iter_lines():
            received.append(line)
    assert any("Hello!" in line for line in received)
    assert not any("[DONE]" in line for line in received)


def test_models_and_embeddings(openai: tuple[FakeState, str]) -> None:
    fake, url = openai
    fake.models = ["gpt-4o", "text-embedding-3-small"]
    listed = httpx.get(f"{url}/v1/models").json()
    assert listed["object"] == "list"
    assert listed["data"][0] == {
        "id": "gpt-4o",
        "object": "model",
        "created": 1715367049,
        "owned_by": "system",
    }
    request = {"model": "text-embedding-3-small", "input": ["a cat", "a dog"]}
    first = httpx.post(f"{url}/v1/embeddings", json=request).json()
    again = httpx.post(f"{url}/v1/embeddings", json=request).json()
    assert first["data"] == again["data"]
    assert [len(d["embedding"]) for d in first["data"]] == [8, 8]
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]
    assert first["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


# --- xAI and Azure -------------------------------------------------------------------------


def test_xai_sends_a_tool_call_whole_and_omits_finish_reason_until_the_end(
    xai: tuple[FakeState, str],
) -> None:
    xai[0].script.push(
        ToolCallReply([ToolCall("weather", {"location": "San Francisco"}, id="call_55117580")])
    )
    chunks = _sse(
        _chat(xai[1], model="grok-3-mini", stream=True, stream_options={"include_usage": True})
    )
    assert chunks[-1] == "[DONE]"
    uuid.UUID(chunks[0]["id"])
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {
                "tool_calls": [
                    {
                        "id": "call_55117580",
                        "function": {
                            "name": "weather",
                            "arguments": '{"location":"San Francisco"}',
                        },
                        "index": 0,
                        "type": "function",
                    }
                ],
                "role": "assistant",
            },
        }
    ]
    assert chunks[1]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]
    usage = chunks[2]["usage"]
    assert (
        chunks[2]["choices"] == []
        and usage["num_sources_used"] == 0
        and usage["cost_in_usd_ticks"] > 0
    )
    assert all("obfuscation" not in c and "logprobs" not in str(c) for c in chunks[:-1])


def test_azure_stream_opens_with_the_prompt_filter_chunk(azure: tuple[FakeState, str]) -> None:
    fake, url = azure
    fake.models, fake.api_key = ["gpt-4o-prod"], "azure-key"
    path = f"{url}/openai/deployments/gpt-4o-prod/chat/completions"
    response = httpx.post(
        path,
        params={"api-version": "2024-10-21"},
        json={"messages": HELLO, "stream": True},
        headers={"api-key": "azure-key"},
    )
    chunks = _sse(response)
    first = chunks[0]
    assert list(first) == ["choices", "created", "id", "model", "object", "prompt_filter_results"]
    assert (first["choices"], first["created"], first["id"], first["object"]) == ([], 0, "", "")
    assert chunks[1]["choices"][0]["content_filter_results"] == {}
    assert chunks[2]["choices"][0]["content_filter_results"]["hate"] == {
        "filtered": False,
        "severity": "safe",
    }
    assert chunks[1]["model"] == "gpt-4o-prod" and chunks[-1] == "[DONE]"

    whole = httpx.post(
        path,
        params={"api-version": "2024-10-21"},
        json={"messages": HELLO},
        headers={"api-key": "azure-key"},
    )
    assert "prompt_filter_results" in whole.json()
    assert "content_filter_results" in whole.json()["choices"][0]


def test_azure_errors_have_a_string_code_and_no_type(azure: tuple[FakeState, str]) -> None:
    fake, url = azure
    fake.models = ["gpt-4o-prod"]
    query = {"api-version": "2024-10-21"}
    unknown = httpx.post(
        f"{url}/openai/deployments/nope/chat/completions",
        params=query,
        json={},
        headers={"api-key": "k"},
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "DeploymentNotFound"
    keyless = httpx.post(
        f"{url}/openai/deployments/gpt-4o-prod/chat/completions", params=query, json={}
    )
    assert keyless.status_code == 401 and keyless.json()["error"]["code"] == "401"
    fake.script.push(ErrorReply(429))
    limited = httpx.post(
        f"{url}/openai/deployments/gpt-4o-prod/chat/completions",
        params=query,
        json={"messages": HELLO},
        headers={"api-key": "k"},
    )
    assert limited.status_code == 429 and "retry-after" in limited.headers
    assert (
        set(limited.json()["error"]) == {"code", "message"}
        and limited.json()["error"]["code"] == "429"
    )


# --- Ollama --------------------------------------------------------------------------------


def test_ollama_streams_ndjson_by_default_and_ends_with_the_done_chunk(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(TextReply("Hi there", prompt_tokens=0))
    lines = _ndjson(httpx.post(f"{url}/api/chat", json={"model": "llama3.2", "messages": HELLO}))
    assert [line["message"] for line in lines[:-1]] == [
        {"role": "assistant", "content": "Hi"},
        {"role": "assistant", "content": " there"},
    ]
    assert all(line["done"] is False for line in lines[:-1])
    done = lines[-1]
    assert list(done) == [
        "model",
        "created_at",
        "message",
        "done_reason",
        "done",
        "total_duration",
        "load_duration",
        "eval_count",
        "eval_duration",
    ]  # prompt_eval_count/duration are zero, so omitted
    assert done["done"] is True and done["done_reason"] == "stop" and done["eval_count"] == 2
    assert done["message"] == {"role": "assistant", "content": ""}


def test_ollama_tool_call_arguments_are_an_object(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]), times=2)
    body = {"model": "llama3.2", "messages": HELLO, "stream": False}
    whole = httpx.post(f"{url}/api/chat", json=body).json()
    assert whole["done"] is True and "prompt_eval_count" in whole and whole["eval_duration"] > 0
    assert whole["message"]["tool_calls"] == [
        {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    lines = _ndjson(httpx.post(f"{url}/api/chat", json={**body, "stream": True}))
    assert lines[0]["message"]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert lines[-1]["done"] is True


def test_ollama_errors(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.models = ["llama3.2"]
    missing = httpx.post(f"{url}/api/chat", json={"model": "mistral", "messages": HELLO})
    assert missing.status_code == 404
    assert missing.json() == {"error": 'model "mistral" not found, try pulling it first'}
    fake.script.push(MidStreamError(after_chunks=1, message="llama runner crashed"))
    broken = httpx.post(f"{url}/api/chat", json={"model": "llama3.2:latest", "messages": HELLO})
    assert broken.status_code == 200
    assert _ndjson(broken)[-1] == {"error": "llama runner crashed"}


def test_ollama_listing_endpoints(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.models, fake.loaded = ["llama3.2", "qwen2.5:7b"], ["qwen2.5:7b"]
    tags = httpx.get(f"{url}/api/tags").json()["models"]
    assert [m["name"] for m in tags] == ["llama3.2:latest", "qwen2.5:7b"]
    assert tags[0]["details"]["format"] == "gguf"
    ps = httpx.get(f"{url}/api/ps").json()["models"]
    assert [m["model"] for m in ps] == ["qwen2.5:7b"]
    assert {"size_vram", "expires_at", "context_length"} <= set(ps[0])
    assert httpx.get(f"{url}/api/version").json() == {"version": "0.5.1"}
    embed = httpx.post(f"{url}/api/embed", json={"model": "llama3.2", "input": "hi"}).json()
    assert list(embed) == [
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    ]
    assert len(embed["embeddings"]) == 1 and len(embed["embeddings"][0]) == 8


# --- Script, counters, server --------------------------------------------------------------


def test_script_prefers_sticky_model_replies_then_queue_then_default() -> None:
    script = Script()
    script.push(ErrorReply(500), times=2)
    script.for_model("broken", ErrorReply(503))
    assert script.next_for("broken") == ErrorReply(503)
    assert script.next_for("ok") == ErrorReply(500)
    assert script.pending == 1
    script.next_for("ok")
    assert script.next_for("ok") == TextReply()
    script.for_model("broken", None)
    assert script.next_for("broken") == TextReply()


async def test_in_flight_requests_are_counted_and_recorded(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.script.default = Delay(0.2, TextReply("ok"))
    async with httpx.AsyncClient(base_url=url) as client:
        body = {"model": "llama3.2", "messages": HELLO, "stream": False}
        replies = await asyncio.gather(*(client.post("/api/chat", json=body) for _ in range(5)))
    assert [r.status_code for r in replies] == [200] * 5
    assert fake.max_in_flight == 5 and fake.in_flight == 0 and fake.served == 5
    assert fake.last_request.path == "/api/chat" and fake.last_request.json == body
    assert fake.last_request.headers["content-type"] == "application/json"


def test_refusing_url_refuses() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(refusing_url() + "/v1/models", timeout=2)


def test_run_fake_is_a_context_manager() -> None:
    with run_fake(make_openai_app(FakeState(models=["m"]))) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "m"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v1/models", timeout=2)


# --- The official SDK reads the fakes ------------------------------------------------------


def test_openai_sdk_parses_streams_tool_calls_and_errors(openai: tuple[FakeState, str]) -> None:
    sdk = pytest.importorskip("openai")
    fake, url = openai
    client = sdk.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TextReply().text
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7

    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]))
    message = client.chat.completions.create(model="gpt-4o", messages=HELLO).choices[0].message
    assert message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}

    fake.script.push(MidStreamError())
    with pytest.raises(sdk.APIError):
        list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    fake.script.push(ErrorReply(429))
    with pytest.raises(sdk.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)


def test_azure_sdk_reads_the_azure_fake(azure: tuple[FakeState, str]) -> None:
    sdk = pytest.importorskip("openai")
    azure[0].models = ["prod"]
    client = sdk.AzureOpenAI(
        azure_endpoint=azure[1], api_key="k", api_version="2024-10-21", max_retries=0
    )
    chunks = list(client.chat.completions.create(model="prod", messages=HELLO, stream=True))
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TextReply().text
    )
    with pytest.raises(sdk.NotFoundError):
        client.chat.completions.create(model="missing", messages=HELLO)
