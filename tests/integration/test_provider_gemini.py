"""Gemini through Omen's real HTTP stack with the official openai SDK: a fake Gemini on a real
port, `omen serve` as a process, usage and cost read back from the SQLite store."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.fakes import (
    ErrorReply,
    FakeState,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    run_fake,
)
from tests.fakes.content import embedding_for
from tests.fakes.gemini_upstream import GeminiKnobs, make_gemini_app
from tests.integration.conftest import UPSTREAM_KEY, Omen, wait_for_rows

MODEL = "gemini-2.0-flash"
EMBEDDING_MODEL = "text-embedding-004"
INPUT_PER_1K = 0.0001
OUTPUT_PER_1K = 0.0004
CACHE_READ_PER_1K = 0.00003
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL: ChatCompletionToolParam = {
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


@dataclass
class Upstream:
    fake: FakeState
    knobs: GeminiKnobs
    server: RunningFake


@pytest.fixture
def gemini() -> Iterator[Upstream]:
    fake = FakeState(models=[MODEL, EMBEDDING_MODEL], api_key=UPSTREAM_KEY)
    knobs = GeminiKnobs()
    with run_fake(make_gemini_app(fake, knobs)) as server:
        yield Upstream(fake, knobs, server)


def gemini_config(upstream: Upstream) -> str:
    return f"""
[providers.gemini]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{upstream.server.url}"
models = ["{MODEL}"]
embedding_models = ["{EMBEDDING_MODEL}"]
cost_per_1k_input_tokens = {INPUT_PER_1K}
cost_per_1k_output_tokens = {OUTPUT_PER_1K}
cost_per_1k_cache_read_tokens = {CACHE_READ_PER_1K}
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"
"""


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], gemini: Upstream) -> Omen:
    return omen_factory(gemini_config(gemini))


def cost(prompt: int, completion: int, cached: int = 0) -> float:
    """Cached prompt tokens are part of the prompt, priced at the cache-read rate."""
    fresh = prompt - cached
    return (fresh * INPUT_PER_1K + cached * CACHE_READ_PER_1K + completion * OUTPUT_PER_1K) / 1000


def generate_requests(upstream: Upstream) -> list[object]:
    return [
        r.json
        for r in upstream.fake.requests
        if r.path.startswith("/v1beta/models/") and "Content" in r.path
    ]


def test_text_answer_with_thinking_tokens_is_priced_as_output(omen: Omen, gemini: Upstream) -> None:
    gemini.knobs.thoughts_tokens = 40
    gemini.fake.script.push(TextReply("Hello there!", prompt_tokens=11, completion_tokens=3))

    raw = omen.client().chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)

    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 43)
    details = completion.usage.completion_tokens_details
    assert details is not None and details.reasoning_tokens == 40
    assert raw.headers["x-omen-provider"] == "gemini"
    (row,) = wait_for_rows(omen.database, 1)
    assert row.provider == "gemini"  # type: ignore[attr-defined]
    assert (row.prompt_tokens, row.completion_tokens) == (11, 43)  # type: ignore[attr-defined]
    assert row.reasoning_tokens == 40  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(11, 43))  # type: ignore[attr-defined]
    sent = gemini.fake.requests[-1]
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == UPSTREAM_KEY


def test_system_prompt_and_sampling_reach_gemini_in_its_own_terms(
    omen: Omen, gemini: Upstream
) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "You are terse."}, *HELLO],
        temperature=0.3,
        max_tokens=64,
        stop=["END"],
    )

    (sent,) = generate_requests(gemini)
    assert sent == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 64, "stopSequences": ["END"]},
    }


@pytest.mark.parametrize("crlf", [True, False], ids=["crlf", "lf"])
def test_streaming_works_with_either_event_separator_and_records_usage(
    omen: Omen, gemini: Upstream, crlf: bool
) -> None:
    gemini.knobs.crlf = crlf
    gemini.knobs.thoughts_tokens = 20
    gemini.knobs.cached_tokens = 4
    gemini.fake.script.push(TextReply("one two three four", prompt_tokens=9, completion_tokens=4))

    stream = omen.client().chat.completions.create(
        model=MODEL, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 24)
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (9, 24)  # type: ignore[attr-defined]
    assert (row.cached_tokens, row.reasoning_tokens) == (4, 20)  # type: ignore[attr-defined]
    assert row.stream is True  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(9, 24, cached=4))  # type: ignore[attr-defined]
    assert gemini.fake.requests[-1].query == {"alt": "sse"}


def test_tool_call_answer_finishes_with_tool_calls(omen: Omen, gemini: Upstream) -> None:
    gemini.fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]))

    completion = omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert call.id
    (sent,) = generate_requests(gemini)
    assert sent["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"  # type: ignore[index]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}  # type: ignore[index]


def test_streamed_tool_calls_reassemble_and_finish_with_tool_calls(
    omen: Omen, gemini: Upstream
) -> None:
    gemini.fake.script.push(
        ToolCallReply(
            [ToolCall("get_weather", {"city": "New York City"}), ToolCall("get_time", {})]
        )
    )

    stream = omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather and time in NYC?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            if delta.function is not None:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish

    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "New York City"}
    assert json.loads(calls[1]["arguments"]) == {}
    assert calls[0]["id"] and calls[0]["id"] != calls[1]["id"]


def test_tool_results_reach_gemini_as_function_responses(omen: Omen, gemini: Upstream) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],
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
        ],
    )

    (sent,) = generate_requests(gemini)
    contents = sent["contents"]  # type: ignore[index]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}],
    }


def test_image_part_reaches_gemini_as_inline_data(omen: Omen, gemini: Upstream) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="},
                    },
                ],
            }
        ],
    )

    (sent,) = generate_requests(gemini)
    assert sent["contents"][0]["parts"] == [  # type: ignore[index]
        {"text": "What is in this picture?"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
    ]


def test_http_image_url_is_refused_with_a_clear_message(omen: Omen, gemini: Upstream) -> None:
    url = "https://example.com/cat.png"

    with pytest.raises(openai.APIStatusError) as caught:
        omen.client().chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        )

    assert "data: URL" in caught.value.message
    assert generate_requests(gemini) == []  # refused before anything was sent


@pytest.mark.parametrize("encoding_format", [None, "float"])
def test_embeddings_come_back_in_openai_shape(
    omen: Omen, gemini: Upstream, encoding_format: str | None
) -> None:
    kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}

    result = omen.client().embeddings.create(
        model=EMBEDDING_MODEL,
        input=["alpha", "beta"],
        **kwargs,  # type: ignore[arg-type]
    )

    assert [d.index for d in result.data] == [0, 1]
    expected = embedding_for("beta", 8)
    # The SDK asks for base64 unless told otherwise; float32 round-trips to ~1e-7.
    assert result.data[1].embedding == pytest.approx(expected, abs=1e-6)
    assert result.model == EMBEDDING_MODEL
    (sent,) = [r.json for r in gemini.fake.requests if r.path.endswith(":batchEmbedContents")]
    assert [r["content"]["parts"][0]["text"] for r in sent["requests"]] == ["alpha", "beta"]
    rows = wait_for_rows(omen.database, 1)
    assert rows[-1].kind == "embeddings"  # type: ignore[attr-defined]
    assert rows[-1].provider == "gemini"  # type: ignore[attr-defined]
    assert rows[-1].prompt_tokens == 0  # type: ignore[attr-defined]  # Gemini reports none


def test_embeddings_decode_as_float32_when_asked_for_base64(omen: Omen) -> None:
    raw = omen.http().post(
        "/v1/embeddings",
        headers={"authorization": f"Bearer {omen.env['TEST_APP_KEY']}"},
        json={"model": EMBEDDING_MODEL, "input": "alpha", "encoding_format": "base64"},
    )

    (item,) = raw.json()["data"]
    decoded = struct.unpack("<8f", base64.b64decode(item["embedding"]))
    assert decoded == pytest.approx(embedding_for("alpha", 8), abs=1e-6)


# --- errors ------------------------------------------------------------------------------


def test_a_key_gemini_rejects_is_a_502_that_names_the_key(omen: Omen, gemini: Upstream) -> None:
    gemini.fake.api_key = "AIza-rotated-upstream"  # Omen's key stops working after startup

    with pytest.raises(openai.InternalServerError) as caught:
        omen.client().chat.completions.create(model=MODEL, messages=HELLO)

    assert caught.value.status_code == 502
    assert "API key not valid" in caught.value.message
    assert "Omen's API key" in caught.value.message
    body = caught.value.body
    assert isinstance(body, dict) and body.get("type") == "upstream_auth_error"


def test_429_keeps_its_status_and_says_when_to_retry(omen: Omen, gemini: Upstream) -> None:
    gemini.fake.script.push(ErrorReply(429))

    with pytest.raises(openai.RateLimitError) as caught:
        omen.client().chat.completions.create(model=MODEL, messages=HELLO)

    assert caught.value.response.headers["retry-after"] == "35"  # RetryInfo said 34.4s
    assert "quota" in caught.value.message


def test_streamed_503_before_the_first_byte_is_a_503(omen: Omen, gemini: Upstream) -> None:
    gemini.fake.script.push(ErrorReply(503))

    with pytest.raises(openai.APIStatusError) as caught:
        list(omen.client().chat.completions.create(model=MODEL, messages=HELLO, stream=True))

    assert caught.value.status_code == 503
    assert "overloaded" in caught.value.message
