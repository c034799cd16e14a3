"""Anthropic-format clients: the official anthropic SDK against Omen's POST /v1/messages."""

from __future__ import annotations

import anthropic
import pytest

from tests.fakes import TextReply, ToolCall, ToolCallReply
from tests.integration.conftest import APP_KEY, Omen, Upstreams, wait_for_rows

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
MODELS = [("llama3.1:8b", "ollama"), ("gpt-4o", "openai")]


def client(omen: Omen) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=omen.url, api_key=APP_KEY, max_retries=0)


def fake_for(upstreams: Upstreams, provider: str):  # type: ignore[no-untyped-def]
    return upstreams.ollama if provider == "ollama" else upstreams.openai


@pytest.mark.parametrize(("model", "provider"), MODELS)
def test_text_answer_in_anthropic_shape(
    omen: Omen, upstreams: Upstreams, model: str, provider: str
) -> None:
    fake_for(upstreams, provider).script.push(
        TextReply("Bonjour!", prompt_tokens=12, completion_tokens=3)
    )
    raw = client(omen).messages.with_raw_response.create(
        model=model,
        max_tokens=100,
        system="Answer in French.",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Bonjour!"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert raw.headers["x-omen-provider"] == provider
    sent = fake_for(upstreams, provider).requests[-1].json
    assert sent["messages"][0]["role"] == "system"
    (row,) = wait_for_rows(omen.database, 1)
    assert row.kind == "messages" and row.provider == provider  # type: ignore[attr-defined]


@pytest.mark.parametrize(("model", "provider"), MODELS)
def test_streaming_events_reassemble(
    omen: Omen, upstreams: Upstreams, model: str, provider: str
) -> None:
    fake_for(upstreams, provider).script.push(
        TextReply("one two three", prompt_tokens=9, completion_tokens=3)
    )
    with client(omen).messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Count"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "one two three"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (9, 3)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("model", "provider"), MODELS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(
    omen: Omen, upstreams: Upstreams, model: str, provider: str, stream: bool
) -> None:
    fake = fake_for(upstreams, provider)
    fake.script.push(ToolCallReply([ToolCall("get_weather", {"city": "Paris"})]))
    sdk = client(omen)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        with sdk.messages.stream(model=model, max_tokens=100, tools=[WEATHER], messages=ask) as s:  # type: ignore[list-item,arg-type]
            message = s.get_final_message()
    else:
        message = sdk.messages.create(model=model, max_tokens=100, tools=[WEATHER], messages=ask)  # type: ignore[list-item,arg-type]
    assert message.stop_reason == "tool_use"
    (use,) = [b for b in message.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}  # type: ignore[union-attr]
    # The tool result goes back the Anthropic way and reaches the upstream translated.
    fake.script.push(TextReply("It is 21 degrees."))
    follow = sdk.messages.create(
        model=model,
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            *ask,
            {"role": "assistant", "content": message.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21C"}],
            },  # type: ignore[union-attr]
        ],
    )
    assert follow.content[0].text == "It is 21 degrees."  # type: ignore[union-attr]
    sent = fake.requests[-1].json["messages"]
    assert any(m.get("role") == "tool" for m in sent)


def test_errors_come_back_in_anthropic_shape(omen: Omen) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client(omen).messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client(omen).messages.create(
            model="gpt-4o", max_tokens=0, messages=[{"role": "user", "content": "hi"}]
        )
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=omen.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
