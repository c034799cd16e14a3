"""Bedrock Converse behind the OpenAI shape: SigV4 signing (the reference's test vector), request,
response, binary event stream and error mapping as pure functions over the payloads of
PROVIDER_WIRE_FORMATS.md §6 (recorded live stream bytes included), plus the adapter end to end
against the fake Bedrock, which recomputes every signature it receives."""

from __future__ import annotations

import base64
import datetime
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import orjson
import pytest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.eventstream import EventStreamBuffer

from omen.config import ProviderConfig
from omen.providers import bedrock
from omen.providers.base import JSON, NativeCall, Relayed, UpstreamError
from omen.providers.bedrock import (
    BedrockProvider,
    ConverseStreamTranslator,
    bedrock_error,
    from_converse,
    model_path,
    region_of,
    sign,
    stream_exception,
    to_converse,
)
from tests.fakes import (
    CutStream,
    ErrorReply,
    FakeState,
    MidStreamError,
    PromptCache,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    refusing_url,
    run_fake,
)
from tests.fakes.bedrock_upstream import event_frame, make_bedrock_app

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
LIVE_STREAM = Path(__file__).resolve().parents[1] / "data" / "bedrock_live_converse_stream.json"
# vercel/ai packages/amazon-bedrock/src/__fixtures__/
# model-stream-error-exception.eventstream.base64.txt
RECORDED_EXCEPTION = (
    "AAAA3QAAAGfHkZB6DTptZXNzYWdlLXR5cGUHAAlleGNlcHRpb24POmV4Y2VwdGlvbi10eXBlBwAZbW9kZWxTdHJl"
    "YW1FcnJvckV4Y2VwdGlvbg06Y29udGVudC10eXBlBwAQYXBwbGljYXRpb24vanNvbnsibWVzc2FnZSI6Ik1vZGVs"
    "IFN0cmVhbSBFcnJvciIsIm9yaWdpbmFsU3RhdHVzQ29kZSI6NTAwLCJvcmlnaW5hbE1lc3NhZ2UiOiJUaGUgbW9k"
    "ZWwgc3RyZWFtIGZhaWxlZC4ifVczQxM="
)
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"


def chat(*messages: JSON, **fields: Any) -> JSON:
    return {"model": MODEL, "messages": list(messages), **fields}


def user(content: Any) -> JSON:
    return {"role": "user", "content": content}


def deltas(chunks: list[JSON]) -> list[JSON]:
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]


def live_stream_bytes() -> bytes:
    return base64.b64decode(json.loads(LIVE_STREAM.read_text())["response"]["bodyBase64"])


def translate(data: bytes, step: int | None = None) -> list[JSON]:
    """Decode frames with botocore (fed `step` bytes at a time) and translate each one."""
    translator = ConverseStreamTranslator("chatcmpl-9", MODEL)
    frames = EventStreamBuffer()
    chunks: list[JSON] = []
    step = step or len(data)
    for offset in range(0, len(data), step):
        frames.add_data(data[offset : offset + step])
        for frame in frames:
            chunks += translator.feed_frame(frame.headers, frame.payload)
    return chunks


# --- signing -----------------------------------------------------------------------------


def test_sigv4_vector_from_the_reference_is_reproduced_exactly() -> None:
    signing_date = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    url = (
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    )
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'

    # botocore's own tests freeze its clock this way.
    with mock.patch("botocore.auth.datetime.datetime") as frozen:
        frozen.now.return_value = signing_date
        headers = sign(Credentials(ACCESS_KEY, SECRET_KEY), "us-east-1", url, body)

    assert headers["X-Amz-Date"] == "20250102T030405Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=18dcd39c9e7fae45fcfd7c0c25e540eea5b0d55307a481aaa17fe8ffcb12cbc3"
    )
    assert "X-Amz-Security-Token" not in headers


def test_session_credentials_add_a_signed_security_token() -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com" + model_path(MODEL, "converse")
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, "session-token")

    headers = sign(credentials, "us-east-1", url, b"{}")

    assert headers["X-Amz-Security-Token"] == "session-token"
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"
        in (headers["Authorization"])
    )


def test_model_ids_are_one_percent_encoded_path_segment() -> None:
    assert model_path(MODEL, "converse") == (
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    )
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-v1:0"
    assert model_path(arn, "converse-stream") == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
        "us.anthropic.claude-v1%3A0/converse-stream"
    )


def test_an_endpoint_signs_for_the_region_in_its_host() -> None:
    assert region_of("https://bedrock-runtime.eu-west-3.amazonaws.com", "us-east-1") == "eu-west-3"
    assert region_of("https://bedrock-runtime-fips.us-west-2.amazonaws.com", None) == "us-west-2"
    assert region_of("http://127.0.0.1:9000", "us-east-1") == "us-east-1"


# --- request -----------------------------------------------------------------------------


def test_the_reference_request_is_what_an_openai_conversation_becomes() -> None:
    body = chat(
        {"role": "system", "content": "You are terse."},
        user(
            [
                {"type": "text", "text": "Hi"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            ]
        ),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": '{"temp": 21}'},
        max_tokens=256,
        temperature=0.7,
        top_p=0.9,
        stop="END",
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        tool_choice="auto",
    )

    assert to_converse(body) == {
        "system": [{"text": "You are terse."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Hi"},
                    {"image": {"format": "png", "source": {"bytes": PNG_B64}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "t1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "t1",
                            "content": [{"json": {"temp": 21}}],
                            "status": "success",
                        }
                    }
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 256,
            "temperature": 0.7,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Current weather",
                        "inputSchema": {
                            "json": {"type": "object", "properties": {"city": {"type": "string"}}}
                        },
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
    }


def test_system_and_developer_messages_become_system_blocks() -> None:
    payload = to_converse(
        chat(
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
            user("Hi"),
        )
    )

    assert payload["system"] == [{"text": "Be brief."}, {"text": "No emoji."}]
    assert payload["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
    assert "inferenceConfig" not in payload and "toolConfig" not in payload


def test_jpg_data_url_becomes_a_jpeg_image_block() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}}

    (message,) = to_converse(chat(user([part])))["messages"]

    assert message["content"] == [{"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}}]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://example.com/cat.png", "unsupported_image_url"),
        ("data:image/tiff;base64,SUkqAA==", "unsupported_image_format"),
    ],
)
def test_images_bedrock_cannot_take_are_refused_as_retryable_400(url: str, code: str) -> None:
    part = {"type": "image_url", "image_url": {"url": url}}

    with pytest.raises(UpstreamError) as caught:
        to_converse(chat(user([part])))

    assert (caught.value.status, caught.value.code) == (400, code)
    assert caught.value.retryable is True


def test_tool_results_share_one_user_turn_with_the_text_that_follows() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "not json"}},
    ]
    payload = to_converse(
        chat(
            user("Go"),
            {"role": "assistant", "content": "", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "[1, 2]"},
            {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
            user("And tomorrow?"),
        )
    )

    assert [m["role"] for m in payload["messages"]] == ["user", "assistant", "user"]
    assistant, results = payload["messages"][1:]
    assert assistant["content"] == [
        {"toolUse": {"toolUseId": "c1", "name": "a", "input": {}}},
        {"toolUse": {"toolUseId": "c2", "name": "b", "input": {}}},
    ]
    assert results["content"] == [
        {"toolResult": {"toolUseId": "c1", "content": [{"text": "[1, 2]"}], "status": "success"}},
        {"toolResult": {"toolUseId": "c2", "content": [{"text": "sunny"}], "status": "success"}},
        {"text": "And tomorrow?"},
    ]


def test_max_completion_tokens_wins_and_a_stop_list_stays_a_list() -> None:
    payload = to_converse(
        chat(user("Hi"), max_tokens=10, max_completion_tokens=20, stop=["a", "b"], temperature=0)
    )

    assert payload["inferenceConfig"] == {
        "maxTokens": 20,
        "temperature": 0,
        "stopSequences": ["a", "b"],
    }


TOOL = {"type": "function", "function": {"name": "lookup"}}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "lookup"}}, {"tool": {"name": "lookup"}}),
    ],
)
def test_tool_choice_maps_to_auto_any_or_tool(choice: Any, expected: JSON | None) -> None:
    fields = {"tools": [TOOL]} if choice is None else {"tools": [TOOL], "tool_choice": choice}

    config = to_converse(chat(user("Hi"), **fields))["toolConfig"]

    assert config["tools"] == [
        {
            "toolSpec": {
                "name": "lookup",
                "inputSchema": {"json": {"type": "object", "properties": {}}},
            }
        }
    ]
    assert config.get("toolChoice") == expected


def test_tool_choice_none_drops_the_tools_unless_the_history_uses_them() -> None:
    fresh = to_converse(chat(user("Hi"), tools=[TOOL], tool_choice="none"))
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    history = to_converse(
        chat(
            user("Hi"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            tools=[TOOL],
            tool_choice="none",
        )
    )

    assert "toolConfig" not in fresh
    assert "toolChoice" not in history["toolConfig"]
    assert history["toolConfig"]["tools"][0]["toolSpec"]["name"] == "lookup"


# --- response ----------------------------------------------------------------------------

RECORDED_TEXT = {
    "metrics": {"latencyMs": 1864},
    "output": {"message": {"content": [{"text": "Let me count…"}], "role": "assistant"}},
    "stopReason": "end_turn",
    "usage": {
        "cacheReadInputTokens": 0,
        "cacheWriteInputTokens": 0,
        "inputTokens": 22,
        "outputTokens": 57,
        "serverToolUsage": {},
        "totalTokens": 79,
    },
}


def test_recorded_text_response_becomes_a_chat_completion() -> None:
    response = from_converse(RECORDED_TEXT, "chatcmpl-1", MODEL)

    assert response.body["object"] == "chat.completion"
    assert response.body["model"] == MODEL
    (choice,) = response.body["choices"]
    assert choice["message"]["content"] == "Let me count…"
    assert choice["finish_reason"] == "stop"
    assert response.body["usage"] == {
        "prompt_tokens": 22,
        "completion_tokens": 57,
        "total_tokens": 79,
    }
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (22, 57)


def test_tool_use_blocks_become_tool_calls_with_json_string_arguments() -> None:
    data = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    }
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 12},
    }

    (choice,) = from_converse(data, "chatcmpl-1", MODEL).body["choices"]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("malformed_model_output", "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    data = dict(RECORDED_TEXT, stopReason=stop_reason)

    assert from_converse(data, "c", MODEL).body["choices"][0]["finish_reason"] == finish


def test_cache_reads_and_writes_count_as_prompt_tokens_and_reads_as_cached() -> None:
    data = dict(
        RECORDED_TEXT,
        usage={
            "inputTokens": 100,
            "outputTokens": 50,
            "cacheReadInputTokens": 80,
            "cacheWriteInputTokens": 20,
        },
    )

    response = from_converse(data, "c", MODEL)

    assert response.body["usage"] == {
        "prompt_tokens": 200,
        "completion_tokens": 50,
        "total_tokens": 250,
        "prompt_tokens_details": {"cached_tokens": 80},
        "cache_creation_input_tokens": 20,
    }
    assert response.usage.cached_tokens == 80
    assert response.usage.cache_write_tokens == 20  # priced apart from fresh input


def test_reasoning_blocks_come_back_as_reasoning() -> None:
    blocks = [
        {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "sig"}}},
        {"text": "Done."},
    ]
    data = dict(RECORDED_TEXT, output={"message": {"role": "assistant", "content": blocks}})

    message = from_converse(data, "c", MODEL).body["choices"][0]["message"]

    assert (message["reasoning"], message["content"]) == ("Think.", "Done.")


# --- stream ------------------------------------------------------------------------------


def test_recorded_live_stream_decodes_to_openai_chunks() -> None:
    chunks = translate(live_stream_bytes())

    assert deltas(chunks)[:2] == [{"content": "OK"}, {"content": "."}]
    finish, usage = chunks[-2:]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    assert len(chunks) == 4


@pytest.mark.parametrize("step", [1, 7, 100])
def test_frames_split_across_reads_decode_the_same(step: int) -> None:
    assert deltas(translate(live_stream_bytes(), step)) == deltas(translate(live_stream_bytes()))


def test_the_fakes_framing_reproduces_the_recorded_first_frame_byte_for_byte() -> None:
    recorded = live_stream_bytes()
    first_length = int.from_bytes(recorded[:4], "big")
    body = {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012", "role": "assistant"}

    assert event_frame("messageStart", body, pad=False) == recorded[:first_length]


def test_recorded_exception_frame_is_a_mid_stream_error() -> None:
    translator = ConverseStreamTranslator("chatcmpl-9", MODEL)
    frames = EventStreamBuffer()
    frames.add_data(base64.b64decode(RECORDED_EXCEPTION))
    (frame,) = list(frames)

    with pytest.raises(UpstreamError) as caught:
        translator.feed_frame(frame.headers, frame.payload)

    assert caught.value.mid_stream is True
    assert caught.value.status == 502
    assert caught.value.code == "modelStreamErrorException"
    assert "The model stream failed." in caught.value.message


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("throttlingException", 429),
        ("validationException", 400),
        ("serviceUnavailableException", 503),
        ("internalServerException", 500),
    ],
)
def test_stream_exception_types_map_to_their_http_statuses(kind: str, status: int) -> None:
    error = stream_exception(kind, orjson.dumps({"message": "nope"}))

    assert (error.status, error.mid_stream) == (status, True)
    assert "nope" in error.message


def test_streamed_tool_use_becomes_tool_call_deltas_with_id_then_arguments() -> None:
    start = {
        "contentBlockIndex": 1,
        "start": {"toolUse": {"toolUseId": "tu_1", "name": "get_weather"}},
    }
    data = b"".join(
        [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}
            ),
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame("contentBlockStart", start),
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}},
            ),
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}},
            ),
            event_frame("contentBlockStop", {"contentBlockIndex": 1}),
            event_frame("messageStop", {"stopReason": "tool_use"}),
            event_frame("metadata", {"usage": {"inputTokens": 125, "outputTokens": 45}}),
        ]
    )

    chunks = translate(data, step=13)

    assert deltas(chunks)[:4] == [
        {"content": "Checking."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 170


def test_metadata_before_message_stop_still_finishes_once_with_usage_last() -> None:
    translator = ConverseStreamTranslator("chatcmpl-9", MODEL)

    early = translator.feed("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2}})
    finish, usage = translator.feed("messageStop", {"stopReason": "max_tokens"})

    assert early == []
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["usage"]["total_tokens"] == 5


def test_reasoning_deltas_become_reasoning_chunks() -> None:
    chunks = ConverseStreamTranslator("c", MODEL).feed(
        "contentBlockDelta",
        {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm"}}},
    )

    assert deltas(chunks) == [{"reasoning": "Hmm"}]


# --- meaning that crosses formats: cache breakpoints, thinking, system, structured output --

SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"
EPHEMERAL = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}


def test_claude_codes_cache_breakpoints_become_cache_points_after_the_marked_blocks() -> None:
    # What the Anthropic inbound codec makes of Claude Code's request: two marked system
    # blocks, a marked user block, a marked tool (CODING_AGENTS.md).
    body = chat(
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL},
                {"type": "text", "text": "Repo notes.", "cache_control": EPHEMERAL},
                {"type": "text", "text": "Today is Tuesday."},
            ],
        },
        user(
            [
                {"type": "text", "text": "Fix the bug."},
                {"type": "text", "text": "<context>", "cache_control": EPHEMERAL},
            ]
        ),
        tools=[
            {"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}},
            {
                "type": "function",
                "function": {"name": "Bash", "parameters": {"type": "object"}},
                "cache_control": EPHEMERAL,
            },
        ],
    )

    payload = to_converse(body)

    assert payload["system"] == [
        {"text": "You are Claude Code."},
        POINT,
        {"text": "Repo notes."},
        POINT,
        {"text": "Today is Tuesday."},
    ]
    assert payload["messages"] == [
        {"role": "user", "content": [{"text": "Fix the bug."}, {"text": "<context>"}, POINT]}
    ]
    specs = payload["toolConfig"]["tools"]
    assert [next(iter(s)) for s in specs] == ["toolSpec", "toolSpec", "cachePoint"]
    assert specs[1]["toolSpec"]["name"] == "Bash"


def test_a_one_hour_breakpoint_keeps_its_ttl_and_unknown_markers_are_ignored() -> None:
    body = chat(
        user(
            [
                {"type": "text", "text": "a", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                {"type": "text", "text": "b", "cache_control": {"type": "persistent"}},
            ]
        )
    )

    (turn,) = to_converse(body)["messages"]

    assert turn["content"] == [
        {"text": "a"},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
        {"text": "b"},
    ]


def test_breakpoints_on_tool_results_images_and_whole_messages_follow_their_block() -> None:
    image = f"data:image/png;base64,{PNG_B64}"
    call = {"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    body = chat(
        user([{"type": "image_url", "image_url": {"url": image}, "cache_control": EPHEMERAL}]),
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [call],
            "cache_control": EPHEMERAL,
        },
        {
            "role": "tool",
            "tool_call_id": "t1",
            "content": [{"type": "text", "text": "file body", "cache_control": EPHEMERAL}],
        },
    )

    first, second, third = to_converse(body)["messages"]

    assert first["content"][1:] == [POINT]
    assert [next(iter(b)) for b in second["content"]] == ["text", "toolUse", "cachePoint"]
    assert [next(iter(b)) for b in third["content"]] == ["toolResult", "cachePoint"]


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 8192), ("high", 24576)])
def test_reasoning_effort_becomes_a_thinking_budget_with_room_for_the_answer(
    effort: str, budget: int
) -> None:
    payload = to_converse({"model": SONNET, "messages": [user("Why?")], "reasoning_effort": effort})

    thinking = payload["additionalModelRequestFields"]["thinking"]
    assert thinking == {"type": "enabled", "budget_tokens": budget}
    assert payload["inferenceConfig"]["maxTokens"] > budget


def test_thinking_fits_under_the_clients_limit_and_drops_a_changed_temperature() -> None:
    payload = to_converse(
        {
            "model": SONNET,
            "messages": [user("Why?")],
            "reasoning_effort": "high",
            "max_tokens": 32000,
            "temperature": 0.2,
            "top_p": 0.5,
        }
    )
    small = to_converse(
        {
            "model": SONNET,
            "messages": [user("Why?")],
            "reasoning_effort": "high",
            "max_tokens": 4000,
        }
    )

    assert payload["inferenceConfig"] == {"maxTokens": 32000}
    assert payload["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 24576
    assert small["inferenceConfig"]["maxTokens"] == 4000
    assert small["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2000


def test_minimal_effort_and_models_without_thinking_send_no_thinking() -> None:
    minimal = to_converse(
        {"model": SONNET, "messages": [user("Hi")], "reasoning_effort": "minimal"}
    )
    old_claude = to_converse(chat(user("Hi"), reasoning_effort="high"))
    llama = to_converse(
        {
            "model": "meta.llama3-70b-instruct-v1:0",
            "messages": [user("Hi")],
            "reasoning_effort": "high",
        }
    )

    for payload in (minimal, old_claude, llama):
        assert "additionalModelRequestFields" not in payload
        assert "inferenceConfig" not in payload


def test_thinking_stays_off_in_a_tool_loop_and_when_a_tool_is_forced() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    tool = {"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}
    in_loop = to_converse(
        {
            "model": SONNET,
            "reasoning_effort": "high",
            "tools": [tool],
            "messages": [
                user("Read it"),
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "t1", "content": "text"},
            ],
        }
    )
    forced = to_converse(
        {
            "model": SONNET,
            "reasoning_effort": "high",
            "tools": [tool],
            "tool_choice": "required",
            "messages": [user("Read it")],
        }
    )

    assert "additionalModelRequestFields" not in in_loop
    assert "additionalModelRequestFields" not in forced


def test_a_mid_conversation_system_message_is_folded_into_the_next_user_turn() -> None:
    payload = to_converse(
        chat(
            {"role": "system", "content": "You are terse."},
            user("Hi"),
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "The user is on a phone."},
            user("Tell me a joke"),
        )
    )

    assert payload["system"] == [{"text": "You are terse."}]
    assert payload["messages"][-1] == {
        "role": "user",
        "content": [
            {"text": bedrock.SYSTEM_LABEL + "The user is on a phone."},
            {"text": "Tell me a joke"},
        ],
    }


def test_a_folded_system_message_comes_after_tool_results_and_before_an_assistant_turn() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}
    payload = to_converse(
        chat(
            user("Read it"),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "system", "content": [{"type": "text", "text": "Be careful."}]},
            {"role": "tool", "tool_call_id": "t1", "content": "contents"},
            {"role": "assistant", "content": "Done."},
            {"role": "system", "content": "Reminder at the end."},
        )
    )

    roles = [turn["role"] for turn in payload["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert [next(iter(b)) for b in payload["messages"][2]["content"]] == ["toolResult", "text"]
    assert payload["messages"][2]["content"][1]["text"].endswith("Be careful.")
    assert payload["messages"][4]["content"] == [
        {"text": bedrock.SYSTEM_LABEL + "Reminder at the end."}
    ]
    assert "system" not in payload


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
STRUCTURED = {
    "type": "json_schema",
    "json_schema": {"name": "place", "schema": SCHEMA, "strict": True},
}


def test_json_schema_output_is_forced_through_a_tool_of_that_schema() -> None:
    payload = to_converse(chat(user("Where?"), response_format=STRUCTURED))

    assert payload["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "place",
                    "description": bedrock.JSON_TOOL_DESCRIPTION,
                    "inputSchema": {"json": SCHEMA},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "place"}},
    }


def test_json_output_beside_the_clients_own_tools_lets_the_model_pick_any() -> None:
    tool = {"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}
    payload = to_converse(
        chat(user("Where?"), tools=[tool], response_format={"type": "json_object"})
    )

    names = [spec["toolSpec"]["name"] for spec in payload["toolConfig"]["tools"]]
    assert names == ["Read", bedrock.JSON_TOOL]
    assert payload["toolConfig"]["toolChoice"] == {"any": {}}


def test_the_forced_answer_call_comes_back_as_json_content_with_finish_stop() -> None:
    data = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"toolUse": {"toolUseId": "t", "name": "place", "input": {"city": "Oslo"}}}
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 12},
    }

    (choice,) = from_converse(data, "c", MODEL, "place").body["choices"]

    assert json.loads(choice["message"]["content"]) == {"city": "Oslo"}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_the_forced_answer_call_streams_as_content() -> None:
    translator = ConverseStreamTranslator("c", MODEL, "place")
    start = {"toolUse": {"toolUseId": "t", "name": "place"}}
    chunks = translator.feed("contentBlockStart", {"contentBlockIndex": 0, "start": start})
    for piece in ('{"city":', '"Oslo"}'):
        delta = {"toolUse": {"input": piece}}
        chunks += translator.feed("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})
    chunks += translator.feed("messageStop", {"stopReason": "tool_use"})
    chunks += translator.feed("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2}})

    assert "".join(d.get("content", "") for d in deltas(chunks)) == '{"city":"Oslo"}'
    assert not any("tool_calls" in d for d in deltas(chunks))
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


# --- passthrough: Claude's Messages body through InvokeModel ------------------------------

CLAUDE_CODE_BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "prompt-caching-scope-2026-01-05"
)


def claude_code_call(model: str = MODEL, *, stream: bool = True) -> NativeCall:
    body = {
        "model": model,
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL},
            {"type": "text", "text": "Repo notes.", "cache_control": EPHEMERAL},
        ],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Say hi", "cache_control": EPHEMERAL}],
            }
        ],
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "metadata": {"user_id": '{"session_id":"s-1"}'},
    }
    headers = {"anthropic-version": "2023-06-01", "anthropic-beta": CLAUDE_CODE_BETAS}
    return NativeCall(wire="messages", body=body, headers=headers)


def test_invoke_body_is_the_clients_minus_model_and_stream_plus_version_and_known_betas() -> None:
    call = claude_code_call()

    payload = bedrock.to_invoke(call)

    expected = {k: v for k, v in call.body.items() if k not in ("model", "stream")}
    assert payload == {
        **expected,
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"],
    }
    assert "stream" in call.body  # the client's body itself is left alone


def test_no_beta_header_means_no_anthropic_beta() -> None:
    call = NativeCall(wire="messages", body={"model": MODEL, "max_tokens": 5, "messages": []})

    assert "anthropic_beta" not in bedrock.to_invoke(call)


def test_only_claude_models_speak_the_messages_wire() -> None:
    adapter = provider("http://127.0.0.1:1")
    closed = provider("http://127.0.0.1:1", passthrough=[])

    assert adapter.speaks("messages", SONNET) is True
    assert (
        adapter.speaks("messages", "arn:aws:bedrock:us-east-1:1:inference-profile/x.claude") is True
    )
    assert adapter.speaks("messages", "meta.llama3-70b-instruct-v1:0") is False
    assert adapter.speaks("responses", SONNET) is False
    assert closed.speaks("messages", SONNET) is False


def chunk_frame(event_json: bytes) -> tuple[dict[str, Any], bytes]:
    """One recorded-shape InvokeModelWithResponseStream frame, decoded by botocore."""
    raw = event_frame("chunk", {"bytes": base64.b64encode(event_json).decode()})
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    (message,) = list(buffer)
    return message.headers, message.payload


START = (
    b'{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message",'
    b'"role":"assistant","model":"claude-sonnet-4-20250514","content":[],"stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":300,'
    b'"cache_read_input_tokens":2048,"output_tokens":1}}}'
)
# \u00e9 stays escaped: what the client gets is Bedrock's bytes, not a re-serialisation.
DELTA = (
    b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"caf\\u00e9"}}'
)
END = (
    b'{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    b'"usage":{"output_tokens":7}}'
)
STOP = (
    b'{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,'
    b'"outputTokenCount":7,"invocationLatency":880,"firstByteLatency":402,'
    b'"cacheReadInputTokenCount":2048,"cacheWriteInputTokenCount":300}}'
)


def test_each_chunk_is_relayed_as_one_sse_event_with_bedrocks_exact_bytes() -> None:
    relay = bedrock.InvokeStreamRelay()

    relayed = [relay.feed_frame(*chunk_frame(event)) for event in (START, DELTA, END, STOP)]

    assert [r.data if r else None for r in relayed] == [
        b"event: message_start\ndata: " + START + b"\n\n",
        b"event: content_block_delta\ndata: " + DELTA + b"\n\n",
        b"event: message_delta\ndata: " + END + b"\n\n",
        b"event: message_stop\ndata: " + STOP + b"\n\n",
    ]
    assert relay.finished is True
    start, delta, end, stop = relayed
    assert start is not None and start.model == "claude-sonnet-4-20250514"
    assert start.usage is not None and start.usage.cached_tokens == 2048
    assert delta is not None and delta.usage is None
    assert end is not None and end.usage is not None
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (12 + 300 + 2048, 7)
    assert (end.usage.cached_tokens, end.usage.cache_write_tokens) == (2048, 300)
    assert stop is not None and stop.usage is None


def test_an_exception_frame_in_the_invoke_stream_is_a_mid_stream_error() -> None:
    buffer = EventStreamBuffer()
    buffer.add_data(base64.b64decode(RECORDED_EXCEPTION))
    (message,) = list(buffer)

    with pytest.raises(UpstreamError) as caught:
        bedrock.InvokeStreamRelay().feed_frame(message.headers, message.payload)

    assert caught.value.mid_stream is True and caught.value.retryable is True
    assert "The model stream failed." in caught.value.message


# --- errors ------------------------------------------------------------------------------


def aws_error(status: int, kind: str, message: str, **extra: str) -> UpstreamError:
    headers = httpx.Headers(
        {
            "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            **extra,
        }
    )
    return bedrock_error(status, orjson.dumps({"message": message}), headers)


def test_recorded_validation_error_is_a_400_that_is_not_retried() -> None:
    message = (
        "The content field in the Message object at messages.1 is empty. Add a ContentBlock "
        "object to the content field and try again."
    )

    error = aws_error(400, "ValidationException", message)

    assert (error.status, error.type, error.retryable) == (400, "invalid_request_error", False)
    assert message in error.message
    assert error.code == "ValidationException"


def test_throttling_is_a_retryable_429_with_its_retry_after() -> None:
    error = aws_error(429, "ThrottlingException", "Too many requests", **{"retry-after": "3"})

    assert (error.status, error.retryable, error.retry_after) == (429, True, 3.0)


@pytest.mark.parametrize(
    "kind", ["AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"]
)
def test_refused_credentials_are_a_retryable_502_not_the_clients_403(kind: str) -> None:
    error = aws_error(403, kind, "The security token included in the request is invalid.")

    assert (error.status, error.type, error.retryable) == (502, "upstream_auth_error", True)


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (503, "ServiceUnavailableException", 503),
        (429, "ModelNotReadyException", 429),
        (500, "InternalServerException", 500),
        (404, "ResourceNotFoundException", 404),
        (424, "ModelErrorException", 502),
    ],
)
def test_other_aws_errors_are_retryable_with_a_mapped_status(
    status: int, kind: str, expected: int
) -> None:
    error = aws_error(status, kind, "x")

    assert (error.status, error.retryable) == (expected, True)


def test_an_error_without_an_error_type_header_keeps_its_status() -> None:
    error = bedrock_error(502, b"<html>Bad Gateway</html>", httpx.Headers())

    assert error.status == 502 and "Bad Gateway" in error.message


# --- the adapter against the fake Bedrock ------------------------------------------------


@pytest.fixture(scope="module")
def bedrock_server() -> Iterator[tuple[FakeState, RunningFake]]:
    fake = FakeState(models=[MODEL], api_key="bedrock-api-key-123")
    with run_fake(make_bedrock_app(fake, {ACCESS_KEY: SECRET_KEY})) as server:
        yield fake, server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials only: no real AWS config, profile or instance role is ever read."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_bedrock(
    bedrock_server: tuple[FakeState, RunningFake], aws_env: None
) -> tuple[FakeState, str]:
    fake, server = bedrock_server
    fake.script.clear()
    fake.script.default = TextReply()
    fake.reset()
    return fake, server.url


def provider(url: str, **fields: Any) -> BedrockProvider:
    config = ProviderConfig(
        name="bedrock",
        type="bedrock",
        region="us-east-1",
        base_url=url,
        models=[MODEL],
        timeout=5,
        connect_timeout=1,
        **fields,
    )
    return BedrockProvider(config)


async def collect(
    adapter: BedrockProvider, url: str, body: JSON
) -> tuple[list[JSON], UpstreamError | None]:
    received: list[JSON] = []
    try:
        async for chunk in adapter.stream(url, body):
            received.append(chunk)
    except UpstreamError as exc:
        return received, exc
    finally:
        await adapter.aclose()
    return received, None


async def test_signed_chat_reaches_the_encoded_model_path_and_passes_signature_check(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    fake.script.push(TextReply("Hello there", prompt_tokens=5, completion_tokens=2))
    adapter = provider(url)
    try:
        response = await adapter.chat(url, chat(user("Hi")))
    finally:
        await adapter.aclose()

    assert response.body["choices"][0]["message"]["content"] == "Hello there"
    assert response.usage.total_tokens == 7
    sent = fake.last_request
    assert sent.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert sent.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert sent.json == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}


async def test_a_wrong_secret_is_refused_and_surfaces_as_upstream_auth_error(
    fake_bedrock: tuple[FakeState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake_bedrock
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    adapter = provider(url)
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.chat(url, chat(user("Hi")))
    finally:
        await adapter.aclose()

    assert (caught.value.status, caught.value.type) == (502, "upstream_auth_error")
    assert "InvalidSignatureException" in caught.value.message


async def test_rotated_keys_are_picked_up_after_a_signature_is_refused(
    fake_bedrock: tuple[FakeState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake_bedrock
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-old-secret")
    adapter = provider(url)
    try:
        with pytest.raises(UpstreamError):
            await adapter.chat(url, chat(user("Hi")))
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        response = await adapter.chat(url, chat(user("Hi")))
    finally:
        await adapter.aclose()

    assert response.body["choices"][0]["message"]["content"]


async def test_no_credentials_at_all_is_a_retryable_auth_error(
    fake_bedrock: tuple[FakeState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = fake_bedrock
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    adapter = provider(url)
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.chat(url, chat(user("Hi")))
    finally:
        await adapter.aclose()

    assert (caught.value.type, caught.value.retryable) == ("upstream_auth_error", True)
    assert fake.requests == []


async def test_an_api_key_is_sent_as_bearer_instead_of_signing(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    adapter = provider(url, api_key="bedrock-api-key-123")
    try:
        await adapter.chat(url, chat(user("Hi")))
    finally:
        await adapter.aclose()

    assert fake.last_request.headers["authorization"] == "Bearer bedrock-api-key-123"
    assert "x-amz-date" not in fake.last_request.headers


async def test_the_bearer_token_env_variable_is_a_bedrock_api_key(
    fake_bedrock: tuple[FakeState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = fake_bedrock
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-123")
    adapter = provider(url)
    try:
        await adapter.chat(url, chat(user("Hi")))
    finally:
        await adapter.aclose()

    assert fake.last_request.headers["authorization"] == "Bearer bedrock-api-key-123"


async def test_credentials_are_resolved_once_off_the_event_loop(
    fake_bedrock: tuple[FakeState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake_bedrock
    on_loop_thread: list[bool] = []
    resolve = bedrock._resolve_credentials

    def counting_resolve() -> Any:
        on_loop_thread.append(threading.current_thread() is threading.main_thread())
        return resolve()

    monkeypatch.setattr(bedrock, "_resolve_credentials", counting_resolve)
    adapter = provider(url)
    try:
        await adapter.chat(url, chat(user("Hi")))
        await adapter.chat(url, chat(user("Hi again")))
    finally:
        await adapter.aclose()

    assert on_loop_thread == [False]


async def test_expiring_credentials_are_refreshed_off_the_event_loop(
    fake_bedrock: tuple[FakeState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake_bedrock
    refreshed_on_loop_thread: list[bool] = []
    now = datetime.datetime.now(datetime.UTC)

    def refresh() -> dict[str, Any]:
        refreshed_on_loop_thread.append(threading.current_thread() is threading.main_thread())
        expiry = now + datetime.timedelta(hours=1)
        return {
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "token": None,
            "expiry_time": expiry.isoformat(),
        }

    expiring = RefreshableCredentials.create_from_metadata(
        metadata={
            "access_key": ACCESS_KEY,
            "secret_key": "expired-secret",
            "token": None,
            "expiry_time": (now + datetime.timedelta(seconds=30)).isoformat(),
        },
        refresh_using=refresh,
        method="test",
    )
    monkeypatch.setattr(bedrock, "_resolve_credentials", lambda: expiring)
    adapter = provider(url)
    try:
        await adapter.chat(url, chat(user("Hi")))  # would fail the signature check unrefreshed
        await adapter.chat(url, chat(user("Hi again")))
    finally:
        await adapter.aclose()

    assert refreshed_on_loop_thread == [False]


async def test_adapter_streams_role_content_finish_and_usage(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    fake.script.push(TextReply("Hello there friend", prompt_tokens=5, completion_tokens=3))

    chunks, error = await collect(provider(url), url, chat(user("Hi")))

    assert error is None
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas(chunks)) == "Hello there friend"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    sent = fake.last_request
    assert sent.path.endswith("%3A0/converse-stream")
    assert sent.headers["accept"] == "application/vnd.amazon.eventstream"


async def test_adapter_streams_tool_calls_that_reassemble(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "New York City"}, id="tu_9")]))

    chunks, error = await collect(provider(url), url, chat(user("Weather?")))

    assert error is None
    calls = [c for d in deltas(chunks) for c in d.get("tool_calls", [])]
    assert calls[0]["id"] == "tu_9" and calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"city": "New York City"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_adapter_raises_mid_stream_on_an_exception_frame(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    fake.script.push(MidStreamError(after_chunks=2, message="out of capacity"))

    chunks, error = await collect(provider(url), url, chat(user("Hi")))

    assert error is not None and error.mid_stream is True
    assert "out of capacity" in error.message
    assert len(deltas(chunks)) == 3  # the role chunk and two content chunks


async def test_an_exception_frame_first_counts_as_before_the_first_byte(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    fake.script.push(MidStreamError(after_chunks=0))

    chunks, error = await collect(provider(url), url, chat(user("Hi")))

    assert chunks == []
    assert error is not None and error.mid_stream is False and error.retryable is True


async def test_a_cut_stream_is_a_mid_stream_error(fake_bedrock: tuple[FakeState, str]) -> None:
    fake, url = fake_bedrock
    fake.script.push(CutStream(after_chunks=2))

    chunks, error = await collect(provider(url), url, chat(user("Hi")))

    assert error is not None and error.mid_stream is True
    assert len(deltas(chunks)) == 3


async def test_throttling_before_the_stream_is_a_retryable_429(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    fake.script.push(ErrorReply(429))

    chunks, error = await collect(provider(url), url, chat(user("Hi")))

    assert chunks == []
    assert error is not None
    assert (error.status, error.retryable, error.mid_stream) == (429, True, False)
    assert "Too many requests" in error.message


async def test_an_unknown_model_id_is_a_validation_error(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    _, url = fake_bedrock
    adapter = provider(url)
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.chat(url, {"model": "anthropic.nope-v1:0", "messages": [user("Hi")]})
    finally:
        await adapter.aclose()

    assert caught.value.status == 400
    assert "model identifier is invalid" in caught.value.message


async def test_probe_is_a_token_free_reachability_check(
    fake_bedrock: tuple[FakeState, str],
) -> None:
    fake, url = fake_bedrock
    adapter = provider(url)
    try:
        up = await adapter.probe(url)
        down = await adapter.probe(refusing_url())
    finally:
        await adapter.aclose()

    assert up.healthy is True and up.error is None
    assert down.healthy is False and down.error
    assert [r.method for r in fake.requests] == ["HEAD"]
    assert "authorization" not in fake.requests[0].headers


async def test_embeddings_are_refused_so_another_provider_can_serve_them() -> None:
    adapter = provider("http://127.0.0.1:1")
    with pytest.raises(UpstreamError) as caught:
        await adapter.embed("http://127.0.0.1:1", {"model": MODEL, "input": "x"})
    await adapter.aclose()

    assert (caught.value.status, caught.value.retryable) == (400, True)
    assert await adapter.list_models("http://127.0.0.1:1") == [MODEL]


# --- passthrough against the fake Bedrock ---------------------------------------------------


@pytest.fixture(scope="module")
def claude_server() -> Iterator[tuple[FakeState, PromptCache, RunningFake]]:
    fake = FakeState(models=[MODEL])
    cache = PromptCache()
    with run_fake(make_bedrock_app(fake, {ACCESS_KEY: SECRET_KEY}, cache)) as server:
        yield fake, cache, server


@pytest.fixture
def claude_bedrock(
    claude_server: tuple[FakeState, PromptCache, RunningFake], aws_env: None
) -> tuple[FakeState, PromptCache, str]:
    fake, cache, server = claude_server
    fake.script.clear()
    fake.script.default = TextReply()
    fake.reset()
    cache.read_tokens = cache.creation_tokens = 0
    return fake, cache, server.url


async def relay_all(
    adapter: BedrockProvider, url: str, call: NativeCall
) -> tuple[list[Relayed], UpstreamError | None]:
    received: list[Relayed] = []
    try:
        async for relayed in adapter.native_stream(url, call):
            received.append(relayed)
    except UpstreamError as exc:
        return received, exc
    finally:
        await adapter.aclose()
    return received, None


def sse_events(data: bytes) -> list[tuple[str, JSON]]:
    events = []
    for block in data.split(b"\n\n"):
        if block:
            name, payload = block.split(b"\n")
            events.append((name.removeprefix(b"event: ").decode(), orjson.loads(payload[6:])))
    return events


async def test_native_invoke_returns_claudes_message_and_its_cache_usage(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    fake, cache, url = claude_bedrock
    cache.read_tokens, cache.creation_tokens = 60, 30
    fake.script.push(TextReply("Hi!", prompt_tokens=100, completion_tokens=2))
    adapter = provider(url)
    try:
        response = await adapter.native(url, claude_code_call(stream=False))
    finally:
        await adapter.aclose()

    assert response.body["type"] == "message"
    assert response.body["content"] == [{"type": "text", "text": "Hi!"}]
    assert response.raw is not None and orjson.loads(response.raw) == response.body
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (100, 2)
    assert (response.usage.cached_tokens, response.usage.cache_write_tokens) == (60, 30)
    sent = fake.last_request
    assert sent.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")  # and checked
    assert "model" not in sent.json and "stream" not in sent.json
    assert sent.json["anthropic_version"] == "bedrock-2023-05-31"
    assert sent.json["system"][0]["cache_control"] == EPHEMERAL
    assert sent.json["thinking"] == {"type": "enabled", "budget_tokens": 31999}


async def test_native_stream_relays_each_event_and_reads_usage_on_the_way(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    fake, cache, url = claude_bedrock
    cache.read_tokens, cache.creation_tokens = 2048, 300
    fake.script.push(TextReply("one two three", prompt_tokens=2400, completion_tokens=3))

    relayed, error = await relay_all(provider(url), url, claude_code_call())

    assert error is None
    events = sse_events(b"".join(r.data for r in relayed))
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert all(name == event["type"] for name, event in events)
    text = "".join(e["delta"].get("text", "") for n, e in events if n == "content_block_delta")
    assert text == "one two three"
    assert "amazon-bedrock-invocationMetrics" in events[-1][1]
    assert relayed[0].model == "claude-3-haiku-20240307"
    usages = [r.usage for r in relayed if r.usage is not None]
    assert len(usages) == 2  # message_start, message_delta
    final = usages[-1]
    assert (final.prompt_tokens, final.completion_tokens) == (2400, 3)
    assert (final.cached_tokens, final.cache_write_tokens) == (2048, 300)
    sent = fake.last_request
    assert sent.path.endswith("%3A0/invoke-with-response-stream")
    assert sent.headers["accept"] == "application/vnd.amazon.eventstream"
    assert sent.json["anthropic_beta"] == [
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
    ]


async def test_native_stream_relays_a_tool_call_whole(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = claude_bedrock
    fake.script.push(ToolCallReply([ToolCall("Bash", {"command": "ls -la"}, id="toolu_1")]))

    relayed, error = await relay_all(provider(url), url, claude_code_call())

    assert error is None
    events = sse_events(b"".join(r.data for r in relayed))
    starts = [e["content_block"] for n, e in events if n == "content_block_start"]
    assert starts == [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]
    arguments = "".join(e["delta"]["partial_json"] for n, e in events if n == "content_block_delta")
    assert json.loads(arguments) == {"command": "ls -la"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_native_stream_exception_frame_is_a_mid_stream_error(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = claude_bedrock
    fake.script.push(MidStreamError(after_chunks=2, message="out of capacity"))

    relayed, error = await relay_all(provider(url), url, claude_code_call())

    assert error is not None and error.mid_stream is True
    assert "out of capacity" in error.message
    assert [sse_events(r.data)[0][0] for r in relayed][:2] == [
        "message_start",
        "content_block_start",
    ]


async def test_native_stream_throttled_before_any_event_may_fail_over(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = claude_bedrock
    fake.script.push(ErrorReply(429))

    relayed, error = await relay_all(provider(url), url, claude_code_call())

    assert relayed == []
    assert error is not None
    assert (error.status, error.retryable, error.mid_stream) == (429, True, False)


async def test_native_stream_cut_mid_way_is_a_mid_stream_error(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    fake, _, url = claude_bedrock
    fake.script.push(CutStream(after_chunks=2))

    relayed, error = await relay_all(provider(url), url, claude_code_call())

    assert relayed and error is not None and error.mid_stream is True


async def test_the_fake_refuses_what_bedrock_refuses_so_the_filtering_is_load_bearing(
    claude_bedrock: tuple[FakeState, PromptCache, str],
) -> None:
    _, _, url = claude_bedrock
    path = model_path(MODEL, "invoke")
    valid = bedrock.to_invoke(claude_code_call(stream=False))
    refused = (
        ({**valid, "anthropic_beta": ["claude-code-20250219"]}, "invalid beta flag"),
        ({**valid, "stream": True}, "extraneous key [stream]"),
        ({k: v for k, v in valid.items() if k != "anthropic_version"}, "anthropic_version"),
    )
    async with httpx.AsyncClient(base_url=url) as client:
        for body, problem in refused:
            raw = orjson.dumps(body)
            headers = sign(Credentials(ACCESS_KEY, SECRET_KEY), "us-east-1", url + path, raw)
            response = await client.post(path, content=raw, headers=headers)

            assert response.status_code == 400
            assert problem in response.json()["message"]
