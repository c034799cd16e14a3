"""The OpenAI chat wire format as OpenAI, xAI and Azure speak it: what the upstream is sent,
how its real error bodies (PROVIDER_WIRE_FORMATS.md §1, §5, §7) map to UpstreamError, and the
adapter end to end against the fake upstreams."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from omen.providers.base import JSON, UpstreamError
from omen.providers.http import parse_retry_after
from omen.providers.openai_format import Flavour, OpenAIProvider, openai_error, upstream_body
from tests.fakes import (
    CutStream,
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

HELLO = [{"role": "user", "content": "Say hello to me"}]
UPSTREAM_KEY = "sk-upstream-0123456789"
AZURE_KEY = "azure-key-0123456789"

# --- upstream_body ----------------------------------------------------------------------


def test_metadata_stays_home() -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "metadata": {"intent": "code"}}

    assert upstream_body(body, stream=False) == {"model": "gpt-4o", "messages": HELLO}


def test_stream_always_asks_for_usage() -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True}

    payload = upstream_body(body, stream=True)

    assert payload["stream"] is True
    assert payload["stream_options"] == {"include_usage": True}


def test_stream_overrides_a_client_that_turned_usage_off_and_keeps_other_options() -> None:
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": False, "include_obfuscation": False},
    }

    payload = upstream_body(body, stream=True)

    assert payload["stream_options"] == {"include_usage": True, "include_obfuscation": False}


def test_non_stream_body_carries_no_stream_fields() -> None:
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "stream": False,
        "stream_options": {"include_usage": True},
    }

    payload = upstream_body(body, stream=False)

    assert "stream" not in payload
    assert "stream_options" not in payload


def test_other_fields_pass_through_untouched() -> None:
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "temperature": 0.3,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"},
    }

    assert upstream_body(body, stream=False) == body


@pytest.mark.parametrize("stream", [True, False])
def test_upstream_body_never_mutates_the_clients_body(stream: bool) -> None:
    body = {
        "model": "gpt-4o",
        "messages": HELLO,
        "metadata": {"intent": "chat"},
        "stream": stream,
        "stream_options": {"include_obfuscation": False},
    }
    before = copy.deepcopy(body)

    upstream_body(body, stream=stream)

    assert body == before


# --- openai_error: the real bodies ------------------------------------------------------


def error(status: int, body: JSON | bytes, headers: dict[str, str] | None = None) -> UpstreamError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return openai_error(status, raw, httpx.Headers(headers or {}))


OPENAI_401 = {
    "error": {
        "message": "Incorrect API key provided: sk-abc********wxyz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
OPENAI_429 = {
    "error": {
        "message": "Rate limit reached for o4-mini in organization org-x on tokens per min (TPM): "
        "Limit 200000, Used 162960, Requested 42288. Please try again in 1.574s.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
OPENAI_400 = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 131072 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
OPENAI_500 = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
AZURE_429 = {
    "error": {
        "code": "429",
        "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
        "version 2024-02-15-preview have exceeded token rate limit of your current OpenAI S0 "
        "pricing tier. Please retry after 60 seconds.",
    }
}
AZURE_404 = {
    "error": {
        "code": "DeploymentNotFound",
        "message": "The API deployment for this resource does not exist.",
    }
}


def test_rejected_key_is_a_retryable_502_auth_error_not_the_clients_401() -> None:
    mapped = error(401, OPENAI_401)

    assert mapped.status == 502
    assert mapped.type == "upstream_auth_error"
    assert mapped.retryable is True
    assert mapped.code == "invalid_api_key"
    assert "(401)" in mapped.message and "Incorrect API key provided" in mapped.message


def test_forbidden_is_also_an_upstream_auth_error() -> None:
    mapped = error(403, {"error": {"message": "You are not allowed to sample from this model"}})

    assert (mapped.status, mapped.type, mapped.retryable) == (502, "upstream_auth_error", True)


def test_rate_limit_keeps_429_and_its_retry_after() -> None:
    mapped = error(429, OPENAI_429, {"retry-after": "2"})

    assert mapped.status == 429
    assert mapped.retryable is True
    assert mapped.retry_after == 2.0
    assert mapped.code == "rate_limit_exceeded"
    assert mapped.message.startswith("Rate limit reached for o4-mini")


def test_rate_limit_retry_after_ms_is_read_in_milliseconds() -> None:
    mapped = error(429, OPENAI_429, {"retry-after-ms": "1574"})

    assert mapped.retry_after == pytest.approx(1.574)


def test_rate_limit_without_retry_after_has_none() -> None:
    assert error(429, OPENAI_429).retry_after is None


def test_context_length_400_is_not_retryable_and_keeps_code_and_message() -> None:
    mapped = error(400, OPENAI_400)

    assert mapped.status == 400
    assert mapped.retryable is False
    assert mapped.type == "invalid_request_error"
    assert mapped.code == "context_length_exceeded"
    assert "maximum context length is 128000 tokens" in mapped.message


def test_server_error_500_is_retryable() -> None:
    mapped = error(500, OPENAI_500)

    assert (mapped.status, mapped.type, mapped.code) == (500, "server_error", None)
    assert mapped.retryable is True
    assert mapped.message == OPENAI_500["error"]["message"]


def test_azure_429_with_string_code_and_no_type() -> None:
    mapped = error(429, AZURE_429, {"retry-after": "60"})

    assert mapped.status == 429
    assert mapped.code == "429"
    assert mapped.type == "upstream_error"
    assert mapped.retryable is True
    assert mapped.retry_after == 60.0


def test_azure_deployment_not_found_is_a_retryable_404_with_its_code() -> None:
    mapped = error(404, AZURE_404)

    assert mapped.status == 404
    assert mapped.code == "DeploymentNotFound"
    assert mapped.retryable is True
    assert "deployment for this resource does not exist" in mapped.message


def test_openai_404_without_a_code_is_model_not_found() -> None:
    mapped = error(404, {"error": {"message": "Invalid URL (POST /v1/chat)", "code": None}})

    assert mapped.code == "model_not_found"


def test_numeric_code_becomes_a_string() -> None:
    body = {"error": {"code": 502, "message": "Bad gateway.", "type": "cf_bad_gateway"}}

    mapped = error(502, body)

    assert (mapped.status, mapped.code, mapped.type) == (502, "502", "cf_bad_gateway")


def test_html_error_page_becomes_the_message() -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

    mapped = error(502, page)

    assert mapped.status == 502
    assert mapped.retryable is True
    assert mapped.type == "upstream_error"
    assert "502 Bad Gateway" in mapped.message


def test_huge_non_json_body_is_cut_to_500_characters() -> None:
    assert len(error(503, b"x" * 10_000).message) == 500


def test_empty_error_body_names_the_status() -> None:
    assert error(503, b"").message == "HTTP 503"


def test_error_as_a_bare_string_is_the_message() -> None:
    assert error(500, {"error": "upstream exploded"}).message == "upstream exploded"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == expected


# --- the adapter against the fakes ------------------------------------------------------


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, tuple[FakeState, RunningFake]]]:
    running: dict[str, tuple[FakeState, RunningFake]] = {}
    keys = {"openai": UPSTREAM_KEY, "xai": UPSTREAM_KEY, "azure": AZURE_KEY}
    flavours: tuple[Flavour, ...] = ("openai", "xai", "azure")
    for flavour in flavours:
        fake = FakeState(api_key=keys[flavour])
        running[flavour] = (fake, run_fake(make_openai_app(fake, flavour)))
    yield running
    for _, server in running.values():
        server.stop()


def upstream(
    servers: dict[str, tuple[FakeState, RunningFake]], flavour: Flavour
) -> tuple[FakeState, str]:
    fake, server = servers[flavour]
    fake.script.clear()
    fake.script.default = TextReply()
    fake.reset()
    base = server.url if flavour == "azure" else server.url + "/v1"
    return fake, base


def provider(flavour: Flavour, **options: Any) -> OpenAIProvider:
    key = AZURE_KEY if flavour == "azure" else UPSTREAM_KEY
    return OpenAIProvider(
        flavour, flavour=flavour, api_key=key, timeout=5, connect_timeout=1, **options
    )


async def collect(adapter: OpenAIProvider, base: str, body: JSON) -> list[JSON]:
    try:
        return [chunk async for chunk in adapter.stream(base, body)]
    finally:
        await adapter.aclose()


async def test_azure_addresses_the_deployment_with_api_key_and_api_version(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "azure")
    adapter = provider("azure", deployments={"gpt-4o": "prod-4o"}, api_version="2024-10-21")
    try:
        response = await adapter.chat(base, {"model": "gpt-4o", "messages": HELLO})
    finally:
        await adapter.aclose()

    sent = fake.last_request
    assert sent.path == "/openai/deployments/prod-4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == AZURE_KEY
    assert "authorization" not in sent.headers
    assert response.body["choices"][0]["message"]["content"]


async def test_azure_stream_drops_the_prompt_filter_preamble(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    _, base = upstream(servers, "azure")

    chunks = await collect(provider("azure"), base, {"model": "gpt-4o", "messages": HELLO})

    assert all(chunk.get("choices") or chunk.get("usage") for chunk in chunks)
    assert all("prompt_filter_results" not in chunk for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_openai_sends_bearer_key_and_forces_usage_on_streams(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "openai")
    fake.script.push(TextReply("Hi there", prompt_tokens=4, completion_tokens=2))
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True, "metadata": {"intent": "x"}}

    chunks = await collect(provider("openai"), base, body)

    sent = fake.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["stream_options"] == {"include_usage": True}
    assert "metadata" not in sent.json
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hi there"
    assert chunks[-1]["usage"]["total_tokens"] == 6


async def test_xai_tool_call_arrives_whole_and_passes_through(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "xai")
    call = ToolCall("weather", {"location": "San Francisco"}, id="call_55117580")
    fake.script.push(ToolCallReply([call]))

    chunks = await collect(provider("xai"), base, {"model": "grok-3", "messages": HELLO})

    calls = [
        tool_call
        for chunk in chunks
        if chunk["choices"]
        for tool_call in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert len(calls) == 1
    assert calls[0]["id"] == "call_55117580"
    assert calls[0]["function"]["name"] == "weather"
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"location": "San Francisco"}
    finishes = [c["choices"][0].get("finish_reason") for c in chunks if c["choices"]]
    assert finishes[-1] == "tool_calls"


async def test_cut_stream_raises_mid_stream_after_the_chunks_it_got(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "openai")
    fake.script.push(CutStream(after_chunks=2))
    adapter = provider("openai")
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in adapter.stream(base, {"model": "gpt-4o", "messages": HELLO}):
                received.append(chunk)
    finally:
        await adapter.aclose()

    assert caught.value.mid_stream is True
    assert caught.value.status == 502
    assert len(received) == 3  # the role chunk and two content chunks


async def test_error_event_inside_a_stream_raises_mid_stream(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "openai")
    fake.script.push(MidStreamError(after_chunks=1, message="The engine fell over"))
    adapter = provider("openai")
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in adapter.stream(base, {"model": "gpt-4o", "messages": HELLO}):
                received.append(chunk)
    finally:
        await adapter.aclose()

    assert caught.value.mid_stream is True
    assert "The engine fell over" in caught.value.message
    assert len(received) == 2


async def test_rate_limited_stream_raises_before_any_chunk_with_retry_after(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "openai")
    fake.script.push(ErrorReply(429))
    adapter = provider("openai")
    received: list[JSON] = []
    try:
        with pytest.raises(UpstreamError) as caught:
            async for chunk in adapter.stream(base, {"model": "gpt-4o", "messages": HELLO}):
                received.append(chunk)
    finally:
        await adapter.aclose()

    assert received == []
    assert (caught.value.status, caught.value.retry_after) == (429, 1.0)
    assert caught.value.mid_stream is False


async def test_wrong_upstream_key_surfaces_as_upstream_auth_error(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    _, base = upstream(servers, "openai")
    adapter = OpenAIProvider(
        "openai", flavour="openai", api_key="sk-wrong-key-000", timeout=5, connect_timeout=1
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            await adapter.chat(base, {"model": "gpt-4o", "messages": HELLO})
    finally:
        await adapter.aclose()

    assert (caught.value.status, caught.value.type) == (502, "upstream_auth_error")
    assert caught.value.code == "invalid_api_key"


async def test_non_stream_answer_keeps_the_upstream_bytes_and_usage(
    servers: dict[str, tuple[FakeState, RunningFake]],
) -> None:
    fake, base = upstream(servers, "openai")
    fake.script.push(TextReply("Hello", prompt_tokens=3, completion_tokens=1))
    adapter = provider("openai")
    try:
        response = await adapter.chat(base, {"model": "gpt-4o", "messages": HELLO, "stream": False})
    finally:
        await adapter.aclose()

    assert response.raw is not None and orjson.loads(response.raw) == response.body
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (3, 1)
    assert "stream" not in fake.last_request.json
