"""A Bedrock provider through the real stack: the official openai SDK talks to Omen, Omen signs
with SigV4 (test credentials from the environment, never a real AWS config) and talks to the
fake Bedrock runtime, which checks every signature; what it spent lands in the SQLite store.
What a coding agent's request means must reach Converse too: cache breakpoints, thinking,
system messages from mid-conversation, structured output."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anthropic
import openai
import pytest

from tests.fakes import (
    ErrorReply,
    FakeState,
    MidStreamError,
    PromptCache,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_openai_app,
    run_fake,
)
from tests.fakes.bedrock_upstream import THINKING_TEXT, make_bedrock_app
from tests.integration.conftest import APP_KEY, UPSTREAM_KEY, Omen, wait_for_rows

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CONVERSE = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
SONNET = "us.anthropic.claude-sonnet-4-20250514-v1:0"  # thinks, unlike Claude 3 Haiku
SONNET_PATH = "/model/us.anthropic.claude-sonnet-4-20250514-v1%3A0"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
INPUT_PER_1K = 0.00025
OUTPUT_PER_1K = 0.00125
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
# Test credentials only; the empty config files and disabled metadata service make sure no
# real AWS profile, SSO cache or instance role is ever read.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
}
# Whatever of these the test runner has would change which credentials Omen signs with (or,
# for a profile, fail against the empty config), so Omen's environment must not have them.
FOREIGN_AWS_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture(autouse=True)
def only_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FOREIGN_AWS_ENV:
        monkeypatch.delenv(name, raising=False)


@dataclass
class Bedrock:
    fake: FakeState
    server: RunningFake
    cache: PromptCache


@pytest.fixture
def upstream() -> Iterator[Bedrock]:
    fake = FakeState(models=[MODEL, SONNET])
    cache = PromptCache()
    with run_fake(make_bedrock_app(fake, {ACCESS_KEY: SECRET_KEY}, cache)) as server:
        yield Bedrock(fake, server, cache)


def bedrock_config(url: str, extra: str = "") -> str:
    return f"""
[providers.bedrock]
region = "us-east-1"
base_url = "{url}"
models = ["{MODEL}", "{SONNET}"]
cost_per_1k_input_tokens = {INPUT_PER_1K}
cost_per_1k_output_tokens = {OUTPUT_PER_1K}
health_check_interval = "1h"
{extra}
[containers.app]
api_key = "env:TEST_APP_KEY"
"""


@pytest.fixture
def omen(omen_factory: Callable[..., Omen], upstream: Bedrock) -> Omen:
    return omen_factory(bedrock_config(upstream.server.url), extra_env=AWS_ENV)


def cost(prompt: int, completion: int) -> float:
    return prompt * INPUT_PER_1K / 1000 + completion * OUTPUT_PER_1K / 1000


def sent(upstream: Bedrock, path: str = CONVERSE) -> dict[str, object]:
    body = upstream.fake.requests_to(path)[-1].json
    assert isinstance(body, dict)
    return body


def test_text_answer_is_signed_openai_shaped_and_its_cost_is_recorded(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(TextReply("Hello there!", prompt_tokens=11, completion_tokens=3))

    raw = omen.client().chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, *HELLO],  # type: ignore[list-item]
        max_tokens=100,
        stop=["END"],
    )

    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 3)
    assert raw.headers["x-omen-provider"] == "bedrock"
    request = upstream.fake.requests_to(CONVERSE)[-1]
    authorization = request.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in authorization
    assert sent(upstream) == {
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
        "inferenceConfig": {"maxTokens": 100, "stopSequences": ["END"]},
    }
    (row,) = wait_for_rows(omen.database, 1)
    assert row.provider == "bedrock"  # type: ignore[attr-defined]
    assert row.model == MODEL  # type: ignore[attr-defined]
    assert (row.prompt_tokens, row.completion_tokens) == (11, 3)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(11, 3))  # type: ignore[attr-defined]
    assert float(raw.headers["x-omen-cost-usd"]) == pytest.approx(cost(11, 3), abs=1e-6)


def test_streamed_answer_decodes_the_event_stream_and_records_usage(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(TextReply("one two three four", prompt_tokens=9, completion_tokens=4))

    chunks = list(
        omen.client().chat.completions.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 4)
    request = upstream.fake.requests_to(CONVERSE + "-stream")[-1]
    assert request.headers["accept"] == "application/vnd.amazon.eventstream"
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (9, 4)  # type: ignore[attr-defined]
    assert row.stream is True  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(9, 4))  # type: ignore[attr-defined]


def test_tool_call_comes_back_whole_and_the_tools_go_up_as_tool_specs(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(
        ToolCallReply([ToolCall("get_weather", {"city": "Paris"}, id="tooluse_1")])
    )

    completion = omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice="required",
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id == "tooluse_1"
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    tool_config = sent(upstream)["toolConfig"]
    assert tool_config == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},  # type: ignore[index]
                }
            }
        ],
        "toolChoice": {"any": {}},
    }


def test_streamed_tool_call_reassembles_and_usage_is_recorded(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(
        ToolCallReply(
            [ToolCall("get_weather", {"city": "New York City"})],
            prompt_tokens=40,
            completion_tokens=12,
        )
    )

    name, arguments, finish = "", "", None
    for chunk in omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in NYC?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
    ):
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
        finish = chunk.choices[0].finish_reason or finish

    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "New York City"}
    assert finish == "tool_calls"
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (40, 12)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(cost(40, 12))  # type: ignore[attr-defined]


def test_tool_results_go_back_as_tool_result_blocks_in_a_user_turn(
    omen: Omen, upstream: Bedrock
) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "tooluse_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"temp": 21}'},
        ],  # type: ignore[list-item]
    )

    messages = sent(upstream)["messages"]
    assert messages == [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {
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
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "tooluse_1",
                        "content": [{"json": {"temp": 21}}],
                        "status": "success",
                    }
                }
            ],
        },
    ]


def test_an_image_goes_up_as_bytes_with_its_format(omen: Omen, upstream: Bedrock) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ],
            }
        ],  # type: ignore[list-item]
    )

    (message,) = sent(upstream)["messages"]  # type: ignore[misc]
    assert message["content"] == [
        {"text": "What is in this picture?"},
        {"image": {"format": "png", "source": {"bytes": PNG_B64}}},
    ]


def test_an_exception_frame_mid_stream_ends_the_stream_with_an_error(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(MidStreamError(after_chunks=2, message="The model stream failed."))

    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in omen.client().chat.completions.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
            stream=True,
        ):
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""

    assert received == "Hello! How"
    assert "The model stream failed." in caught.value.message
    (row,) = wait_for_rows(omen.database, 1)
    assert "The model stream failed." in row.error  # type: ignore[attr-defined]


def test_throttling_exception_is_a_429_for_the_client(omen: Omen, upstream: Bedrock) -> None:
    upstream.fake.script.push(ErrorReply(429))

    with pytest.raises(openai.RateLimitError) as caught:
        omen.client().chat.completions.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]

    assert "Too many requests" in caught.value.message
    (row,) = wait_for_rows(omen.database, 1)
    assert row.status == 429  # type: ignore[attr-defined]


def test_a_throttled_bedrock_fails_over_to_another_provider(
    omen_factory: Callable[..., Omen], upstream: Bedrock
) -> None:
    backup = FakeState(models=[MODEL], api_key=UPSTREAM_KEY)
    upstream.fake.script.push(ErrorReply(429))
    extra = f"""
[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{{backup}}/v1"
models = ["{MODEL}"]
cost_per_1k_input_tokens = 1
cost_per_1k_output_tokens = 1
health_check_interval = "1h"
"""
    with run_fake(make_openai_app(backup)) as backup_server:
        config = bedrock_config(upstream.server.url, extra.replace("{backup}", backup_server.url))
        instance = omen_factory(config, extra_env=AWS_ENV)
        raw = instance.client().chat.completions.with_raw_response.create(
            model=MODEL,
            messages=HELLO,  # type: ignore[arg-type]
        )

        assert raw.headers["x-omen-provider"] == "openai"
        assert raw.parse().choices[0].message.content == "Hello! How can I help you today?"
        assert (upstream.fake.served, backup.served) == (1, 1)
        (row,) = wait_for_rows(instance.database, 1)
        attempts = row.decision["attempts"]  # type: ignore[attr-defined]
        assert [(a["provider"], a["status"]) for a in attempts] == [
            ("bedrock", 429),
            ("openai", 200),
        ]


# --- what a coding agent's request means, carried into Converse --------------------------

EPHEMERAL = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}


def test_cache_breakpoints_become_cache_points_and_cache_reads_come_back_apart(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.cache.read_tokens, upstream.cache.creation_tokens = 1500, 300
    upstream.fake.script.push(TextReply("Done.", prompt_tokens=2000, completion_tokens=2))

    completion = omen.client().chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "You are a coding agent.", "cache_control": EPHEMERAL},
                    {"type": "text", "text": "Today is Tuesday."},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "text", "text": "Fix it.", "cache_control": EPHEMERAL}],
            },
        ],  # type: ignore[list-item]
        tools=[{**WEATHER_TOOL, "cache_control": EPHEMERAL}],  # type: ignore[list-item]
    )

    body = sent(upstream)
    assert body["system"] == [
        {"text": "You are a coding agent."},
        POINT,
        {"text": "Today is Tuesday."},
    ]
    assert body["messages"] == [{"role": "user", "content": [{"text": "Fix it."}, POINT]}]
    assert body["toolConfig"]["tools"][-1] == POINT  # type: ignore[index]
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens == 2000
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1500
    assert (usage.model_extra or {}).get("cache_creation_input_tokens") == 300


def test_reasoning_effort_turns_on_claudes_thinking_and_the_reasoning_streams_back(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(TextReply("Because.", prompt_tokens=9, completion_tokens=2))

    chunks = list(
        omen.client().chat.completions.create(
            model=SONNET,
            messages=[{"role": "user", "content": "Why is the sky blue?"}],
            reasoning_effort="medium",
            stream=True,
        )
    )

    body = sent(upstream, SONNET_PATH + "/converse-stream")
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 8192}
    }
    assert body["inferenceConfig"]["maxTokens"] > 8192  # type: ignore[index]
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas)
    assert reasoning == THINKING_TEXT
    assert "".join(d.content or "" for d in deltas) == "Because."


def test_a_mid_conversation_system_message_reaches_claude_in_the_user_turn(
    omen: Omen, upstream: Bedrock
) -> None:
    omen.client().chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": "The user is on a phone."},
            {"role": "user", "content": "A joke?"},
        ],
    )

    body = sent(upstream)
    assert body["system"] == [{"text": "Be brief."}]
    last = body["messages"][-1]  # type: ignore[index]
    assert last["role"] == "user"
    assert [block["text"] for block in last["content"]] == [
        "[System message]\nThe user is on a phone.",
        "A joke?",
    ]


def test_json_schema_output_is_answered_through_a_forced_tool_as_plain_content(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(ToolCallReply([ToolCall("place", {"city": "Oslo"})]))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

    completion = omen.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Capital of Norway, as JSON"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        },
    )

    choice = completion.choices[0]
    assert json.loads(choice.message.content or "") == {"city": "Oslo"}
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    tool_config = sent(upstream)["toolConfig"]
    assert tool_config["toolChoice"] == {"tool": {"name": "place"}}  # type: ignore[index]
    assert tool_config["tools"][0]["toolSpec"]["inputSchema"] == {"json": schema}  # type: ignore[index]


def test_claude_code_passes_through_to_invoke_model_with_its_cache_breakpoints(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.cache.read_tokens, upstream.cache.creation_tokens = 30, 5
    upstream.fake.script.push(TextReply("Hi!", prompt_tokens=40, completion_tokens=2))
    client = anthropic.Anthropic(base_url=omen.url, api_key=APP_KEY, max_retries=0)

    with client.messages.stream(
        model=MODEL,
        max_tokens=1024,
        system=[{"type": "text", "text": "You are Claude Code.", "cache_control": EPHEMERAL}],
        messages=[{"role": "user", "content": "Say hi"}],
        extra_headers={"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Hi!"
    assert (final.usage.cache_read_input_tokens, final.usage.cache_creation_input_tokens) == (30, 5)
    request = upstream.fake.requests[-1]
    assert request.path.endswith("%3A0/invoke-with-response-stream")
    assert request.json["system"][0]["cache_control"] == EPHEMERAL
    assert request.json["anthropic_beta"] == ["interleaved-thinking-2025-05-14"]
    assert "model" not in request.json and "stream" not in request.json
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (40, 2)  # type: ignore[attr-defined]


def test_a_whole_claude_message_passes_through_invoke_model_as_bedrock_sent_it(
    omen: Omen, upstream: Bedrock
) -> None:
    upstream.fake.script.push(ToolCallReply([ToolCall("Bash", {"command": "ls"}, id="toolu_9")]))
    client = anthropic.Anthropic(base_url=omen.url, api_key=APP_KEY, max_retries=0)

    message = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[{"role": "user", "content": "List files"}],
        tools=[{"name": "Bash", "input_schema": {"type": "object"}}],
    )

    assert message.id.startswith("msg_bdrk_")  # Bedrock's own message, not a translation
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.input == {"command": "ls"}  # type: ignore[union-attr]
    assert upstream.fake.requests[-1].path.endswith("%3A0/invoke")
