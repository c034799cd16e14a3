"""An Anthropic provider through the real stack: the official openai SDK talks to Omen, Omen talks
to the fake Anthropic Messages API, and what it spent lands in the SQLite store."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai
import pytest

from tests.fakes import (
    ErrorReply,
    FakeState,
    MidStreamError,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_openai_app,
    run_fake,
)
from tests.fakes.anthropic_upstream import PromptCache, make_anthropic_app
from tests.integration.conftest import UPSTREAM_KEY, Omen, wait_for_rows

MODEL = "claude-sonnet-4"
INPUT_PER_1K = 0.003
OUTPUT_PER_1K = 0.015
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
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
    "AAAABJRU5ErkJggg=="
)


@dataclass
class Anthropic:
    fake: FakeState
    cache: PromptCache
    server: RunningFake


@pytest.fixture
def upstream() -> Iterator[Anthropic]:
    fake = FakeState(models=[MODEL], api_key=UPSTREAM_KEY)
    cache = PromptCache()
    with run_fake(make_anthropic_app(fake, cache)) as server:
        yield Anthropic(fake, cache, server)


def anthropic_config(url: str, extra: str = "") -> str:
    return f"""
[providers.anthropic]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{url}"
models = ["{MODEL}"]
cost_per_1k_input_tokens = {INPUT_PER_1K}
cost_per_1k_output_tokens = {OUTPUT_PER_1K}
health_check_interval = "1h"
{extra}
[containers.app]
api_key = "env:TEST_APP_KEY"
"""


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], upstream: Anthropic) -> Omen:
    return omen_factory(anthropic_config(upstream.server.url))


def cost(prompt: int, completion: int) -> float:
    return prompt * INPUT_PER_1K / 1000 + completion * OUTPUT_PER_1K / 1000


def sent(upstream: Anthropic) -> dict[str, object]:
    body = upstream.fake.requests_to("/v1/messages")[-1].json
    assert isinstance(body, dict)
    return body


def test_text_answer_is_openai_shaped_and_its_cost_is_recorded(
    omen: Omen, upstream: Anthropic
) -> None:
    upstream.fake.script.push(TextReply("Hello there!", prompt_tokens=11, completion_tokens=3))

    raw = omen.client().chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],  # type: ignore[list-item]
        stop=["END"],
    )

    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 3)
    assert raw.headers["x-omen-provider"] == "anthropic"
    request = upstream.fake.requests_to("/v1/messages")[-1]
    assert request.headers["x-api-key"] == UPSTREAM_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = sent(upstream)
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["END"]
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    (row,) = wait_for_rows(omen.database, 1)
    assert row.provider == "anthropic"  # type: ignore[attr-defined]
    assert (row.prompt_tokens, row.completion_tokens) == (11, 3)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(11, 3))  # type: ignore[attr-defined]


@pytest.mark.parametrize("include_usage", [False, True])
def test_streamed_text_arrives_in_order_and_its_usage_is_recorded(
    omen: Omen, upstream: Anthropic, include_usage: bool
) -> None:
    upstream.fake.script.push(TextReply("one two three four", prompt_tokens=9, completion_tokens=4))
    kwargs: dict[str, object] = {}
    if include_usage:
        kwargs["stream_options"] = {"include_usage": True}

    stream = omen.client().chat.completions.create(
        model=MODEL,
        messages=HELLO,  # type: ignore[arg-type]
        stream=True,
        **kwargs,  # type: ignore[arg-type]
    )
    chunks = list(stream)

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
        # The fake's message_delta carries the cumulative count (4), after message_start's 1.
        assert usage_chunks[0].usage.completion_tokens == 4  # type: ignore[union-attr]
    else:
        assert usage_chunks == []
    assert sent(upstream)["stream"] is True
    (row,) = wait_for_rows(omen.database, 1)
    assert row.stream is True  # type: ignore[attr-defined]
    assert (row.prompt_tokens, row.completion_tokens) == (9, 4)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(9, 4))  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [False, True])
def test_cache_reads_are_recorded_as_cached_tokens_inside_the_prompt(
    omen: Omen, upstream: Anthropic, stream: bool
) -> None:
    upstream.cache.read_tokens = 60
    upstream.cache.creation_tokens = 15
    upstream.fake.script.push(TextReply("cached", prompt_tokens=100, completion_tokens=1))

    if stream:
        list(omen.client().chat.completions.create(model=MODEL, messages=HELLO, stream=True))  # type: ignore[arg-type]
    else:
        omen.client().chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]

    (row,) = wait_for_rows(omen.database, 1)
    assert row.prompt_tokens == 100  # 25 fresh + 15 written + 60 read  # type: ignore[attr-defined]
    assert row.cached_tokens == 60  # type: ignore[attr-defined]
    assert row.completion_tokens == 1  # type: ignore[attr-defined]
    # Priced by kind: cache reads at 10% of input, cache writes at 125% (Anthropic defaults).
    per_in = INPUT_PER_1K / 1000
    expected = 25 * per_in + 60 * per_in * 0.1 + 15 * per_in * 1.25 + 1 * OUTPUT_PER_1K / 1000
    assert row.cost_usd == pytest.approx(expected)  # type: ignore[attr-defined]


def test_tool_call_without_streaming(omen: Omen, upstream: Anthropic) -> None:
    upstream.fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]))

    completion = omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
        parallel_tool_calls=False,
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert call.id.startswith("toolu_")
    body = sent(upstream)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_call_streamed_reassembles(omen: Omen, upstream: Anthropic) -> None:
    upstream.fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "New York City"})]))

    stream = omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in NYC?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    )
    ids, name, arguments, finish = [], "", "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            if call.id:
                ids.append(call.id)
            if call.function:
                name += call.function.name or ""
                arguments += call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish

    assert len(ids) == 1 and ids[0].startswith("toolu_")
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "New York City"}
    assert finish == "tool_calls"
    (row,) = wait_for_rows(omen.database, 1)
    assert row.completion_tokens > 0  # type: ignore[attr-defined]


def test_tool_results_go_back_as_one_user_turn(omen: Omen, upstream: Anthropic) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "toolu_2", "content": '{"temp": 25}'},
        ],  # type: ignore[list-item]
    )

    messages = sent(upstream)["messages"]
    assert isinstance(messages, list)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_2",
        "name": "get_weather",
        "input": {"city": "Rome"},
    }
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp": 21}'},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": '{"temp": 25}'},
    ]


def test_image_parts_reach_anthropic_as_base64_and_url_sources(
    omen: Omen, upstream: Anthropic
) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}},
                ],
            }
        ],
    )

    (message,) = sent(upstream)["messages"]  # type: ignore[misc]
    assert message["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.webp"}},
    ]


def test_rate_limit_from_the_only_candidate_is_a_429_with_retry_after(
    omen: Omen, upstream: Anthropic
) -> None:
    upstream.fake.script.push(ErrorReply(429))

    with pytest.raises(openai.RateLimitError) as caught:
        omen.client().chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert caught.value.status_code == 429
    assert "retry-after" in caught.value.response.headers
    assert "rate limit" in caught.value.message


def test_a_bad_request_is_a_400_and_not_retried(omen: Omen, upstream: Anthropic) -> None:
    upstream.fake.script.push(ErrorReply(400))

    with pytest.raises(openai.BadRequestError):
        omen.client().chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert upstream.fake.served == 1


def backup_config(anthropic_url: str, backup_url: str) -> str:
    # The backup costs more, so Omen tries Anthropic first.
    backup = f"""
[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{backup_url}/v1"
models = ["{MODEL}"]
cost_per_1k_input_tokens = 0.03
cost_per_1k_output_tokens = 0.15
health_check_interval = "1h"
"""
    return anthropic_config(anthropic_url, backup)


@pytest.mark.parametrize("stream", [False, True])
def test_overloaded_529_fails_over_to_the_next_provider(
    omen_factory: Callable[..., Omen], upstream: Anthropic, stream: bool
) -> None:
    backup = FakeState(models=[MODEL], api_key=UPSTREAM_KEY)
    upstream.fake.script.push(ErrorReply(529))
    with run_fake(make_openai_app(backup)) as backup_server:
        omen = omen_factory(backup_config(upstream.server.url, backup_server.url))
        client = omen.client()
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model=MODEL,
                messages=HELLO,  # type: ignore[arg-type]
                stream=True,
            ) as response:
                provider = response.headers["x-omen-provider"]
                chunks = list(response.parse())
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
            provider = raw.headers["x-omen-provider"]
            text = raw.parse().choices[0].message.content or ""

    assert provider == "openai"
    assert text == "Hello! How can I help you today?"
    assert (upstream.fake.served, backup.served) == (1, 1)
    (row,) = wait_for_rows(omen.database, 1)
    attempts = row.decision["attempts"]  # type: ignore[attr-defined]
    assert [(a["provider"], a["status"]) for a in attempts] == [("anthropic", 529), ("openai", 200)]


def test_an_error_event_after_the_first_byte_ends_the_stream_with_an_error(
    omen: Omen, upstream: Anthropic
) -> None:
    upstream.fake.script.push(MidStreamError(after_chunks=2))

    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in omen.client().chat.completions.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
        ):
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""

    assert received == "Hello! How"
    assert "Overloaded" in caught.value.message
    (row,) = wait_for_rows(omen.database, 1)
    assert "Overloaded" in row.error  # type: ignore[attr-defined]
