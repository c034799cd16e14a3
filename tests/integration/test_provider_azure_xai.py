"""Azure OpenAI and xAI through the real stack with the openai SDK: their quirks stay upstream."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import openai
import pytest

from omen.providers.openai_format import normalise_xai_usage
from tests.fakes import (
    ErrorReply,
    FakeState,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_openai_app,
    run_fake,
)
from tests.integration.conftest import UPSTREAM_KEY, Omen, wait_for_rows

TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(params=["azure", "xai"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def upstream(flavour: str) -> Iterator[tuple[FakeState, RunningFake]]:
    model = "gpt-4o" if flavour == "azure" else "grok-3"
    fake = FakeState(models=[] if flavour == "azure" else [model], api_key=UPSTREAM_KEY)
    with run_fake(make_openai_app(fake, flavour)) as server:  # type: ignore[arg-type]
        yield fake, server


@pytest.fixture
def omen(
    omen_factory: Callable[..., Omen], flavour: str, upstream: tuple[FakeState, RunningFake]
) -> Omen:
    _, server = upstream
    if flavour == "azure":
        provider = f"""
[providers.azure]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{server.url}"
api_version = "2024-10-21"
deployments = {{ "gpt-4o" = "gpt4o-prod" }}
models = ["gpt-4o"]
"""
    else:
        provider = f"""
[providers.xai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{server.url}/v1"
models = ["grok-3"]
"""
    return omen_factory(
        provider
        + """cost_per_1k_input_tokens = 0.003
cost_per_1k_output_tokens = 0.015
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"
"""
    )


def model_of(flavour: str) -> str:
    return "gpt-4o" if flavour == "azure" else "grok-3"


def test_text_and_usage(omen: Omen, flavour: str, upstream: tuple[FakeState, RunningFake]) -> None:
    fake, _ = upstream
    fake.script.push(TextReply("hello there", prompt_tokens=20, completion_tokens=5))
    completion = omen.client().chat.completions.create(model=model_of(flavour), messages=HELLO)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "hello there"
    sent = fake.requests[-1]
    if flavour == "azure":
        assert sent.path == "/openai/deployments/gpt4o-prod/chat/completions"
        assert sent.query["api-version"] == "2024-10-21"
        assert sent.headers["api-key"] == UPSTREAM_KEY
    else:
        assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (20, 5)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(20 * 3e-6 + 5 * 1.5e-5)  # type: ignore[attr-defined]


def test_stream_starts_with_the_role_delta(
    omen: Omen, flavour: str, upstream: tuple[FakeState, RunningFake]
) -> None:
    fake, _ = upstream
    fake.script.push(TextReply("a b c", prompt_tokens=7, completion_tokens=3))
    chunks = list(
        omen.client().chat.completions.create(
            model=model_of(flavour),
            messages=HELLO,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )
    # Azure's empty prompt-filter chunk never reaches the client: the role delta comes first.
    assert chunks[0].choices and chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b c"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    (row,) = wait_for_rows(omen.database, 1)
    assert (row.prompt_tokens, row.completion_tokens) == (7, 3)  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls(
    omen: Omen, flavour: str, upstream: tuple[FakeState, RunningFake], stream: bool
) -> None:
    fake, _ = upstream
    fake.script.push(ToolCallReply([ToolCall("weather", {"location": "San Francisco"})]))
    client = omen.client()
    if stream:
        arguments, finish = "", None
        for chunk in client.chat.completions.create(
            model=model_of(flavour),
            messages=HELLO,
            tools=[TOOL],
            stream=True,  # type: ignore[arg-type,list-item]
        ):
            if chunk.choices:
                for call in chunk.choices[0].delta.tool_calls or []:
                    arguments += (call.function.arguments or "") if call.function else ""
                finish = chunk.choices[0].finish_reason or finish
    else:
        completion = client.chat.completions.create(
            model=model_of(flavour), messages=HELLO, tools=[TOOL]
        )  # type: ignore[arg-type,list-item]
        call = (completion.choices[0].message.tool_calls or [])[0]
        arguments, finish = call.function.arguments, completion.choices[0].finish_reason  # type: ignore[union-attr]
    assert json.loads(arguments) == {"location": "San Francisco"}
    assert finish == "tool_calls"


def test_errors_in_each_providers_shape_are_mapped(
    omen: Omen, flavour: str, upstream: tuple[FakeState, RunningFake]
) -> None:
    fake, _ = upstream
    fake.script.push(ErrorReply(429))
    with pytest.raises(openai.RateLimitError) as limited:
        omen.client().chat.completions.create(model=model_of(flavour), messages=HELLO)  # type: ignore[arg-type]
    assert limited.value.response.headers.get("retry-after")
    fake.script.push(ErrorReply(400))
    with pytest.raises(openai.BadRequestError):
        omen.client().chat.completions.create(model=model_of(flavour), messages=HELLO)  # type: ignore[arg-type]


def test_xai_reasoning_tokens_are_billed_as_output() -> None:
    # The recorded xAI usage: 291 prompt + 26 completion + 196 reasoning = 513 total.
    usage = {
        "prompt_tokens": 291,
        "completion_tokens": 26,
        "total_tokens": 513,
        "completion_tokens_details": {"reasoning_tokens": 196},
    }
    assert normalise_xai_usage(usage) is True
    assert usage["completion_tokens"] == 222
    openai_style = {
        "prompt_tokens": 10,
        "completion_tokens": 30,
        "total_tokens": 40,
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    assert normalise_xai_usage(openai_style) is False  # already counted in: left alone
    assert openai_style["completion_tokens"] == 30
