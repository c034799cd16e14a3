"""Anthropic's Messages API behind the OpenAI shape: request, response, stream and error mapping
as pure functions over the payloads of PROVIDER_WIRE_FORMATS.md §2, the adapter replaying the
recorded SSE bytes, and the adapter end to end against the fake Anthropic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from omen.config import ProviderConfig
from omen.providers.anthropic import (
    AnthropicProvider,
    AnthropicStreamTranslator,
    anthropic_error,
    from_anthropic_message,
    stream_error,
    to_anthropic_messages,
)
from omen.providers.base import JSON, UpstreamError
from tests.fakes import (
    CutStream,
    ErrorReply,
    FakeState,
    MidStreamError,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    run_fake,
)
from tests.fakes.anthropic_upstream import PromptCache, make_anthropic_app
from tests.fakes.asgi import Receive, Scope, Send

MODEL = "claude-sonnet-4"
KEY = "sk-ant-test"
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def chat(*messages: JSON, **fields: Any) -> JSON:
    return {"model": MODEL, "messages": list(messages), **fields}


def user(content: Any) -> JSON:
    return {"role": "user", "content": content}


def assistant_calls(*calls: tuple[str, str, str]) -> JSON:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}
            for id_, name, arguments in calls
        ],
    }


def translate(body: JSON, stream: bool = False) -> JSON:
    return to_anthropic_messages(body, MODEL, stream=stream)


# --- request -----------------------------------------------------------------------------


def test_plain_request_gets_the_default_max_tokens_and_no_stream_flag() -> None:
    assert translate(chat(user("Hi"))) == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_streamed_request_asks_for_a_stream() -> None:
    assert translate(chat(user("Hi")), stream=True)["stream"] is True


def test_system_and_developer_messages_become_top_level_system() -> None:
    one = translate(chat({"role": "system", "content": "Be terse."}, user("Hi")))
    two = translate(
        chat(
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            user("Hi"),
        )
    )

    assert one["system"] == "Be terse."
    assert one["messages"] == [{"role": "user", "content": "Hi"}]
    assert two["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Answer in French."},
    ]
    assert [m["role"] for m in two["messages"]] == ["user"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
    ],
)
def test_max_completion_tokens_wins_over_max_tokens(fields: JSON, expected: int) -> None:
    assert translate(chat(user("Hi"), **fields))["max_tokens"] == expected


def test_stop_becomes_stop_sequences_as_a_list() -> None:
    assert translate(chat(user("Hi"), stop="END"))["stop_sequences"] == ["END"]
    assert translate(chat(user("Hi"), stop=["a", "b"]))["stop_sequences"] == ["a", "b"]
    assert "stop_sequences" not in translate(chat(user("Hi"), stop=None))


def test_sampling_fields_pass_and_temperature_is_clamped_to_anthropics_range() -> None:
    payload = translate(chat(user("Hi"), temperature=0, top_p=0.9))
    assert (payload["temperature"], payload["top_p"]) == (0, 0.9)
    assert translate(chat(user("Hi"), temperature=1.7))["temperature"] == 1.0


def test_omens_metadata_stays_home_and_user_becomes_metadata_user_id() -> None:
    payload = translate(chat(user("Hi"), metadata={"priority": "low-cost"}, user="u-42"))
    assert payload["metadata"] == {"user_id": "u-42"}


def test_tools_become_name_description_input_schema() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    payload = translate(chat(user("Hi"), tools=[WEATHER_TOOL, bare]))

    assert payload["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in payload


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls(choice: Any, parallel: Any, expected: JSON) -> None:
    fields: JSON = {"tools": [WEATHER_TOOL]}
    if choice is not None:
        fields["tool_choice"] = choice
    if parallel is not None:
        fields["parallel_tool_calls"] = parallel

    assert translate(chat(user("Hi"), **fields))["tool_choice"] == expected


def test_tool_choice_without_tools_is_not_sent() -> None:
    assert "tool_choice" not in translate(chat(user("Hi"), tool_choice="auto"))


def test_assistant_tool_calls_become_tool_use_blocks_with_object_input() -> None:
    message = assistant_calls(("call_1", "get_weather", '{"city": "Paris"}'))
    message["content"] = "Let me check."

    payload = translate(chat(user("Weather?"), message))

    assert payload["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }


def test_unparseable_tool_arguments_become_an_empty_input() -> None:
    payload = translate(chat(user("Hi"), assistant_calls(("call_1", "f", "{not json"))))
    assert payload["messages"][1]["content"][0]["input"] == {}


def test_consecutive_tool_results_become_one_user_message_of_tool_result_blocks() -> None:
    body = chat(
        user("Weather in Paris and Rome?"),
        assistant_calls(
            ("call_1", "get_weather", '{"city":"Paris"}'),
            ("call_2", "get_weather", '{"city":"Rome"}'),
        ),
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": '{"temp": 25}'}],
        },
    )

    messages = translate(body)["messages"]

    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 21}'},
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": '{"temp": 25}'}],
        },
    ]


def test_a_user_message_after_tool_results_joins_the_same_user_turn() -> None:
    body = chat(
        user("Weather?"),
        assistant_calls(("call_1", "get_weather", "{}")),
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        user("And tomorrow?"),
    )

    last = translate(body)["messages"][-1]

    assert last["role"] == "user"
    assert [b["type"] for b in last["content"]] == ["tool_result", "text"]


def test_consecutive_same_role_messages_are_merged_to_alternate() -> None:
    body = chat(
        user("one"),
        user([{"type": "text", "text": "two"}]),
        {"role": "assistant", "content": "three"},
        {"role": "assistant", "content": "four"},
        user("five"),
    )

    assert translate(body)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}],
        },
        {"role": "user", "content": "five"},
    ]


@pytest.mark.parametrize(
    ("header", "media_type"),
    [
        ("image/png", "image/png"),
        ("image/jpeg", "image/jpeg"),
        ("image/jpg", "image/jpeg"),
        ("image/gif", "image/gif"),
        ("image/webp", "image/webp"),
    ],
)
def test_image_data_url_becomes_a_base64_source_typed_from_the_url(
    header: str, media_type: str
) -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:{header};base64,{PNG_B64}"}},
    ]

    content = translate(chat(user(parts)))["messages"][0]["content"]

    assert content == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": PNG_B64},
        },
    ]


def test_http_image_url_becomes_a_url_source() -> None:
    url = "https://upload.wikimedia.org/cat.jpg"
    parts = [{"type": "image_url", "image_url": {"url": url, "detail": "high"}}]

    content = translate(chat(user(parts)))["messages"][0]["content"]

    assert content == [{"type": "image", "source": {"type": "url", "url": url}}]


@pytest.mark.parametrize(
    "url", [f"data:image/bmp;base64,{PNG_B64}", "data:image/png,rawbytes", "ftp://x/y.png"]
)
def test_images_anthropic_cannot_take_are_a_retryable_400(url: str) -> None:
    parts = [{"type": "image_url", "image_url": {"url": url}}]

    with pytest.raises(UpstreamError) as caught:
        translate(chat(user(parts)))

    assert caught.value.status == 400
    assert caught.value.retryable is True  # another provider may take it


def test_cache_control_on_a_text_part_is_kept() -> None:
    part = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}

    content = translate(chat(user([part])))["messages"][0]["content"]

    assert content == [part]


# --- response ----------------------------------------------------------------------------

# anthropic-json-tool.1.json, with the elided input filled in.
RECORDED_TOOL_MESSAGE: JSON = {
    "model": "claude-haiku-4-5-20251001",
    "id": "msg_0191iYfpERYfS27xLsdW2nbb",
    "type": "message",
    "role": "assistant",
    "content": [
        {
            "type": "tool_use",
            "id": "toolu_01Q9ExVZnzZj7E2QQYHYtNUa",
            "name": "json",
            "input": {"elements": [{"location": "San Francisco", "temperature": 18}]},
        }
    ],
    "stop_reason": "tool_use",
    "usage": {
        "input_tokens": 1151,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 87,
        "service_tier": "standard",
    },
}


def test_recorded_tool_use_message_becomes_tool_calls_with_json_string_arguments() -> None:
    response = from_anthropic_message(RECORDED_TOOL_MESSAGE, MODEL)

    choice = response.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_01Q9ExVZnzZj7E2QQYHYtNUa"
    assert call["type"] == "function"
    assert call["function"]["name"] == "json"
    assert orjson.loads(call["function"]["arguments"]) == {
        "elements": [{"location": "San Francisco", "temperature": 18}]
    }
    assert response.body["object"] == "chat.completion"
    assert response.body["model"] == "claude-haiku-4-5-20251001"
    assert response.body["usage"] == {
        "prompt_tokens": 1151,
        "completion_tokens": 87,
        "total_tokens": 1238,
    }
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (1151, 87)


def test_text_blocks_are_joined_and_end_turn_is_stop() -> None:
    data = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there!"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }

    body = from_anthropic_message(data, MODEL).body

    assert body["choices"][0]["message"]["content"] == "Hello there!"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["model"] == MODEL  # upstream named none


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
    ],
)
def test_stop_reason_maps_to_finish_reason(stop_reason: str, finish: str) -> None:
    data = {"type": "message", "content": [], "stop_reason": stop_reason, "usage": {}}
    assert from_anthropic_message(data, MODEL).body["choices"][0]["finish_reason"] == finish


def test_cache_tokens_count_in_the_prompt_and_reads_are_cached_tokens() -> None:
    data = {
        "type": "message",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 20,
            "cache_creation_input_tokens": 30,
            "cache_read_input_tokens": 50,
            "output_tokens": 5,
        },
    }

    response = from_anthropic_message(data, MODEL)

    assert response.usage.prompt_tokens == 100
    assert response.usage.cached_tokens == 50
    assert response.body["usage"]["prompt_tokens_details"] == {"cached_tokens": 50}
    assert response.body["usage"]["cache_creation_input_tokens"] == 30


def test_thinking_blocks_become_reasoning() -> None:
    data = {
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "text", "text": "42"},
        ],
        "stop_reason": "end_turn",
        "usage": {},
    }

    message = from_anthropic_message(data, MODEL).body["choices"][0]["message"]

    assert (message["content"], message["reasoning"]) == ("42", "Let me think.")


# --- stream ------------------------------------------------------------------------------

# anthropic-json-tool.1.chunks.txt / LiteLLM's anthropic_streaming_completion.yaml, with the
# elided arguments filled in (split in two deltas).
RECORDED_TOOL_STREAM = rb"""event: message_start
data: {"type":"message_start","message":{"model":"claude-haiku-4-5-20251001","id":"msg_01K2JbSUMYhez5RHoK9ZCj9U","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":849,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":10,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01KFbKqPYSuAKujiL6mTfzYA","name":"json","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}

event: ping
data: {"type":"ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"elements\": [{\"location\": \"San Francisco\", "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"temperature\": 18}]}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":849,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":47}}

event: message_stop
data: {"type":"message_stop"}

"""  # noqa: E501

TEXT_STREAM_EVENTS: list[JSON] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_text",
            "model": MODEL,
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    },
    {"type": "ping"},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop"},
]


def parse_sse(raw: bytes) -> list[JSON]:
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                events.append(orjson.loads(line[5:]))
    return events


def feed_all(events: list[JSON]) -> tuple[AnthropicStreamTranslator, list[JSON]]:
    translator = AnthropicStreamTranslator("chatcmpl-test", MODEL)
    chunks: list[JSON] = []
    for event in events:
        chunks.extend(translator.feed(event))
    return translator, chunks


def deltas(chunks: list[JSON]) -> list[JSON]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_recorded_tool_stream_becomes_a_tool_call_with_streamed_arguments() -> None:
    translator, chunks = feed_all(parse_sse(RECORDED_TOOL_STREAM))

    calls = [call for d in deltas(chunks) for call in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01KFbKqPYSuAKujiL6mTfzYA",
        "type": "function",
        "function": {"name": "json", "arguments": ""},
    }
    assert all(c["index"] == 0 and "id" not in c for c in calls[1:])
    assert len(calls) == 3  # the empty first input_json_delta yields nothing
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert orjson.loads(arguments) == {
        "elements": [{"location": "San Francisco", "temperature": 18}]
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    # output_tokens in message_delta is cumulative: 47, not 10 + 47.
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 849,
        "completion_tokens": 47,
        "total_tokens": 896,
    }
    assert {c["id"] for c in chunks} == {"msg_01K2JbSUMYhez5RHoK9ZCj9U"}
    assert chunks[0]["model"] == "claude-haiku-4-5-20251001"
    assert translator.finished


def test_text_stream_becomes_content_deltas_then_finish_then_usage() -> None:
    translator, chunks = feed_all(TEXT_STREAM_EVENTS)

    assert deltas(chunks) == [{"content": "Hello"}, {"content": "!"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert translator.first()["choices"][0]["delta"] == {
        "role": "assistant",
        "content": "",
        "refusal": None,
    }


def test_the_last_message_delta_usage_wins() -> None:
    events = [
        *TEXT_STREAM_EVENTS[:-2],
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {"output_tokens": 2}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]

    _, chunks = feed_all(events)

    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert chunks[-1]["usage"]["prompt_tokens"] == 12


def test_streamed_cache_tokens_count_in_the_prompt() -> None:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "usage": {
                "input_tokens": 5,
                "cache_creation_input_tokens": 10,
                "cache_read_input_tokens": 85,
                "output_tokens": 1,
            },
        },
    }
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": 4},
    }

    _, chunks = feed_all([start, end, {"type": "message_stop"}])

    usage = chunks[-1]["usage"]
    assert usage["prompt_tokens"] == 100
    assert usage["prompt_tokens_details"] == {"cached_tokens": 85}
    assert usage["cache_creation_input_tokens"] == 10


def test_two_tool_blocks_after_text_get_their_own_indices() -> None:
    events: list[JSON] = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
    ]
    for block, (call_id, piece) in enumerate(
        [("toolu_a", '{"city":"Paris"}'), ("toolu_b", "{}")], 1
    ):
        events += [
            {
                "type": "content_block_start",
                "index": block,
                "content_block": {"type": "tool_use", "id": call_id, "name": "f", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": block,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            },
            {"type": "content_block_stop", "index": block},
        ]
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]

    _, chunks = feed_all(events)

    calls = [call for d in deltas(chunks) for call in d.get("tool_calls", [])]
    assert [(c["index"], c.get("id")) for c in calls] == [
        (0, "toolu_a"),
        (0, None),
        (1, "toolu_b"),
        (1, None),
    ]
    assert [c["function"]["arguments"] for c in calls if "id" not in c] == [
        '{"city":"Paris"}',
        "{}",
    ]


def test_thinking_deltas_become_reasoning_deltas() -> None:
    events = [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "x"},
        },
    ]

    assert deltas(feed_all(events)[1]) == [{"reasoning": "Hmm"}]


def test_error_event_raises_overloaded_as_a_retryable_529() -> None:
    translator = AnthropicStreamTranslator("c", MODEL)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

    with pytest.raises(UpstreamError) as caught:
        translator.feed(error)

    assert caught.value.status == 529
    assert caught.value.retryable is True
    assert caught.value.mid_stream is True
    assert "Overloaded" in caught.value.message


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [
        ("rate_limit_error", 429, True),
        ("api_error", 500, True),
        ("invalid_request_error", 400, False),
        ("authentication_error", 502, True),
        ("brand_new_error", 502, True),
    ],
)
def test_stream_error_types_map_to_statuses(error_type: str, status: int, retryable: bool) -> None:
    error = stream_error({"type": error_type, "message": "boom"})
    assert (error.status, error.retryable, error.mid_stream) == (status, retryable, True)


# --- errors ------------------------------------------------------------------------------


def anthropic_body(error_type: str, message: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_1"}
    )


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_are_502_and_retryable(status: int) -> None:
    error = anthropic_error(
        status, anthropic_body("authentication_error", "invalid x-api-key"), httpx.Headers()
    )
    assert (error.status, error.type, error.retryable) == (502, "upstream_auth_error", True)
    assert "invalid x-api-key" in error.message


def test_rate_limit_429_is_retryable_with_retry_after() -> None:
    error = anthropic_error(
        429, anthropic_body("rate_limit_error", "slow down"), httpx.Headers({"retry-after": "7"})
    )
    assert (error.status, error.retryable, error.retry_after) == (429, True, 7.0)
    assert error.type == "rate_limit_error"


def test_overloaded_529_is_retryable_with_retry_after() -> None:
    error = anthropic_error(
        529, anthropic_body("overloaded_error", "Overloaded"), httpx.Headers({"retry-after": "3"})
    )
    assert (error.status, error.retryable, error.retry_after) == (529, True, 3.0)
    assert error.type == "overloaded_error"
    assert "Overloaded" in error.message


@pytest.mark.parametrize(
    ("status", "error_type"), [(400, "invalid_request_error"), (413, "request_too_large")]
)
def test_request_errors_keep_their_status_and_are_not_retryable(
    status: int, error_type: str
) -> None:
    error = anthropic_error(status, anthropic_body(error_type, "bad"), httpx.Headers())
    assert (error.status, error.retryable, error.code) == (status, False, error_type)
    assert error.type == "invalid_request_error"


def test_not_found_is_a_retryable_model_not_found() -> None:
    error = anthropic_error(404, anthropic_body("not_found_error", "model: x"), httpx.Headers())
    assert (error.status, error.code, error.retryable) == (404, "model_not_found", True)


@pytest.mark.parametrize(("status", "error_type"), [(500, "api_error"), (504, "timeout_error")])
def test_server_errors_keep_their_status_and_are_retryable(status: int, error_type: str) -> None:
    error = anthropic_error(status, anthropic_body(error_type, "x"), httpx.Headers())
    assert (error.status, error.retryable, error.type) == (status, True, error_type)


def test_billing_error_is_omens_problem_not_the_clients() -> None:
    error = anthropic_error(402, anthropic_body("billing_error", "low balance"), httpx.Headers())
    assert (error.status, error.retryable) == (502, True)


def test_a_non_json_error_body_is_the_message() -> None:
    error = anthropic_error(502, b"<html>Bad Gateway</html>", httpx.Headers())
    assert (error.status, error.retryable) == (502, True)
    assert "Bad Gateway" in error.message


# --- the adapter replaying recorded bytes ------------------------------------------------


def replay_app(raw: bytes) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        # Odd-sized pieces, so events and lines straddle reads.
        for start in range(0, len(raw), 37):
            piece = raw[start : start + 37]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def provider(api_key: str | None = KEY) -> AnthropicProvider:
    return AnthropicProvider(
        ProviderConfig(
            name="anthropic", type="anthropic", api_key=api_key, timeout=5, connect_timeout=1
        )
    )


@pytest.mark.parametrize("separator", [b"\n", b"\r\n"])
async def test_adapter_translates_the_recorded_stream_bytes(separator: bytes) -> None:
    raw = RECORDED_TOOL_STREAM.replace(b"\n", separator)
    adapter = provider()
    with run_fake(replay_app(raw)) as server:
        try:
            chunks = [c async for c in adapter.stream(server.url, chat(user("Hi")))]
        finally:
            await adapter.aclose()

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    arguments = "".join(
        call["function"]["arguments"] for d in deltas(chunks) for call in d.get("tool_calls", [])
    )
    assert orjson.loads(arguments)["elements"][0]["location"] == "San Francisco"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 896


async def test_adapter_raises_when_the_stream_ends_without_message_stop() -> None:
    raw = RECORDED_TOOL_STREAM.split(b"event: message_stop")[0]
    adapter = provider()
    received: list[JSON] = []
    with run_fake(replay_app(raw)) as server:
        try:
            with pytest.raises(UpstreamError) as caught:
                async for chunk in adapter.stream(server.url, chat(user("Hi"))):
                    received.append(chunk)
        finally:
            await adapter.aclose()

    assert caught.value.mid_stream is True
    assert received  # the tool call went out before the stream broke


# --- the adapter against the fake Anthropic ----------------------------------------------


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[tuple[FakeState, PromptCache, RunningFake]]:
    fake = FakeState(models=[MODEL, "claude-haiku-4-5"], api_key=KEY)
    cache = PromptCache()
    with run_fake(make_anthropic_app(fake, cache)) as server:
        yield fake, cache, server


@pytest.fixture
def anthropic(
    anthropic_server: tuple[FakeState, PromptCache, RunningFake],
) -> tuple[FakeState, PromptCache, str]:
    fake, cache, server = anthropic_server
    fake.script.clear()
    fake.script.default = TextReply()
    fake.reset()
    cache.read_tokens = cache.creation_tokens = 0
    return fake, cache, server.url


async def test_adapter_sends_the_key_version_and_a_valid_body(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = anthropic
    fake.script.push(TextReply("Hello there", prompt_tokens=5, completion_tokens=2))
    adapter = provider()
    try:
        response = await adapter.chat(
            url, chat({"role": "system", "content": "Be brief."}, user("Hi"), max_tokens=50)
        )
    finally:
        await adapter.aclose()

    sent = fake.last_request
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json["system"] == "Be brief." and sent.json["max_tokens"] == 50
    assert response.body["choices"][0]["message"]["content"] == "Hello there"
    assert response.usage.total_tokens == 7


async def test_adapter_streams_text_with_cumulative_usage_and_cache_reads(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    fake, cache, url = anthropic
    cache.read_tokens = 60
    fake.script.push(TextReply("one two three four", prompt_tokens=100, completion_tokens=4))
    adapter = provider()
    try:
        chunks = [c async for c in adapter.stream(url, chat(user("Hi")))]
    finally:
        await adapter.aclose()

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas(chunks)) == "one two three four"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 100
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert chunks[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 60}
    assert fake.last_request.json["stream"] is True


async def test_adapter_streams_and_returns_tool_calls(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = anthropic
    calls = [ToolCall("get_weather", {"city": "New York City"}, id="toolu_01abc")]
    fake.script.push(ToolCallReply(calls))
    fake.script.push(ToolCallReply(calls))
    body = chat(user("Weather?"), tools=[WEATHER_TOOL])
    adapter = provider()
    try:
        chunks = [c async for c in adapter.stream(url, body)]
        whole = await adapter.chat(url, body)
    finally:
        await adapter.aclose()

    streamed = [call for d in deltas(chunks) for call in d.get("tool_calls", [])]
    assert streamed[0]["id"] == "toolu_01abc"
    arguments = "".join(c["function"]["arguments"] for c in streamed)
    assert orjson.loads(arguments) == {"city": "New York City"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    (call,) = whole.body["choices"][0]["message"]["tool_calls"]
    assert orjson.loads(call["function"]["arguments"]) == {"city": "New York City"}
    assert fake.last_request.json["tools"][0]["input_schema"]["type"] == "object"


async def test_adapter_round_trips_a_tool_result_conversation(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    _, _, url = anthropic
    body = chat(
        user("Weather?"),
        assistant_calls(("toolu_1", "get_weather", '{"city":"Paris"}')),
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        tools=[WEATHER_TOOL],
    )
    adapter = provider()
    try:
        response = await adapter.chat(url, body)
    finally:
        await adapter.aclose()

    # The fake refuses a tool_result without its tool_use in the previous message, as the API does.
    assert response.body["choices"][0]["finish_reason"] == "stop"


async def test_adapter_raises_mid_stream_on_an_error_event(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = anthropic
    fake.script.push(MidStreamError(after_chunks=2))
    adapter = provider()
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in adapter.stream(url, chat(user("Hi"))):
                received.append(chunk)
    finally:
        await adapter.aclose()

    assert (caught.value.status, caught.value.mid_stream) == (529, True)
    assert "Overloaded" in caught.value.message
    assert len(deltas(received)) == 3  # the role chunk and two content chunks


async def test_adapter_raises_mid_stream_when_the_connection_drops(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = anthropic
    fake.script.push(CutStream(after_chunks=1))
    adapter = provider()
    try:
        with pytest.raises(UpstreamError) as caught:
            async for _ in adapter.stream(url, chat(user("Hi"))):
                pass
    finally:
        await adapter.aclose()

    assert caught.value.mid_stream is True


@pytest.mark.parametrize(("status", "expected"), [(429, 429), (529, 529)])
async def test_adapter_raises_before_the_first_chunk_on_rate_limit_and_overload(
    anthropic: tuple[FakeState, PromptCache, str], status: int, expected: int
) -> None:
    fake, _, url = anthropic
    fake.script.push(ErrorReply(status))
    adapter = provider()
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in adapter.stream(url, chat(user("Hi"))):
                received.append(chunk)
    finally:
        await adapter.aclose()

    assert received == []
    assert (caught.value.status, caught.value.retryable, caught.value.mid_stream) == (
        expected,
        True,
        False,
    )
    assert caught.value.retry_after == 7.0


async def test_adapter_with_a_wrong_key_gets_a_retryable_502(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    _, _, url = anthropic
    adapter = provider("sk-wrong")
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.chat(url, chat(user("Hi")))
        probe = await adapter.probe(url)
    finally:
        await adapter.aclose()

    assert (caught.value.status, caught.value.retryable) == (502, True)
    assert probe.healthy is False and "invalid x-api-key" in (probe.error or "")


async def test_adapter_lists_models_and_probes_without_spending_tokens(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = anthropic
    adapter = provider()
    try:
        models = await adapter.list_models(url)
        probe = await adapter.probe(url)
    finally:
        await adapter.aclose()

    assert models == [MODEL, "claude-haiku-4-5"]
    assert probe.healthy is True
    assert fake.served == 0  # no inference request
    assert fake.requests_to("/v1/messages") == []


async def test_adapter_follows_model_list_pages() -> None:
    many = [f"claude-{n:04d}" for n in range(1205)]
    fake = FakeState(models=many, api_key=KEY)
    adapter = provider()
    with run_fake(make_anthropic_app(fake)) as server:
        try:
            models = await adapter.list_models(server.url)
        finally:
            await adapter.aclose()

    assert models == many
    assert len(fake.requests_to("/v1/models")) == 2


async def test_embeddings_are_a_retryable_400() -> None:
    adapter = provider()
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.embed("http://127.0.0.1:9", {"model": MODEL, "input": "x"})
    finally:
        await adapter.aclose()

    assert (caught.value.status, caught.value.retryable) == (400, True)
    assert "no embeddings API" in caught.value.message


async def test_fake_refuses_what_the_real_api_refuses(
    anthropic: tuple[FakeState, PromptCache, str],
) -> None:
    _, _, url = anthropic
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": KEY}) as client:
        no_version = await client.post(
            "/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": []}
        )
        headers = {"anthropic-version": "2023-06-01"}
        no_max = await client.post(
            "/v1/messages", json={"model": MODEL, "messages": []}, headers=headers
        )
        system_role = await client.post(
            "/v1/messages",
            json={
                "model": MODEL,
                "max_tokens": 5,
                "messages": [{"role": "system", "content": "x"}],
            },
            headers=headers,
        )
    async with httpx.AsyncClient(base_url=url) as client:
        bearer = await client.get("/v1/models", headers={"authorization": f"Bearer {KEY}"})
        keyless = await client.get("/v1/models")

    for response in (no_version, no_max, system_role):
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert bearer.status_code == 200
    assert keyless.status_code == 401
    assert keyless.json()["error"]["type"] == "authentication_error"
