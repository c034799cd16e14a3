"""The OpenAI-compatible API through the real stack, driven with the official openai SDK."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.fakes import ErrorReply, TextReply, ToolCall, ToolCallReply
from tests.integration.conftest import APP_KEY, Omen, Upstreams, wait_for_rows

HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize(("model", "provider"), [("llama3.1:8b", "ollama"), ("gpt-4o", "openai")])
def test_non_streaming_chat_answers_with_the_concrete_model_and_omen_headers(
    omen: Omen, upstreams: Upstreams, model: str, provider: str
) -> None:
    fake = upstreams.ollama if provider == "ollama" else upstreams.openai
    fake.script.push(TextReply("Hello there!", prompt_tokens=11, completion_tokens=3))
    raw = omen.client().chat.completions.with_raw_response.create(model=model, messages=HELLO)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == model
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    assert completion.usage.completion_tokens == 3
    assert raw.headers["x-omen-provider"] == provider
    assert raw.headers["x-omen-model"] == model
    assert raw.headers["x-omen-intent"]
    assert raw.headers["x-omen-route-reason"]
    request_id = raw.headers["x-omen-request-id"]
    expected_cost = 0.0 if provider == "ollama" else 11 * 0.0025 / 1000 + 3 * 0.01 / 1000
    assert float(raw.headers["x-omen-cost-usd"]) == pytest.approx(expected_cost, abs=1e-6)
    (row,) = wait_for_rows(omen.database, 1)
    assert row.id == request_id  # type: ignore[attr-defined]
    assert row.provider == provider  # type: ignore[attr-defined]
    assert row.container == "app"  # type: ignore[attr-defined]
    assert (row.prompt_tokens, row.completion_tokens) == (11, 3)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(expected_cost)  # type: ignore[attr-defined]


def test_auto_answers_with_a_concrete_model_and_says_why(omen: Omen) -> None:
    raw = omen.client().chat.completions.with_raw_response.create(model="auto", messages=HELLO)
    assert raw.parse().model in ("llama3.1:8b", "gpt-4o")
    reason = raw.headers["x-omen-route-reason"]
    assert reason.startswith("intent=general")
    assert "balanced" in reason and raw.headers["x-omen-provider"] in reason


@pytest.mark.parametrize("model", ["llama3.1:8b", "gpt-4o"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_streaming_is_openai_shaped_and_usage_is_recorded_either_way(
    omen: Omen, upstreams: Upstreams, model: str, include_usage: bool
) -> None:
    fake = upstreams.ollama if model.startswith("llama") else upstreams.openai
    fake.script.push(TextReply("one two three four", prompt_tokens=9, completion_tokens=4))
    kwargs: dict[str, object] = {}
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}
    with omen.client().chat.completions.with_streaming_response.create(
        model=model,
        messages=HELLO,
        stream=True,
        **kwargs,  # type: ignore[arg-type]
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-omen-provider"] in ("ollama", "openai")
        chunks = list(response.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
        assert usage_chunks[0].usage.completion_tokens == 4  # type: ignore[union-attr]
        assert chunks[-1] is usage_chunks[0]
    else:
        assert usage_chunks == []  # asked upstream, stripped from the client's stream
    if fake is upstreams.openai:
        sent = fake.requests_to("/v1/chat/completions")[-1].json
        assert sent["stream_options"]["include_usage"] is True
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (9, 4)  # type: ignore[attr-defined]
    assert row.stream is True  # type: ignore[attr-defined]
    assert row.ttft_ms is not None  # type: ignore[attr-defined]
    if model == "gpt-4o":
        assert row.cost_usd == pytest.approx(9 * 0.0025 / 1000 + 4 * 0.01 / 1000)  # type: ignore[attr-defined]


def test_raw_stream_ends_with_done(omen: Omen) -> None:
    with httpx.stream(
        "POST",
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        timeout=10,
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)
    first = json.loads(lines[0][6:])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


@pytest.mark.parametrize("model", ["llama3.1:8b", "gpt-4o"])
def test_tool_calls_non_streaming(omen: Omen, upstreams: Upstreams, model: str) -> None:
    fake = upstreams.ollama if model.startswith("llama") else upstreams.openai
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]))
    completion = omen.client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert call.id
    sent = fake.requests[-1].json
    assert sent["tools"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("model", ["llama3.1:8b", "gpt-4o"])
def test_tool_calls_streaming_reassemble(omen: Omen, upstreams: Upstreams, model: str) -> None:
    fake = upstreams.ollama if model.startswith("llama") else upstreams.openai
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "New York City"})]))
    stream = omen.client().chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Weather in NYC?"}],
        tools=[WEATHER_TOOL],
        stream=True,  # type: ignore[list-item]
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "New York City"}
    assert finish == "tool_calls"


def test_tool_results_reach_ollama_as_objects_with_tool_name(
    omen: Omen, upstreams: Upstreams
) -> None:
    omen.client().chat.completions.create(
        model="llama3.1:8b",
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        ],  # type: ignore[list-item]
    )
    sent = upstreams.ollama.requests_to("/api/chat")[-1].json
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert sent["messages"][2] == {
        "role": "tool",
        "content": '{"temp": 21}',
        "tool_name": "get_weather",
    }


def test_image_parts_reach_ollama_as_base64_images(omen: Omen, upstreams: Upstreams) -> None:
    omen.client().chat.completions.create(
        model="llama3.1:8b",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            }
        ],  # type: ignore[list-item]
    )
    message = upstreams.ollama.requests_to("/api/chat")[-1].json["messages"][0]
    assert message == {
        "role": "user",
        "content": "What is in this picture?",
        "images": ["iVBORw0KGgo="],
    }


def test_image_parts_pass_through_to_openai_unchanged(omen: Omen, upstreams: Upstreams) -> None:
    parts = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
    ]
    omen.client().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": parts}]
    )  # type: ignore[list-item]
    sent = upstreams.openai.requests_to("/v1/chat/completions")[-1].json
    assert sent["messages"][0]["content"] == parts
    assert "metadata" not in sent


@pytest.mark.parametrize(
    ("model", "dims"), [("nomic-embed-text", None), ("text-embedding-3-small", None)]
)
def test_embeddings_through_both_adapters(omen: Omen, model: str, dims: int | None) -> None:
    result = omen.client().embeddings.create(model=model, input=["alpha", "beta"])
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) > 0 for d in result.data)
    assert result.usage.prompt_tokens > 0
    rows = wait_for_rows(omen.database, 1)
    assert rows[-1].kind == "embeddings"  # type: ignore[attr-defined]


def test_models_list_has_every_model_and_auto(omen: Omen) -> None:
    ids = {m.id for m in omen.client().models.list()}
    assert {"auto", "llama3.1:8b", "gpt-4o", "nomic-embed-text", "text-embedding-3-small"} <= ids


# --- errors ------------------------------------------------------------------------------


def post(omen: Omen, body: bytes | dict[str, object], key: str | None = APP_KEY) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{omen.url}/v1/chat/completions", content=content, headers=headers, timeout=10
    )


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error  # type: ignore[no-any-return]


def test_missing_and_unknown_keys_get_401(omen: Omen) -> None:
    assert_openai_error(post(omen, {"model": "gpt-4o", "messages": HELLO}, key=None), 401)
    assert_openai_error(post(omen, {"model": "gpt-4o", "messages": HELLO}, key="sk-nope"), 401)
    with pytest.raises(openai.AuthenticationError):
        omen.client(key="sk-wrong").chat.completions.create(model="gpt-4o", messages=HELLO)  # type: ignore[arg-type]


def test_container_id_of_another_container_is_403(omen: Omen) -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"container_id": "other"}}
    error = assert_openai_error(post(omen, body), 403)
    assert error["code"] == "container_mismatch"
    with pytest.raises(openai.PermissionDeniedError):
        omen.client().chat.completions.create(
            model="gpt-4o",
            messages=HELLO,
            metadata={"container_id": "other"},  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        ({"messages": HELLO}, "model"),
        ({"model": 42, "messages": HELLO}, "model"),
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": "hi"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": "gpt-4o", "messages": HELLO, "max_tokens": "many"}, "max_tokens"),
        ({"model": "gpt-4o", "messages": HELLO, "temperature": "hot"}, "temperature"),
        (
            {"model": "gpt-4o", "messages": HELLO, "tools": [{"type": "function"}]},
            "tools[0].function",
        ),
    ],
)
def test_bad_input_is_400_never_500(
    omen: Omen, body: bytes | dict[str, object], param: str | None
) -> None:
    error = assert_openai_error(post(omen, body), 400)
    if param is not None:
        assert error["param"] == param


def test_unknown_model_is_404(omen: Omen) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        omen.client().chat.completions.create(model="no-such-model", messages=HELLO)  # type: ignore[arg-type]
    assert "no-such-model" in str(info.value)
    rows = wait_for_rows(omen.database, 1)
    assert rows[-1].status == 404  # type: ignore[attr-defined]


def test_oversized_body_is_413(omen_factory: object, upstreams: Upstreams) -> None:
    from tests.integration.conftest import base_config

    small = omen_factory(base_config(upstreams), server_extra='max_body_size = "4KiB"')  # type: ignore[operator]
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}
    error = assert_openai_error(post(small, big), 413)
    assert error["code"] == "body_too_large"
    assert post(small, {"model": "gpt-4o", "messages": HELLO}).status_code == 200


def test_upstream_errors_are_mapped_to_openai_shape(omen: Omen, upstreams: Upstreams) -> None:
    upstreams.openai.script.push(ErrorReply(429))
    response = post(omen, {"model": "gpt-4o", "messages": HELLO})
    error = assert_openai_error(response, 429)
    assert "retry-after" in response.headers
    assert error["message"]
    upstreams.openai.script.push(ErrorReply(400))
    assert_openai_error(post(omen, {"model": "gpt-4o", "messages": HELLO}), 400)
    upstreams.openai.script.push(ErrorReply(500))
    # SPEC: when no upstream could answer, 502/503/504 — an upstream's 500 is not Omen's 500.
    assert_openai_error(post(omen, {"model": "gpt-4o", "messages": HELLO}), 502)


def test_upstream_rejecting_omens_key_is_502_not_401(
    omen_factory: object, upstreams: Upstreams
) -> None:
    from tests.integration.conftest import base_config

    instance = omen_factory(base_config(upstreams), extra_env={"TEST_UPSTREAM_KEY": "sk-wrong"})  # type: ignore[operator]
    error = assert_openai_error(post(instance, {"model": "gpt-4o", "messages": HELLO}), 502)
    assert "credentials" in str(error["message"])


def test_unreachable_upstream_is_502_with_the_reason(
    omen_factory: object, upstreams: Upstreams
) -> None:
    from tests.fakes import refusing_url
    from tests.integration.conftest import base_config

    config = base_config(upstreams).replace(upstreams.ollama_server.url, refusing_url())
    instance = omen_factory(config)  # type: ignore[operator]
    error = assert_openai_error(post(instance, {"model": "llama3.1:8b", "messages": HELLO}), 502)
    assert "connect" in str(error["message"])


def test_unknown_route_is_openai_shaped_404(omen: Omen) -> None:
    response = httpx.get(f"{omen.url}/v1/nothing-here")
    assert_openai_error(response, 404)
