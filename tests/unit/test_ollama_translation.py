"""Ollama's native /api/chat behind the OpenAI shape: request, response, stream and error
mapping as pure functions over the payloads of PROVIDER_WIRE_FORMATS.md §1 and §4, plus the
adapter end to end against the fake Ollama."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from omen.providers.anthropic import relay_messages
from omen.providers.base import JSON, NativeCall, Relayed, UpstreamError
from omen.providers.http import sse_events
from omen.providers.ollama import (
    OllamaProvider,
    OllamaStreamTranslator,
    from_ollama_chat,
    ollama_error,
    to_ollama_chat,
)
from tests.fakes import (
    ErrorReply,
    FakeState,
    MidStreamError,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_ollama_app,
    run_fake,
)

MODEL = "llama3.2"
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)


def chat(*messages: JSON, **fields: Any) -> JSON:
    return {"model": MODEL, "messages": list(messages), **fields}


def user(content: Any) -> JSON:
    return {"role": "user", "content": content}


# --- request -----------------------------------------------------------------------------


def test_request_names_the_model_and_the_stream_flag() -> None:
    payload = to_ollama_chat(chat(user("Hi")), "llama3.2:latest", stream=True)

    assert payload == {
        "model": "llama3.2:latest",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
    }


def test_system_and_developer_messages_both_become_system() -> None:
    body = chat(
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": "Answer in French."},
        user("Hi"),
    )

    roles = [m["role"] for m in to_ollama_chat(body, MODEL, stream=False)["messages"]]

    assert roles == ["system", "system", "user"]


def test_image_data_url_becomes_bare_base64_beside_the_text() -> None:
    parts = [
        {"type": "text", "text": "What is in"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "text", "text": "this picture?"},
    ]

    (message,) = to_ollama_chat(chat(user(parts)), MODEL, stream=False)["messages"]

    assert message == {
        "role": "user",
        "content": "What is in\nthis picture?",
        "images": [PNG_B64],
    }


def test_text_only_parts_carry_no_images_key() -> None:
    parts = [{"type": "text", "text": "Hello"}]

    (message,) = to_ollama_chat(chat(user(parts)), MODEL, stream=False)["messages"]

    assert message == {"role": "user", "content": "Hello"}


def test_http_image_url_is_refused_as_retryable_400() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]

    with pytest.raises(UpstreamError) as caught:
        to_ollama_chat(chat(user(parts)), MODEL, stream=False)

    assert caught.value.status == 400
    assert caught.value.retryable is True  # another provider may fetch the URL itself
    assert caught.value.code == "unsupported_image_url"


def test_assistant_tool_call_arguments_string_becomes_an_object() -> None:
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_2",
                "type": "function",
                "function": {"name": "get_time", "arguments": "{}"},
            },
        ],
    }

    _, message = to_ollama_chat(chat(user("Weather?"), assistant), MODEL, stream=False)["messages"]

    assert message == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}},
            {"function": {"index": 1, "name": "get_time", "arguments": {}}},
        ],
    }


def test_unparseable_tool_call_arguments_become_an_empty_object() -> None:
    assistant = {
        "role": "assistant",
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{not json"}}],
    }

    _, message = to_ollama_chat(chat(user("x"), assistant), MODEL, stream=False)["messages"]

    assert message["tool_calls"][0]["function"]["arguments"] == {}


def test_tool_result_is_named_after_the_call_it_answers() -> None:
    body = chat(
        user("Weather and time?"),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_w", "function": {"name": "get_weather", "arguments": "{}"}},
                {"id": "call_t", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_t", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_w", "content": "21C"},
    )

    messages = to_ollama_chat(body, MODEL, stream=False)["messages"]

    assert messages[2] == {"role": "tool", "content": "12:00", "tool_name": "get_time"}
    assert messages[3] == {"role": "tool", "content": "21C", "tool_name": "get_weather"}


def test_tool_result_for_an_unknown_call_id_has_no_tool_name() -> None:
    body = chat(user("x"), {"role": "tool", "tool_call_id": "call_nowhere", "content": "1"})

    messages = to_ollama_chat(body, MODEL, stream=False)["messages"]

    assert "tool_name" not in messages[1]


def test_tools_pass_through_unchanged() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

    payload = to_ollama_chat(chat(user("x"), tools=tools), MODEL, stream=False)

    assert payload["tools"] == tools


def test_sampling_fields_become_options() -> None:
    body = chat(
        user("x"),
        temperature=0.2,
        top_p=0.9,
        seed=7,
        frequency_penalty=0.5,
        presence_penalty=0.1,
        max_tokens=64,
    )

    options = to_ollama_chat(body, MODEL, stream=False)["options"]

    assert options == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "num_predict": 64,
    }


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    body = chat(user("x"), max_tokens=64, max_completion_tokens=16)

    assert to_ollama_chat(body, MODEL, stream=False)["options"] == {"num_predict": 16}


def test_zero_temperature_is_kept() -> None:
    options = to_ollama_chat(chat(user("x"), temperature=0), MODEL, stream=False)["options"]

    assert options == {"temperature": 0}


def test_stop_string_becomes_a_list_and_a_list_stays_one() -> None:
    one = to_ollama_chat(chat(user("x"), stop="END"), MODEL, stream=False)
    many = to_ollama_chat(chat(user("x"), stop=["END", "STOP"]), MODEL, stream=False)

    assert one["options"]["stop"] == ["END"]
    assert many["options"]["stop"] == ["END", "STOP"]


def test_no_sampling_fields_means_no_options_key() -> None:
    assert "options" not in to_ollama_chat(chat(user("x")), MODEL, stream=False)


def test_json_object_response_format_asks_for_json() -> None:
    body = chat(user("x"), response_format={"type": "json_object"})

    assert to_ollama_chat(body, MODEL, stream=False)["format"] == "json"


def test_json_schema_response_format_sends_the_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}

    payload = to_ollama_chat(chat(user("x"), response_format=response_format), MODEL, False)

    assert payload["format"] == schema


def test_text_response_format_sends_no_format() -> None:
    body = chat(user("x"), response_format={"type": "text"})

    assert "format" not in to_ollama_chat(body, MODEL, stream=False)


# --- meaning that crosses formats: thinking, system messages, cache breakpoints ---------


@pytest.mark.parametrize(
    ("model", "effort", "think"),
    [
        ("qwen3:8b", "low", True),
        ("qwen3:8b", "high", True),
        ("qwen3:8b", "minimal", False),
        ("gpt-oss:20b", "low", "low"),
        ("gpt-oss:20b", "medium", "medium"),
        ("gpt-oss:120b", "high", "high"),
        ("gpt-oss:20b", "minimal", "low"),  # gpt-oss cannot stop thinking
    ],
)
def test_reasoning_effort_becomes_think(model: str, effort: str, think: bool | str) -> None:
    payload = to_ollama_chat(chat(user("Why?"), reasoning_effort=effort), model, stream=True)

    assert payload["think"] == think


def test_no_reasoning_effort_leaves_think_to_the_model() -> None:
    assert "think" not in to_ollama_chat(chat(user("Hi")), MODEL, stream=True)
    assert "think" not in to_ollama_chat(chat(user("Hi"), reasoning_effort="x"), MODEL, stream=True)


def test_a_mid_conversation_system_message_stays_where_it_was() -> None:
    body = chat(
        {"role": "system", "content": "You are terse."},
        user("Hi"),
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "The user is on a phone."},
        user("Tell me a joke"),
    )

    messages = to_ollama_chat(body, MODEL, stream=True)["messages"]

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "system", "user"]
    assert messages[3] == {"role": "system", "content": "The user is on a phone."}


def test_cache_breakpoints_never_reach_ollama() -> None:
    marker = {"type": "ephemeral"}
    body = chat(
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Rules.", "cache_control": marker},
                {"type": "text", "text": "More rules."},
            ],
        },
        user([{"type": "text", "text": "Hi", "cache_control": marker}]),
        tools=[
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}},
                "cache_control": marker,
            }
        ],
    )

    payload = to_ollama_chat(body, MODEL, stream=True)

    assert "cache_control" not in orjson.dumps(payload).decode()
    assert payload["messages"] == [
        {"role": "system", "content": "Rules.\nMore rules."},
        {"role": "user", "content": "Hi"},
    ]
    assert payload["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]


# --- passthrough: Anthropic's Messages API through Ollama's /v1/messages ------------------

# Ollama's StreamConverter output (anthropic/anthropic.go), as its writeSSE frames it.
RECORDED_SSE = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_3f2a","type":'
    b'"message","role":"assistant","model":"qwen3-coder","content":[],"usage":'
    b'{"input_tokens":42,"output_tokens":0}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
    b'{"type":"text_delta","text":"Caf\\u00e9 time"}}\n\n',
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"input_tokens":42,"output_tokens":3}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


async def _events(raws: list[bytes]) -> AsyncIterator[bytes]:
    for raw in raws:
        yield raw


async def test_relay_passes_each_event_as_it_came_and_reads_usage_and_model() -> None:
    relayed = [r async for r in relay_messages(_events(RECORDED_SSE), "ollama test")]

    assert [r.data for r in relayed] == RECORDED_SSE
    assert relayed[0].model == "qwen3-coder"
    assert [r.usage is not None for r in relayed] == [True, False, False, False, True, False]
    final = relayed[4].usage
    assert final is not None and (final.prompt_tokens, final.completion_tokens) == (42, 3)


async def test_sse_events_keep_their_bytes_across_reads_and_separators() -> None:
    stream = b"".join(RECORDED_SSE[:2]).replace(b"\n\n", b"\r\n\r\n", 1) + RECORDED_SSE[2]
    response = httpx.Response(200, stream=SplitStream(stream, step=7))

    events = [event async for event in sse_events(response, "ollama test")]

    assert b"".join(events) == stream
    assert len(events) == 3


class SplitStream(httpx.AsyncByteStream):
    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.step):
            yield self.data[start : start + self.step]


async def test_an_error_event_before_anything_is_raised_not_relayed() -> None:
    error = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"server busy"}}\n\n'
    )

    with pytest.raises(UpstreamError) as caught:
        _ = [r async for r in relay_messages(_events([error]), "ollama test")]

    assert caught.value.retryable and not caught.value.mid_stream
    assert not caught.value.delivered
    assert "server busy" in caught.value.message


async def test_an_error_event_after_the_first_is_relayed_then_raised_as_delivered() -> None:
    error = (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"server busy"}}\n\n'
    )
    relayed: list[Relayed] = []

    with pytest.raises(UpstreamError) as caught:
        async for r in relay_messages(_events([RECORDED_SSE[0], error]), "ollama test"):
            relayed.append(r)

    assert [r.data for r in relayed] == [RECORDED_SSE[0], error]
    assert caught.value.delivered and caught.value.mid_stream


def test_an_anthropic_shaped_error_body_gives_its_message() -> None:
    body = (
        b'{"type":"error","error":{"type":"not_found_error","message":"model \\"x\\" not found"}}'
    )

    error = ollama_error(404, body, httpx.Headers())

    assert error.message == 'ollama: model "x" not found'
    assert error.code == "model_not_found"


def test_messages_pass_through_only_when_configured() -> None:
    plain = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    open_ = OllamaProvider(
        "ollama", timeout=5, connect_timeout=1, passthrough=frozenset({"messages"})
    )

    assert plain.speaks("messages", MODEL) is False
    assert open_.speaks("messages", MODEL) is True
    assert open_.speaks("responses", MODEL) is False


# --- response ----------------------------------------------------------------------------

FINAL_TEXT = {
    "model": "llama3.2",
    "created_at": "2025-07-07T20:22:19.19314Z",
    "message": {"role": "assistant", "content": "Hello there."},
    "done_reason": "stop",
    "done": True,
    "total_duration": 182242375,
    "load_duration": 41295167,
    "prompt_eval_count": 169,
    "prompt_eval_duration": 24573166,
    "eval_count": 15,
    "eval_duration": 115959084,
}


def test_final_text_object_becomes_a_chat_completion() -> None:
    response = from_ollama_chat(FINAL_TEXT, "chatcmpl-1", MODEL)

    body = response.body
    assert body["id"] == "chatcmpl-1"
    assert body["object"] == "chat.completion"
    assert body["model"] == "llama3.2"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]


def test_usage_comes_from_prompt_eval_count_and_eval_count() -> None:
    response = from_ollama_chat(FINAL_TEXT, "chatcmpl-1", MODEL)

    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (169, 15)
    assert response.body["usage"] == {
        "prompt_tokens": 169,
        "completion_tokens": 15,
        "total_tokens": 184,
    }


def test_missing_metric_fields_count_as_zero() -> None:
    # The metric fields are omitempty: a cached prompt has no prompt_eval_count at all.
    final = {"model": MODEL, "message": {"role": "assistant", "content": ""}, "done": True}

    response = from_ollama_chat(final, "chatcmpl-1", MODEL)

    assert response.body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_length_done_reason_becomes_length() -> None:
    final = {**FINAL_TEXT, "done_reason": "length"}

    response = from_ollama_chat(final, "chatcmpl-1", MODEL)

    assert response.body["choices"][0]["finish_reason"] == "length"


def test_tool_calls_come_back_with_json_string_arguments_and_ids() -> None:
    final = {
        "model": MODEL,
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_ollama_1",
                    "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}},
                },
                {"function": {"index": 1, "name": "get_time", "arguments": {}}},
            ],
        },
        "done_reason": "stop",
        "done": True,
    }

    choice = from_ollama_chat(final, "chatcmpl-1", MODEL).body["choices"][0]

    first, second = choice["message"]["tool_calls"]
    assert first == {
        "id": "call_ollama_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    assert second["id"].startswith("call_") and len(second["id"]) > len("call_")
    assert orjson.loads(second["function"]["arguments"]) == {}
    assert choice["finish_reason"] == "tool_calls"


def test_thinking_text_is_returned_as_reasoning() -> None:
    final = {**FINAL_TEXT, "message": {"role": "assistant", "content": "4", "thinking": "2+2"}}

    message = from_ollama_chat(final, "chatcmpl-1", MODEL).body["choices"][0]["message"]

    assert message["reasoning"] == "2+2"


# --- stream ------------------------------------------------------------------------------


def line(content: str = "", **extra: Any) -> JSON:
    return {
        "model": MODEL,
        "created_at": "2023-08-04T08:52:19.385406455-07:00",
        "message": {"role": "assistant", "content": content, **extra},
        "done": False,
    }


def done(done_reason: str = "stop", **metrics: int) -> JSON:
    return {
        "model": MODEL,
        "message": {"role": "assistant", "content": ""},
        "done_reason": done_reason,
        "done": True,
        **metrics,
    }


def deltas(chunks: list[JSON]) -> list[JSON]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def test_stream_opens_with_the_assistant_role_chunk() -> None:
    first = OllamaStreamTranslator("chatcmpl-9", MODEL).first()

    assert first["id"] == "chatcmpl-9"
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]


def test_each_content_line_becomes_one_content_chunk() -> None:
    translator = OllamaStreamTranslator("chatcmpl-9", MODEL)

    chunks = translator.feed(line("The")) + translator.feed(line(" sky"))

    assert deltas(chunks) == [{"content": "The"}, {"content": " sky"}]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_empty_content_line_yields_nothing() -> None:
    assert OllamaStreamTranslator("chatcmpl-9", MODEL).feed(line("")) == []


def test_done_line_yields_finish_chunk_then_usage_chunk_without_choices() -> None:
    translator = OllamaStreamTranslator("chatcmpl-9", MODEL)
    translator.feed(line("Hi"))

    finish, usage = translator.feed(done(prompt_eval_count=169, eval_count=15))

    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 169, "completion_tokens": 15, "total_tokens": 184}
    assert translator.usage is not None and translator.usage.total_tokens == 184


def test_done_line_without_metrics_reports_zero_usage() -> None:
    _, usage = OllamaStreamTranslator("chatcmpl-9", MODEL).feed(done())

    assert usage["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_length_done_reason_finishes_with_length() -> None:
    finish, _ = OllamaStreamTranslator("chatcmpl-9", MODEL).feed(done("length"))

    assert finish["choices"][0]["finish_reason"] == "length"


def test_tool_call_lines_get_running_indices_and_finish_with_tool_calls() -> None:
    translator = OllamaStreamTranslator("chatcmpl-9", MODEL)
    weather = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    time_ = {"function": {"name": "get_time", "arguments": {}}}
    news = {"function": {"name": "get_news", "arguments": {"topic": "rain"}}}

    chunks = translator.feed(line(tool_calls=[weather]))
    chunks += translator.feed(line(tool_calls=[time_, news]))
    chunks += translator.feed(done())

    calls = [call for delta in deltas(chunks) for call in delta.get("tool_calls", [])]
    assert [call["index"] for call in calls] == [0, 1, 2]
    assert [call["function"]["name"] for call in calls] == ["get_weather", "get_time", "get_news"]
    assert calls[0]["function"]["arguments"] == '{"city":"Paris"}'
    assert all(call["type"] == "function" and call["id"] for call in calls)
    assert len({call["id"] for call in calls}) == 3
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_upstream_tool_call_index_is_kept() -> None:
    translator = OllamaStreamTranslator("chatcmpl-9", MODEL)
    call = {"id": "call_x", "function": {"index": 3, "name": "f", "arguments": {}}}

    (chunk,) = translator.feed(line(tool_calls=[call]))

    assert chunk["choices"][0]["delta"]["tool_calls"][0]["index"] == 3
    assert chunk["choices"][0]["delta"]["tool_calls"][0]["id"] == "call_x"


def test_thinking_line_becomes_a_reasoning_delta() -> None:
    chunks = OllamaStreamTranslator("chatcmpl-9", MODEL).feed(line("", thinking="hmm"))

    assert deltas(chunks) == [{"reasoning": "hmm"}]


def test_error_line_raises_a_mid_stream_upstream_error() -> None:
    translator = OllamaStreamTranslator("chatcmpl-9", MODEL)
    translator.feed(line("Hi"))

    with pytest.raises(UpstreamError) as caught:
        translator.feed({"error": "llama runner process has terminated"})

    assert caught.value.status == 502
    assert caught.value.mid_stream is True
    assert "llama runner process has terminated" in caught.value.message


# --- errors ------------------------------------------------------------------------------


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def test_unknown_model_404_is_retryable_model_not_found() -> None:
    body = error_body('model "x" not found, try pulling it first')

    error = ollama_error(404, body, httpx.Headers())

    assert error.status == 404
    assert error.code == "model_not_found"
    assert error.retryable is True  # another endpoint may have it pulled
    assert 'model "x" not found' in error.message


def test_bad_request_400_is_not_retryable() -> None:
    error = ollama_error(400, error_body("invalid request"), httpx.Headers())

    assert error.status == 400
    assert error.retryable is False
    assert error.type == "invalid_request_error"
    assert "invalid request" in error.message


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (500, "llama runner process has terminated: exit status 2"),
        (503, "server busy, please try again.  maximum pending requests exceeded"),
    ],
)
def test_server_errors_keep_their_status_and_are_retryable(status: int, message: str) -> None:
    error = ollama_error(status, error_body(message), httpx.Headers())

    assert error.status == status
    assert error.retryable is True
    assert message in error.message


def test_plain_text_error_body_is_the_message() -> None:
    error = ollama_error(502, b"<html>Bad Gateway</html>", httpx.Headers())

    assert error.status == 502
    assert "Bad Gateway" in error.message


def test_empty_error_body_names_the_status() -> None:
    error = ollama_error(500, b"", httpx.Headers())

    assert "HTTP 500" in error.message


# --- the adapter against the fake Ollama -------------------------------------------------


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[tuple[FakeState, RunningFake]]:
    fake = FakeState(models=["llama3.2:latest"])
    with run_fake(make_ollama_app(fake)) as server:
        yield fake, server


@pytest.fixture
def ollama(ollama_server: tuple[FakeState, RunningFake]) -> tuple[FakeState, str]:
    fake, server = ollama_server
    fake.script.clear()
    fake.script.default = TextReply()
    fake.reset()
    return fake, server.url


async def test_adapter_streams_role_content_finish_and_usage(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(TextReply("Hello there", prompt_tokens=5, completion_tokens=2))
    provider = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    try:
        chunks = [c async for c in provider.stream(url, chat(user("Hi")))]
    finally:
        await provider.aclose()

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(d.get("content", "") for d in deltas(chunks))
    assert text == "Hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 7
    assert fake.last_request.json["stream"] is True


async def test_adapter_returns_whole_tool_call_answer(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"}, id="call_1")]))
    provider = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    try:
        response = await provider.chat(url, chat(user("Weather?")))
    finally:
        await provider.aclose()

    choice = response.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":"Paris"}'
    assert fake.last_request.json["stream"] is False


async def test_adapter_raises_model_not_found_for_an_unpulled_model(
    ollama: tuple[FakeState, str],
) -> None:
    _, url = ollama
    provider = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.chat(url, {"model": "mistral", "messages": [user("Hi")]})
    finally:
        await provider.aclose()

    assert caught.value.status == 404
    assert caught.value.code == "model_not_found"


async def test_adapter_raises_mid_stream_on_an_error_line(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.script.push(MidStreamError(after_chunks=2, message="out of memory"))
    provider = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in provider.stream(url, chat(user("Hi"))):
                received.append(chunk)
    finally:
        await provider.aclose()

    assert caught.value.mid_stream is True
    assert "out of memory" in caught.value.message
    assert len(deltas(received)) == 3  # the role chunk and two content chunks


async def test_adapter_raises_before_the_first_chunk_on_503(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(ErrorReply(503))
    provider = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in provider.stream(url, chat(user("Hi"))):
                received.append(chunk)
    finally:
        await provider.aclose()

    assert received == []
    assert caught.value.status == 503
    assert caught.value.retryable is True
    assert caught.value.mid_stream is False


async def test_think_reaches_the_fake_ollama(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    provider = OllamaProvider("ollama", timeout=5, connect_timeout=1)
    try:
        await provider.chat(url, chat(user("Why?"), reasoning_effort="high"))
    finally:
        await provider.aclose()

    assert fake.last_request.json["think"] is True


def passthrough() -> OllamaProvider:
    return OllamaProvider(
        "ollama", timeout=5, connect_timeout=1, passthrough=frozenset({"messages"})
    )


def messages_call(*, stream: bool) -> NativeCall:
    body = {
        "model": "llama3.2:latest",
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": "claude-code-20250219"}
    return NativeCall(wire="messages", body=body, headers=headers)


async def relay_all(
    provider: OllamaProvider, url: str, call: NativeCall
) -> tuple[list[Relayed], UpstreamError | None]:
    received: list[Relayed] = []
    try:
        async for relayed in provider.native_stream(url, call):
            received.append(relayed)
    except UpstreamError as exc:
        return received, exc
    finally:
        await provider.aclose()
    return received, None


def parsed(relayed: list[Relayed]) -> list[tuple[str, JSON]]:
    events = []
    for item in relayed:
        name, data = item.data.rstrip(b"\n").split(b"\n")
        events.append((name.removeprefix(b"event: ").decode(), orjson.loads(data[6:])))
    return events


async def test_native_posts_the_body_unchanged_to_v1_messages(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(TextReply("Hello!", prompt_tokens=9, completion_tokens=2))
    call = messages_call(stream=False)
    provider = passthrough()
    try:
        response = await provider.native(url, call)
    finally:
        await provider.aclose()

    assert response.body["content"] == [{"type": "text", "text": "Hello!"}]
    assert response.body["stop_reason"] == "end_turn"
    assert response.raw is not None and orjson.loads(response.raw) == response.body
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (9, 2)
    sent = fake.last_request
    assert (sent.path, sent.json) == ("/v1/messages", call.body)
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "claude-code-20250219"


async def test_native_stream_relays_ollamas_events_and_reads_usage(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(TextReply("one two three", prompt_tokens=11, completion_tokens=3))
    call = messages_call(stream=True)

    relayed, error = await relay_all(passthrough(), url, call)

    assert error is None
    events = parsed(relayed)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert relayed[0].model == "llama3.2:latest"
    final = [r.usage for r in relayed if r.usage is not None][-1]
    assert (final.prompt_tokens, final.completion_tokens) == (11, 3)
    assert fake.last_request.json == call.body


async def test_native_stream_relays_a_tool_call(ollama: tuple[FakeState, str]) -> None:
    fake, url = ollama
    fake.script.push(ToolCallReply([ToolCall("Bash", {"command": "ls"}, id="call_7")]))

    relayed, error = await relay_all(passthrough(), url, messages_call(stream=True))

    assert error is None
    events = parsed(relayed)
    start = next(e for n, e in events if n == "content_block_start")
    assert start["content_block"] == {
        "type": "tool_use",
        "id": "call_7",
        "name": "Bash",
        "input": {},
    }
    delta = next(e for n, e in events if n == "content_block_delta")
    assert orjson.loads(delta["delta"]["partial_json"]) == {"command": "ls"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_native_stream_error_event_is_a_mid_stream_error(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(MidStreamError(after_chunks=2, message="out of memory"))

    relayed, error = await relay_all(passthrough(), url, messages_call(stream=True))

    # message_start, content_block_start, two deltas, then the error event itself: the client
    # gets it as Ollama sent it, and the pump does not add a second one.
    assert len(relayed) == 5 and relayed[-1].data.startswith(b"event: error")
    assert error is not None and error.mid_stream is True and error.delivered is True
    assert "out of memory" in error.message


async def test_native_stream_refused_before_any_event_may_fail_over(
    ollama: tuple[FakeState, str],
) -> None:
    fake, url = ollama
    fake.script.push(ErrorReply(503))

    relayed, error = await relay_all(passthrough(), url, messages_call(stream=True))

    assert relayed == []
    assert error is not None
    assert (error.status, error.retryable, error.mid_stream) == (503, True, False)
    assert "server busy" in error.message


async def test_native_for_an_unpulled_model_is_model_not_found(
    ollama: tuple[FakeState, str],
) -> None:
    _, url = ollama
    call = messages_call(stream=False)
    call.body["model"] = "mistral"
    provider = passthrough()
    try:
        with pytest.raises(UpstreamError) as caught:
            await provider.native(url, call)
    finally:
        await provider.aclose()

    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert 'model "mistral" not found' in caught.value.message
