"""Gemini's generateContent behind the OpenAI shape: request, response, stream and error
mapping as pure functions over the recorded payloads of PROVIDER_WIRE_FORMATS.md §3, plus the
adapter end to end against the fake Gemini."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from omen.config.model import ProviderConfig
from omen.providers.base import JSON, UpstreamError
from omen.providers.gemini import (
    SKIP_SIGNATURE,
    SYSTEM_LABEL,
    GeminiProvider,
    GeminiStreamTranslator,
    embedding_data,
    from_gemini_response,
    gemini_error,
    sse_data,
    to_gemini_embed_requests,
    to_gemini_request,
)
from omen.providers.http import iter_lines
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
from tests.fakes.content import embedding_for
from tests.fakes.gemini_upstream import GeminiKnobs, invalid_key_body, make_gemini_app

MODEL = "gemini-2.0-flash"
KEY = "AIza-test-key"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ=="
SIGNATURE = "EtoF0123456789abcdef"

# vercel/ai packages/google/src/__fixtures__/google-text.json (signature cut down)
RECORDED_TEXT = {
    "candidates": [
        {
            "content": {
                "parts": [{"text": "There are **3** r's…", "thoughtSignature": SIGNATURE}],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 9,
        "candidatesTokenCount": 28,
        "totalTokenCount": 281,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
        "thoughtsTokenCount": 244,
    },
    "modelVersion": "gemini-3-pro-preview",
    "responseId": "Un6LacrVMcjUxs0PmJfWoQc",
}


def _recorded_usage(candidates: int) -> JSON:
    return {
        "promptTokenCount": 9,
        "candidatesTokenCount": candidates,
        "totalTokenCount": 9 + candidates + 185,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
        "thoughtsTokenCount": 185,
    }


# google-text.chunks.txt: three events, the last an empty text part beside finishReason.
RECORDED_TEXT_CHUNKS: list[JSON] = [
    {
        "candidates": [
            {"content": {"parts": [{"text": "There are **3**"}], "role": "model"}, "index": 0}
        ],
        "usageMetadata": _recorded_usage(5),
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "bH6LaZW8Fp_3nsEPqtaSwQ4",
    },
    {
        "candidates": [
            {
                "content": {
                    "parts": [{"text": ' "r"s in strawberry.\n\nst**r**awbe**rr**y'}],
                    "role": "model",
                },
                "index": 0,
            }
        ],
        "usageMetadata": _recorded_usage(23),
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "bH6LaZW8Fp_3nsEPqtaSwQ4",
    },
    {
        "candidates": [
            {
                "content": {
                    "parts": [{"text": "", "thoughtSignature": SIGNATURE}],
                    "role": "model",
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": _recorded_usage(23),
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "bH6LaZW8Fp_3nsEPqtaSwQ4",
    },
]

_TOOL_USAGE = {
    "promptTokenCount": 29,
    "candidatesTokenCount": 15,
    "totalTokenCount": 89,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 29}],
    "thoughtsTokenCount": 45,
}
# google-tool-call.chunks.txt: the call arrives whole; the finish still says STOP.
RECORDED_TOOL_CHUNKS: list[JSON] = [
    {
        "candidates": [
            {
                "content": {
                    "parts": [
                        {
                            "functionCall": {
                                "name": "weather",
                                "args": {"location": "San Francisco"},
                            },
                            "thoughtSignature": SIGNATURE,
                        }
                    ],
                    "role": "model",
                },
                "index": 0,
            }
        ],
        "usageMetadata": _TOOL_USAGE,
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "b36LacjwM668nsEP2tbsgQQ",
    },
    {
        "candidates": [
            {
                "content": {"parts": [{"text": ""}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": _TOOL_USAGE,
        "modelVersion": "gemini-3-pro-preview",
        "responseId": "b36LacjwM668nsEP2tbsgQQ",
    },
]

# issue-19758-prompt-block.json
RECORDED_BLOCK = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {
        "promptTokenCount": 9,
        "totalTokenCount": 9,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
        "serviceTier": "standard",
    },
    "modelVersion": "gemini-3.7-flash",
    "responseId": "EXCPaojyHaDUjMcP656rqAk",
}

# google-429-retry-info.json
RECORDED_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"},
        ],
    }
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
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


def tool(call_id: str, content: str) -> JSON:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def request(*messages: JSON, model: str = MODEL, **fields: Any) -> JSON:
    return to_gemini_request(chat(*messages, **fields), model)


# --- request -----------------------------------------------------------------------------


def test_user_text_becomes_one_user_turn_with_a_text_part() -> None:
    assert request(user("Hi")) == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    payload = request(
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        user("Hi"),
    )

    assert payload["systemInstruction"] == {
        "parts": [{"text": "You are terse."}, {"text": "Answer in French."}]
    }
    assert [turn["role"] for turn in payload["contents"]] == ["user"]


def test_assistant_turns_are_model_turns() -> None:
    payload = request(user("Hi"), {"role": "assistant", "content": "Hello"}, user("Bye"))

    assert [turn["role"] for turn in payload["contents"]] == ["user", "model", "user"]
    assert payload["contents"][1]["parts"] == [{"text": "Hello"}]


def test_image_data_url_becomes_inline_data_beside_the_text() -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ]

    (turn,) = request(user(parts))["contents"]

    assert turn["parts"] == [
        {"text": "What is in this picture?"},
        {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
    ]


def test_http_image_url_is_refused_as_retryable_400() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]

    with pytest.raises(UpstreamError) as caught:
        request(user(parts))

    assert caught.value.status == 400
    assert caught.value.retryable is True  # another provider may fetch the URL
    assert caught.value.code == "unsupported_image_url"
    assert "data: URL" in caught.value.message


def test_assistant_tool_calls_become_function_call_parts_with_object_args() -> None:
    payload = request(
        user("Weather?"), assistant_calls(("call_1", "get_weather", '{"city":"Paris"}'))
    )

    assert payload["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }


def test_unparseable_tool_call_arguments_become_an_empty_object() -> None:
    payload = request(user("Weather?"), assistant_calls(("call_1", "get_weather", "{not json")))

    assert payload["contents"][1]["parts"][0]["functionCall"]["args"] == {}


def test_tool_result_is_a_user_function_response_named_after_its_call() -> None:
    payload = request(
        user("Weather?"),
        assistant_calls(("call_1", "get_weather", '{"city":"Paris"}')),
        tool("call_1", '{"temp": 21}'),
    )

    assert payload["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}],
    }


@pytest.mark.parametrize("content", ["21 degrees and sunny", "[1, 2]", '"quoted"'])
def test_tool_result_that_is_not_a_json_object_is_wrapped_as_content(content: str) -> None:
    payload = request(
        user("Weather?"), assistant_calls(("call_1", "get_weather", "{}")), tool("call_1", content)
    )

    response = payload["contents"][2]["parts"][0]["functionResponse"]["response"]
    assert response == {"content": content}


def test_parallel_tool_results_reach_gemini_as_one_turn() -> None:
    payload = request(
        user("Weather in Paris and Rome?"),
        assistant_calls(
            ("call_a", "get_weather", '{"city":"Paris"}'),
            ("call_b", "get_time", '{"city":"Rome"}'),
        ),
        tool("call_a", '{"temp": 21}'),
        tool("call_b", '{"time": "12:00"}'),
    )

    assert [turn["role"] for turn in payload["contents"]] == ["user", "model", "user"]
    names = [p["functionResponse"]["name"] for p in payload["contents"][2]["parts"]]
    assert names == ["get_weather", "get_time"]


def test_gemini_3_replays_get_the_documented_signature_on_the_first_call_only() -> None:
    payload = request(
        user("Weather?"),
        assistant_calls(("call_a", "get_weather", "{}"), ("call_b", "get_time", "{}")),
        model="gemini-3-pro-preview",
    )

    first, second = payload["contents"][1]["parts"]
    assert first["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in second


def test_gemini_2_replays_carry_no_signature() -> None:
    payload = request(user("Weather?"), assistant_calls(("call_a", "get_weather", "{}")))

    assert "thoughtSignature" not in payload["contents"][1]["parts"][0]


def test_assistant_message_without_text_or_calls_is_left_out() -> None:
    payload = request(user("Hi"), {"role": "assistant", "content": ""}, user("Still there?"))

    assert payload["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": "Still there?"}]}
    ]


def test_sampling_fields_become_generation_config() -> None:
    payload = request(
        user("Hi"),
        temperature=0.7,
        top_p=0.9,
        max_tokens=256,
        stop="END",
        n=2,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=0.25,
    )

    assert payload["generationConfig"] == {
        "temperature": 0.7,
        "topP": 0.9,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
    }


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    config = request(user("Hi"), max_completion_tokens=10, max_tokens=99)["generationConfig"]

    assert config["maxOutputTokens"] == 10


def test_zero_temperature_is_kept() -> None:
    assert request(user("Hi"), temperature=0)["generationConfig"] == {"temperature": 0}


def test_no_sampling_fields_means_no_generation_config() -> None:
    assert "generationConfig" not in request(user("Hi"))


def test_json_object_response_format_asks_for_json() -> None:
    config = request(user("Hi"), response_format={"type": "json_object"})["generationConfig"]

    assert config == {"responseMimeType": "application/json"}


def test_json_schema_response_format_sends_the_json_schema_unchanged() -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}

    config = request(user("Hi"), response_format=response_format)["generationConfig"]

    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_function_tools_become_function_declarations() -> None:
    other = {"type": "web_search"}

    payload = request(user("Weather?"), tools=[WEATHER_TOOL, other])

    function = WEATHER_TOOL["function"]
    assert payload["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parametersJsonSchema": function["parameters"],  # type: ignore[index]
                }
            ]
        }
    ]
    assert "toolConfig" not in payload


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_becomes_function_calling_config(choice: Any, config: JSON) -> None:
    payload = request(user("Weather?"), tools=[WEATHER_TOOL], tool_choice=choice)

    assert payload["toolConfig"] == {"functionCallingConfig": config}


# --- meaning that crosses formats: thinking, mid-conversation system, cache breakpoints --


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 8192), ("high", 24576)])
def test_reasoning_effort_becomes_a_thinking_budget_that_returns_thoughts(
    effort: str, budget: int
) -> None:
    payload = request(user("Why?"), reasoning_effort=effort, max_tokens=30000)

    assert payload["generationConfig"] == {
        "maxOutputTokens": 30000,
        "thinkingConfig": {"thinkingBudget": budget, "includeThoughts": True},
    }


def test_minimal_effort_turns_thinking_off_where_the_model_allows_it() -> None:
    flash = request(user("Hi"), reasoning_effort="minimal")
    pro = request(user("Hi"), model="gemini-2.5-pro", reasoning_effort="minimal")
    three = request(user("Hi"), model="models/gemini-3-pro-preview", reasoning_effort="minimal")

    assert flash["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}
    for payload in (pro, three):
        thinking = payload["generationConfig"]["thinkingConfig"]
        assert thinking == {"thinkingBudget": 128, "includeThoughts": True}


def test_no_or_unknown_effort_sends_no_thinking_config() -> None:
    assert "generationConfig" not in request(user("Hi"))
    assert "generationConfig" not in request(user("Hi"), reasoning_effort="extreme")


def test_a_mid_conversation_system_message_is_folded_into_the_next_user_turn() -> None:
    payload = request(
        {"role": "system", "content": "You are terse."},
        user("Hi"),
        {"role": "assistant", "content": "Hello."},
        {"role": "system", "content": "The user is on a phone."},
        user("Tell me a joke"),
    )

    assert payload["systemInstruction"] == {"parts": [{"text": "You are terse."}]}
    assert payload["contents"][-1] == {
        "role": "user",
        "parts": [
            {"text": SYSTEM_LABEL + "The user is on a phone."},
            {"text": "Tell me a joke"},
        ],
    }


def test_a_folded_system_message_follows_function_responses_and_precedes_the_model() -> None:
    payload = request(
        user("Weather?"),
        assistant_calls(("c1", "get_weather", '{"city": "Paris"}')),
        {"role": "system", "content": [{"type": "text", "text": "Use Celsius."}]},
        tool("c1", '{"temp": 21}'),
        {"role": "assistant", "content": "21 degrees."},
        {"role": "system", "content": "Wrap up."},
    )

    roles = [turn["role"] for turn in payload["contents"]]
    assert roles == ["user", "model", "user", "model", "user"]
    results = payload["contents"][2]["parts"]
    assert "functionResponse" in results[0]
    assert results[1] == {"text": SYSTEM_LABEL + "Use Celsius."}
    assert payload["contents"][4]["parts"] == [{"text": SYSTEM_LABEL + "Wrap up."}]
    assert "systemInstruction" not in payload


def test_cache_breakpoints_send_nothing_since_gemini_caches_implicitly() -> None:
    marker = {"type": "ephemeral"}
    payload = request(
        {
            "role": "system",
            "content": [{"type": "text", "text": "Long rules.", "cache_control": marker}],
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

    assert "cache_control" not in orjson.dumps(payload).decode()
    assert payload["systemInstruction"] == {"parts": [{"text": "Long rules."}]}
    assert payload["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


# --- response ----------------------------------------------------------------------------


def test_recorded_text_answer_becomes_a_chat_completion() -> None:
    response = from_gemini_response(RECORDED_TEXT, "chatcmpl-1", MODEL)

    (choice,) = response.body["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": "There are **3** r's…",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    assert response.body["model"] == MODEL
    assert response.body["object"] == "chat.completion"


def test_thinking_tokens_are_output_tokens_and_reported_as_reasoning() -> None:
    response = from_gemini_response(RECORDED_TEXT, "chatcmpl-1", MODEL)

    assert response.body["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 28 + 244,
        "total_tokens": 281,  # Gemini's totalTokenCount includes the thoughts too
        "completion_tokens_details": {"reasoning_tokens": 244},
    }
    assert response.usage.reasoning_tokens == 244


def test_cached_content_tokens_are_reported_as_cached_prompt_tokens() -> None:
    data = {
        **RECORDED_TEXT,
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 64},
    }

    response = from_gemini_response(data, "chatcmpl-1", MODEL)

    assert response.usage.cached_tokens == 64
    assert response.body["usage"]["prompt_tokens_details"] == {"cached_tokens": 64}


def test_thought_parts_are_reasoning_not_content() -> None:
    parts = [{"text": "Let me count.", "thought": True}, {"text": "Three."}]
    data = {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP"}]}

    message = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"][0]["message"]

    assert message["content"] == "Three."
    assert message["reasoning"] == "Let me count."


def test_function_call_answer_finishes_with_tool_calls_though_gemini_says_stop() -> None:
    event = RECORDED_TOOL_CHUNKS[0]
    data = {**event, "candidates": [{**event["candidates"][0], "finishReason": "STOP"}]}

    (choice,) = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"]

    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "weather", "arguments": '{"location":"San Francisco"}'}


def test_parallel_function_calls_get_distinct_ids_and_a_call_id_is_kept() -> None:
    parts = [
        {"functionCall": {"name": "a", "args": {}}},
        {"functionCall": {"name": "b", "args": {"x": 1}}},
        {"functionCall": {"id": "fc_1", "name": "c"}},
    ]
    data = {"candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP"}]}

    calls = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"][0]["message"][
        "tool_calls"
    ]

    assert [c["function"]["name"] for c in calls] == ["a", "b", "c"]
    assert len({c["id"] for c in calls}) == 3
    assert calls[2]["id"] == "fc_1"
    assert calls[2]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_finish_reasons_follow_the_reference_table(reason: str, expected: str) -> None:
    data = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}

    choice = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"][0]

    assert choice["finish_reason"] == expected


def test_a_call_cut_by_max_tokens_finishes_with_length() -> None:
    parts = [{"functionCall": {"name": "a", "args": {}}}]
    data = {"candidates": [{"content": {"parts": parts}, "finishReason": "MAX_TOKENS"}]}

    choice = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"][0]

    assert choice["finish_reason"] == "length"


def test_safety_stop_without_content_is_a_content_filter_answer() -> None:
    data = {"candidates": [{"finishReason": "SAFETY", "index": 0}]}

    (choice,) = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"]

    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == ""


def test_recorded_blocked_prompt_is_a_content_filter_answer_with_its_prompt_tokens() -> None:
    response = from_gemini_response(RECORDED_BLOCK, "chatcmpl-1", MODEL)

    (choice,) = response.body["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] is None
    assert "PROHIBITED_CONTENT" in choice["message"]["refusal"]
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (9, 0)


def test_answer_without_candidates_or_block_reason_is_a_502() -> None:
    with pytest.raises(UpstreamError) as caught:
        from_gemini_response({"usageMetadata": {}}, "chatcmpl-1", MODEL)

    assert caught.value.status == 502


def test_each_candidate_becomes_a_choice() -> None:
    data = {
        "candidates": [
            {"content": {"parts": [{"text": "one"}]}, "finishReason": "STOP", "index": 0},
            {"content": {"parts": [{"text": "two"}]}, "finishReason": "MAX_TOKENS", "index": 1},
        ]
    }

    choices = from_gemini_response(data, "chatcmpl-1", MODEL).body["choices"]

    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "one", "stop"),
        (1, "two", "length"),
    ]


# --- streaming ---------------------------------------------------------------------------


def deltas(chunks: list[JSON]) -> list[JSON]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def test_recorded_text_stream_becomes_content_deltas_then_one_finish() -> None:
    translator = GeminiStreamTranslator("chatcmpl-9", MODEL)

    chunks = [chunk for event in RECORDED_TEXT_CHUNKS for chunk in translator.feed(event)]

    assert deltas(chunks) == [
        {"content": "There are **3**"},
        {"content": ' "r"s in strawberry.\n\nst**r**awbe**rr**y'},
        {},  # the closing empty text part adds nothing
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "stop"]
    assert all(c["model"] == MODEL and c["id"] == "chatcmpl-9" for c in chunks)


def test_usage_chunk_comes_at_the_close_from_the_last_running_usage() -> None:
    translator = GeminiStreamTranslator("chatcmpl-9", MODEL)
    for event in RECORDED_TEXT_CHUNKS:
        translator.feed(event)

    usage = translator.finish()

    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 23 + 185,
        "total_tokens": 217,
        "completion_tokens_details": {"reasoning_tokens": 185},
    }


def test_recorded_tool_call_stream_emits_the_call_and_finishes_with_tool_calls() -> None:
    translator = GeminiStreamTranslator("chatcmpl-9", MODEL)

    chunks = [chunk for event in RECORDED_TOOL_CHUNKS for chunk in translator.feed(event)]

    (call,) = deltas(chunks)[0]["tool_calls"]
    assert call["index"] == 0
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "weather", "arguments": '{"location":"San Francisco"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.finish()["usage"]["completion_tokens"] == 15 + 45


def test_calls_in_later_events_get_running_indices() -> None:
    translator = GeminiStreamTranslator("chatcmpl-9", MODEL)
    first = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "a"}}]}}]}
    second = {
        "candidates": [
            {
                "content": {
                    "parts": [{"functionCall": {"name": "b"}}, {"functionCall": {"name": "c"}}]
                },
                "finishReason": "STOP",
            }
        ]
    }

    chunks = translator.feed(first) + translator.feed(second)

    calls = [call for delta in deltas(chunks) for call in delta.get("tool_calls", [])]
    assert [(c["index"], c["function"]["name"]) for c in calls] == [(0, "a"), (1, "b"), (2, "c")]


def test_thought_part_streams_as_a_reasoning_delta() -> None:
    event = {"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}]}}]}

    assert deltas(GeminiStreamTranslator("chatcmpl-9", MODEL).feed(event)) == [{"reasoning": "hmm"}]


def test_first_chunk_carries_the_assistant_role() -> None:
    first = GeminiStreamTranslator("chatcmpl-9", MODEL).first()

    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert first["object"] == "chat.completion.chunk"


def test_a_second_candidate_opens_with_its_own_role_delta() -> None:
    event = {"candidates": [{"content": {"parts": [{"text": "two"}]}, "index": 1}]}

    chunks = GeminiStreamTranslator("chatcmpl-9", MODEL).feed(event)

    assert [c["choices"][0]["index"] for c in chunks] == [1, 1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[1]["choices"][0]["delta"] == {"content": "two"}


def test_recorded_blocked_prompt_event_finishes_with_content_filter() -> None:
    translator = GeminiStreamTranslator("chatcmpl-9", MODEL)

    chunks = translator.feed(RECORDED_BLOCK)

    assert "PROHIBITED_CONTENT" in deltas(chunks)[0]["refusal"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"
    assert translator.finish()["usage"]["prompt_tokens"] == 9


def test_stream_closed_before_any_finish_reason_is_a_mid_stream_error() -> None:
    translator = GeminiStreamTranslator("chatcmpl-9", MODEL)
    translator.feed(RECORDED_TEXT_CHUNKS[0])

    with pytest.raises(UpstreamError) as caught:
        translator.finish()

    assert caught.value.mid_stream is True
    assert "finishReason" in caught.value.message


def test_error_event_raises_with_its_status() -> None:
    event = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}

    with pytest.raises(UpstreamError) as caught:
        GeminiStreamTranslator("chatcmpl-9", MODEL).feed(event)

    assert caught.value.status == 503
    assert caught.value.retryable is True
    assert "overloaded" in caught.value.message


async def _parts(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def events_of(*parts: bytes) -> list[bytes]:
    response = httpx.Response(200, content=_parts(*parts))
    return [data async for data in sse_data(iter_lines(response, "test"))]


@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"])
async def test_events_split_on_lf_and_crlf_blank_lines(separator: bytes) -> None:
    body = b'data: {"a":1}' + separator + b'data: {"b":2}' + separator

    assert await events_of(body) == [b'{"a":1}', b'{"b":2}']


async def test_crlf_split_across_network_reads_still_separates_events() -> None:
    events = await events_of(b'data: {"a":1}\r', b"\n\r", b'\ndata: {"b"', b":2}\r\n\r\n")

    assert events == [b'{"a":1}', b'{"b":2}']


async def test_last_event_without_a_blank_line_and_multi_line_data_are_kept() -> None:
    events = await events_of(b': comment\nevent: x\ndata: {"a":\ndata: 1}\n\ndata: {}')

    assert events == [b'{"a":\n1}', b"{}"]


# --- errors ------------------------------------------------------------------------------


def test_invalid_key_400_is_a_retryable_502_about_omens_credentials() -> None:
    error = gemini_error(400, orjson.dumps(invalid_key_body()), httpx.Headers())

    assert error.status == 502
    assert error.type == "upstream_auth_error"
    assert error.code == "API_KEY_INVALID"
    assert error.retryable is True
    assert "API key not valid" in error.message
    assert "Omen's API key" in error.message


def test_missing_key_403_is_a_502_too() -> None:
    body = {
        "error": {"code": 403, "message": "Method doesn't allow…", "status": "PERMISSION_DENIED"}
    }

    error = gemini_error(403, orjson.dumps(body), httpx.Headers())

    assert (error.status, error.type, error.retryable) == (502, "upstream_auth_error", True)


def test_recorded_429_is_retryable_with_retry_after_from_retry_info() -> None:
    error = gemini_error(429, orjson.dumps(RECORDED_429), httpx.Headers())

    assert error.status == 429
    assert error.retryable is True
    assert error.retry_after == pytest.approx(34.4)
    assert error.code == "RESOURCE_EXHAUSTED"
    assert "exceeded your current quota" in error.message


def test_429_without_retry_info_falls_back_to_the_retry_after_header() -> None:
    body = {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}

    error = gemini_error(429, orjson.dumps(body), httpx.Headers({"retry-after": "7"}))

    assert error.retry_after == 7


@pytest.mark.parametrize(
    ("status", "name", "message"),
    [
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        (500, "INTERNAL", "An internal error has occurred."),
        (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    ],
)
def test_server_errors_keep_their_status_and_are_retryable(
    status: int, name: str, message: str
) -> None:
    body = {"error": {"code": status, "message": message, "status": name}}

    error = gemini_error(status, orjson.dumps(body), httpx.Headers())

    assert (error.status, error.retryable, error.code) == (status, True, name)
    assert message in error.message


def test_invalid_argument_is_the_clients_400_and_not_retryable() -> None:
    body = {
        "error": {"code": 400, "message": "Please use a valid role", "status": "INVALID_ARGUMENT"}
    }

    error = gemini_error(400, orjson.dumps(body), httpx.Headers())

    assert (error.status, error.retryable, error.type) == (400, False, "invalid_request_error")
    assert "valid role" in error.message


def test_unknown_model_404_is_retryable_model_not_found() -> None:
    body = {"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}

    error = gemini_error(404, orjson.dumps(body), httpx.Headers())

    assert (error.status, error.code, error.retryable) == (404, "model_not_found", True)


def test_unsupported_location_is_the_providers_problem_not_the_clients() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "User location is not supported for the API use.",
            "status": "FAILED_PRECONDITION",
        }
    }

    error = gemini_error(400, orjson.dumps(body), httpx.Headers())

    assert (error.status, error.retryable) == (502, True)


def test_error_wrapped_in_a_list_is_read_too() -> None:
    body = [{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}]

    error = gemini_error(503, orjson.dumps(body), httpx.Headers())

    assert error.code == "UNAVAILABLE"


def test_non_json_error_body_is_the_message() -> None:
    error = gemini_error(502, b"<html>Bad Gateway</html>", httpx.Headers())

    assert error.status == 502
    assert "Bad Gateway" in error.message


# --- embeddings --------------------------------------------------------------------------


def test_embedding_inputs_become_batch_requests_naming_the_model() -> None:
    requests = to_gemini_embed_requests(
        {"model": "text-embedding-004", "input": ["alpha", "beta"], "dimensions": 4},
        "text-embedding-004",
    )

    assert requests == [
        {
            "model": "models/text-embedding-004",
            "outputDimensionality": 4,
            "content": {"parts": [{"text": "alpha"}]},
        },
        {
            "model": "models/text-embedding-004",
            "outputDimensionality": 4,
            "content": {"parts": [{"text": "beta"}]},
        },
    ]


def test_token_id_inputs_are_refused_as_retryable_400() -> None:
    with pytest.raises(UpstreamError) as caught:
        to_gemini_embed_requests({"input": [1, 2, 3]}, "text-embedding-004")

    assert (caught.value.status, caught.value.retryable) == (400, True)


def test_base64_encoding_packs_little_endian_float32s() -> None:
    (item,) = embedding_data([[0.5, -1.0]], "base64")

    assert struct.unpack("<2f", base64.b64decode(item["embedding"])) == (0.5, -1.0)
    assert embedding_data([[0.5]], None)[0]["embedding"] == [0.5]


# --- the adapter against the fake Gemini -------------------------------------------------


@pytest.fixture(scope="module")
def gemini_server() -> Iterator[tuple[FakeState, GeminiKnobs, RunningFake]]:
    fake = FakeState(models=[MODEL, "text-embedding-004", "gemini-2.5-pro"], api_key=KEY)
    knobs = GeminiKnobs()
    with run_fake(make_gemini_app(fake, knobs)) as server:
        yield fake, knobs, server


Gemini = tuple[FakeState, GeminiKnobs, GeminiProvider, str]


@pytest.fixture
async def gemini(
    gemini_server: tuple[FakeState, GeminiKnobs, RunningFake],
) -> AsyncIterator[Gemini]:
    fake, knobs, server = gemini_server
    fake.script.clear()
    fake.script.default = TextReply()
    fake.api_key = KEY
    fake.reset()
    knobs.reset()
    provider = GeminiProvider(config(server.url))
    yield fake, knobs, provider, server.url
    await provider.aclose()


def config(url: str, key: str = KEY) -> ProviderConfig:
    return ProviderConfig(name="gemini", type="gemini", api_key=SecretStr(key), base_url=url)


async def collect(provider: GeminiProvider, url: str, body: JSON) -> list[JSON]:
    return [chunk async for chunk in provider.stream(url, body)]


async def test_adapter_posts_generate_content_with_the_key_header(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.script.push(TextReply("Hello there", prompt_tokens=5, completion_tokens=2))

    response = await provider.chat(url, chat(user("Hi")))

    assert response.body["choices"][0]["message"]["content"] == "Hello there"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 2)
    sent = fake.last_request
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


async def test_a_base_url_that_names_the_version_works_too(gemini: Gemini) -> None:
    fake, _, _, url = gemini
    provider = GeminiProvider(config(f"{url}/v1beta"))
    try:
        await provider.chat(f"{url}/v1beta", chat(user("Hi")))
    finally:
        await provider.aclose()

    assert fake.last_request.path == f"/v1beta/models/{MODEL}:generateContent"


@pytest.mark.parametrize("crlf", [True, False])
async def test_adapter_streams_the_same_answer_with_either_separator(
    gemini: Gemini, crlf: bool
) -> None:
    fake, knobs, provider, url = gemini
    knobs.crlf = crlf
    knobs.thoughts_tokens = 30
    fake.script.push(TextReply("one two three", prompt_tokens=4, completion_tokens=3))

    chunks = await collect(provider, url, chat(user("Count")))

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas(chunks)) == "one two three"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3 + 30
    assert chunks[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 30}
    assert fake.last_request.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert fake.last_request.query == {"alt": "sse"}


async def test_adapter_streams_tool_calls_with_finish_tool_calls(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]))

    chunks = await collect(provider, url, chat(user("Weather?"), tools=[WEATHER_TOOL]))

    calls = [call for delta in deltas(chunks) for call in delta.get("tool_calls", [])]
    assert [c["function"]["arguments"] for c in calls] == ['{"city":"Paris"}']
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_whole_tool_conversation_is_accepted_by_gemini(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    body = chat(
        {"role": "system", "content": "Be brief."},
        user("Weather in Paris and Rome?"),
        assistant_calls(
            ("call_a", "get_weather", '{"city":"Paris"}'),
            ("call_b", "get_weather", '{"city":"Rome"}'),
        ),
        tool("call_a", '{"temp": 21}'),
        tool("call_b", "sunny"),
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        temperature=0.2,
    )

    response = await provider.chat(url, body)  # the fake refuses what Gemini would refuse

    assert response.body["choices"][0]["finish_reason"] == "stop"
    assert fake.last_request.json["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


async def test_adapter_raises_before_the_first_chunk_on_503(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.script.push(ErrorReply(503))
    received: list[JSON] = []

    with pytest.raises(UpstreamError) as caught:
        async for chunk in provider.stream(url, chat(user("Hi"))):
            received.append(chunk)

    assert received == []
    assert (caught.value.status, caught.value.retryable, caught.value.mid_stream) == (
        503,
        True,
        False,
    )


async def test_adapter_raises_mid_stream_on_an_error_event(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.script.push(MidStreamError(after_chunks=2, message="Internal error encountered."))
    received: list[JSON] = []

    with pytest.raises(UpstreamError) as caught:
        async for chunk in provider.stream(url, chat(user("Hi"))):
            received.append(chunk)

    assert caught.value.mid_stream is True
    assert "Internal error encountered." in caught.value.message
    assert len(deltas(received)) == 3  # the role chunk and two content chunks


async def test_adapter_raises_mid_stream_when_the_connection_drops(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.script.push(CutStream(after_chunks=2))

    with pytest.raises(UpstreamError) as caught:
        await collect(provider, url, chat(user("Hi")))

    assert caught.value.mid_stream is True


async def test_adapter_maps_a_rejected_key_to_502(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.api_key = "AIza-rotated"

    with pytest.raises(UpstreamError) as caught:
        await provider.chat(url, chat(user("Hi")))
    probe = await provider.probe(url)

    assert (caught.value.status, caught.value.type) == (502, "upstream_auth_error")
    assert probe.healthy is False
    assert probe.error is not None and "API key not valid" in probe.error


async def test_probe_lists_one_model_page_and_spends_no_tokens(gemini: Gemini) -> None:
    fake, _, provider, url = gemini

    probe = await provider.probe(url)

    assert probe.healthy is True
    assert fake.last_request.path == "/v1beta/models"
    assert fake.served == 0  # no inference request


async def test_list_models_follows_pages_and_drops_the_prefix(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    provider.page_size = 2

    models = await provider.list_models(url)

    assert models == [MODEL, "text-embedding-004", "gemini-2.5-pro"]
    assert len(fake.requests_to("/v1beta/models")) == 2


async def test_embeddings_go_in_batches_of_at_most_100(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    texts = [f"text {i}" for i in range(150)]

    result = await provider.embed(url, {"model": "text-embedding-004", "input": texts})

    assert [d["index"] for d in result.body["data"]] == list(range(150))
    assert result.body["data"][149]["embedding"] == embedding_for("text 149", 8)
    assert result.body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    sizes = [
        len(r.json["requests"])
        for r in fake.requests_to("/v1beta/models/text-embedding-004:batchEmbedContents")
    ]
    assert sizes == [100, 50]


async def test_an_empty_stream_fails_before_the_first_byte(gemini: Gemini) -> None:
    fake, _, provider, url = gemini
    fake.script.push(ErrorReply(200, body=""))  # a 200 whose body is empty

    with pytest.raises(UpstreamError) as caught:
        await collect(provider, url, chat(user("Hi")))

    assert (caught.value.status, caught.value.retryable, caught.value.mid_stream) == (
        502,
        True,
        False,
    )


async def test_reasoning_effort_asks_for_thoughts_and_they_stream_back_as_reasoning(
    gemini: Gemini,
) -> None:
    fake, knobs, provider, url = gemini
    knobs.thought_text = "Counting the letters."
    knobs.thoughts_tokens = 40
    knobs.cached_tokens = 6
    fake.script.push(TextReply("Three.", prompt_tokens=10, completion_tokens=2))

    chunks = await collect(provider, url, chat(user("How many r's?"), reasoning_effort="low"))

    assert [d.get("reasoning") for d in deltas(chunks) if "reasoning" in d] == [
        "Counting the letters."
    ]
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "Three."
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 40}
    assert usage["prompt_tokens_details"] == {"cached_tokens": 6}
    thinking = fake.last_request.json["generationConfig"]["thinkingConfig"]
    assert thinking == {"thinkingBudget": 1024, "includeThoughts": True}


async def test_without_reasoning_effort_no_thoughts_come_back(gemini: Gemini) -> None:
    _, knobs, provider, url = gemini
    knobs.thought_text = "Counting the letters."

    response = await provider.chat(url, chat(user("How many r's?")))

    assert "reasoning" not in response.body["choices"][0]["message"]
