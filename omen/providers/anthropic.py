"""Anthropic's Messages API (POST /v1/messages, SSE events, GET /v1/models) behind the OpenAI shape.

Translation is pure functions over dicts (request, response, one stream event at a time);
`AnthropicProvider` only moves bytes. Differences that matter: `system` is top-level,
`max_tokens` is required, tool calls are `tool_use` blocks with object inputs and their results
go back as `tool_result` blocks in a user turn, roles must alternate, and streamed usage is split
between `message_start` (input) and `message_delta` (cumulative output).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from omen.config import ProviderConfig
from omen.providers.base import (
    JSON,
    ChatResponse,
    ChunkEnvelope,
    EmbeddingResponse,
    NativeCall,
    Probe,
    Relayed,
    UpstreamError,
    Usage,
    as_object,
    failed_probe,
    token_count,
)
from omen.providers.http import (
    UpstreamClients,
    UpstreamSettings,
    get_json,
    input_tokens,
    iter_lines,
    loads,
    open_stream,
    parse_retry_after,
    post_json,
    sse_events,
    sse_json,
    truncated,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# Chat fields a Messages body cannot express.
_NOT_IN_MESSAGES = (
    "response_format",
    "n",
    "logprobs",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
)

# OpenAI's reasoning_effort → an Anthropic thinking budget (tokens).
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
    "pause_turn": "stop",
}

# The status Anthropic sends with each error type; used for errors that arrive inside a stream.
ERROR_STATUSES = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# --- request ---------------------------------------------------------------------------


def _unsupported(message: str, code: str) -> UpstreamError:
    # Another provider may take what Anthropic refuses, so failover stays possible.
    return UpstreamError(
        400, f"anthropic: {message}", type_="invalid_request_error", code=code, retryable=True
    )


def image_block(url: str) -> JSON:
    """An OpenAI image URL (data: or http(s):) → an Anthropic image block."""
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        fields = [f.strip().lower() for f in header.split(";")]
        media_type = "image/jpeg" if fields[0] == "image/jpg" else fields[0]
        if not comma or "base64" not in fields[1:]:
            raise _unsupported("image data URLs must be base64-encoded", "invalid_image_url")
        if media_type not in IMAGE_MEDIA_TYPES:
            raise _unsupported(
                f"image type {media_type or 'unknown'!r} is not one of jpeg, png, gif, webp",
                "unsupported_image_type",
            )
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _unsupported("image URLs must be data: or http(s): URLs", "invalid_image_url")


def _content_blocks(content: Any) -> list[JSON]:
    """OpenAI message content (a string or a list of parts) → Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[JSON] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                block: JSON = {"type": "text", "text": part["text"]}
                if part.get("cache_control"):
                    block["cache_control"] = part["cache_control"]
                blocks.append(block)
        elif kind == "image_url":
            blocks.append(image_block((part.get("image_url") or {}).get("url", "")))
        elif kind == "refusal":
            if part.get("refusal"):
                blocks.append({"type": "text", "text": part["refusal"]})
        else:
            raise _unsupported(f"content parts of type {kind!r} are not supported", "unsupported")
    return blocks


def _tool_use_block(call: JSON) -> JSON:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = {}
    return {
        "type": "tool_use",
        "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
        "name": function.get("name", ""),
        "input": parsed if isinstance(parsed, dict) else {},
    }


def _turn(message: JSON) -> tuple[str, list[JSON]]:
    """One non-system OpenAI message → (Anthropic role, content blocks)."""
    role = message.get("role")
    if role == "tool":
        result: JSON = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", "")}
        content = message.get("content")
        result["content"] = content if isinstance(content, str) else _content_blocks(content)
        return "user", [result]
    blocks = _content_blocks(message.get("content"))
    if role == "assistant":
        blocks.extend(_tool_use_block(call) for call in message.get("tool_calls") or [])
        return "assistant", blocks
    return "user", blocks


def _collapse(blocks: list[JSON]) -> str | list[JSON]:
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"} and blocks[0]["type"] == "text":
        return str(blocks[0]["text"])
    return blocks


def to_anthropic_messages(body: JSON, model: str, *, stream: bool) -> JSON:
    """OpenAI chat body → Anthropic /v1/messages body."""
    system: list[JSON] = []
    turns: list[tuple[str, list[JSON]]] = []
    for message in body.get("messages") or []:
        if message.get("role") in ("system", "developer"):
            # Anthropic has one system prompt: every system message joins it, cache marks kept.
            system.extend(_content_blocks(message.get("content")))
            continue
        role, blocks = _turn(message)
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)  # Anthropic wants user and assistant to alternate
        else:
            turns.append((role, blocks))

    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    payload: JSON = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": role, "content": _collapse(blocks)} for role, blocks in turns],
    }
    if system:
        payload["system"] = _collapse(system)
    budget = THINKING_BUDGETS.get(str(body.get("reasoning_effort")))
    if budget:
        payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if payload["max_tokens"] <= budget:
            payload["max_tokens"] = budget + DEFAULT_MAX_TOKENS
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("temperature") is not None and not budget:  # thinking requires the default
        # OpenAI allows 0–2, Anthropic 0–1: clamp rather than have Anthropic refuse the request.
        payload["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        payload["top_p"] = body["top_p"]
    if body.get("user"):
        payload["metadata"] = {"user_id": str(body["user"])}
    tools = [_tool(t) for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    if tools:
        payload["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            payload["tool_choice"] = choice
    if stream:
        payload["stream"] = True
    return payload


def _tool(tool: JSON) -> JSON:
    function = tool.get("function") or {}
    out: JSON = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("cache_control"):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    if choice == "none":
        return {"type": "none"}  # Anthropic allows no parallel flag here
    if choice == "required":
        out: JSON = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    elif choice == "auto" or parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# --- response --------------------------------------------------------------------------


def usage_from_anthropic(usage: JSON | None) -> Usage:
    """Anthropic counts cached input apart from `input_tokens`; OpenAI counts it inside."""
    usage = as_object(usage)
    cache_read = token_count(usage.get("cache_read_input_tokens"))
    cache_creation = token_count(usage.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=token_count(usage.get("input_tokens")) + cache_creation + cache_read,
        completion_tokens=token_count(usage.get("output_tokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_creation,
    )


def openai_usage(usage: Usage, cache_creation_tokens: int) -> JSON:
    """OpenAI's usage object, plus the cache-write count (as LiteLLM names it) when there is one."""
    out = usage.as_openai()
    if cache_creation_tokens:
        out["cache_creation_input_tokens"] = cache_creation_tokens
    return out


def finish_reason(stop_reason: str | None, saw_tool_calls: bool) -> str:
    if stop_reason is None:
        return "tool_calls" if saw_tool_calls else "stop"
    return FINISH_REASONS.get(stop_reason, "stop")


def _tool_call(block: JSON) -> JSON:
    return {
        "id": block.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": block.get("name", ""),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def from_anthropic_message(data: JSON, model: str) -> ChatResponse:
    """Anthropic's message object → OpenAI chat.completion."""
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[JSON] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(_tool_call(block))
        elif kind == "thinking" and block.get("thinking"):
            thinking.append(block["thinking"])
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning"] = "".join(thinking)
    raw_usage = data.get("usage") or {}
    usage = usage_from_anthropic(raw_usage)
    body: JSON = {
        "id": data.get("id") or f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(data.get("stop_reason"), bool(calls)),
            }
        ],
        "usage": openai_usage(usage, usage.cache_write_tokens),
    }
    return ChatResponse(body=body, usage=usage)


class AnthropicStreamTranslator(ChunkEnvelope):
    """Turns Anthropic stream events (parsed `data:` objects) into OpenAI chunks, one at a time."""

    def __init__(self, completion_id: str, model: str) -> None:
        super().__init__(completion_id, model)
        self.raw_usage: JSON = {}
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool-call index
        self.finished = False

    @property
    def usage(self) -> Usage:
        return usage_from_anthropic(self.raw_usage)

    def feed(self, event: JSON) -> list[JSON]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.completion_id = message.get("id") or self.completion_id
            self.model = message.get("model") or self.model
            self.raw_usage.update(message.get("usage") or {})
        elif kind == "content_block_start":
            return self._block_start(int(event.get("index") or 0), event.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._block_delta(int(event.get("index") or 0), event.get("delta") or {})
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            # Counts here are running totals, not increments: the last one wins.
            self.raw_usage.update(
                {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            )
        elif kind == "message_stop":
            return self._finish()
        elif kind == "error":
            raise stream_error(event.get("error") or {})
        # ping, content_block_stop and event types added later carry nothing to translate.
        return []

    def _block_start(self, index: int, block: JSON) -> list[JSON]:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if kind == "tool_use":
            position = len(self.tool_index)
            self.tool_index[index] = position
            call = {
                "index": position,
                "id": block.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking" and block.get("thinking"):
            return [self._chunk({"reasoning": block["thinking"]})]
        return []

    def _block_delta(self, index: int, delta: JSON) -> list[JSON]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self.tool_index:
            piece = {
                "index": self.tool_index[index],
                "function": {"arguments": delta["partial_json"]},
            }
            return [self._chunk({"tool_calls": [piece]})]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self._chunk({"reasoning": delta["thinking"]})]
        return []  # signature_delta, citations_delta

    def _finish(self) -> list[JSON]:
        self.finished = True
        finish = self._chunk({}, finish_reason(self.stop_reason, bool(self.tool_index)))
        usage_chunk = self._chunk({})
        usage_chunk["choices"] = []
        cache_creation = int(self.raw_usage.get("cache_creation_input_tokens") or 0)
        usage_chunk["usage"] = openai_usage(self.usage, cache_creation)
        return [finish, usage_chunk]


# --- passthrough: Anthropic's event stream relayed ---------------------------------------


def running_usage(fields: JSON, event: JSON) -> Usage | None:
    """Fold one Anthropic stream event's usage into `fields`; the usage so far, if it had any.

    message_start carries the input side (cache reads and writes included); message_delta
    the cumulative output, sometimes the input counts again.
    """
    kind = event.get("type")
    if kind == "message_start":
        message = event.get("message")
        usage = message.get("usage") if isinstance(message, dict) else None
    elif kind == "message_delta":
        usage = event.get("usage")
    else:
        return None
    if not isinstance(usage, dict):
        return None
    fields.update({key: value for key, value in usage.items() if value is not None})
    return usage_from_anthropic(fields)


async def relay_messages(events: AsyncIterator[bytes], where: str) -> AsyncGenerator[Relayed, None]:
    """An Anthropic Messages event stream (Anthropic, Ollama's /v1/messages), each event's
    bytes relayed as they came. An `error` event before anything was relayed is raised, so
    the gateway may fail over; after, it is relayed and raised as delivered."""
    fields: JSON = {}
    started = False
    async for data in events:
        event = sse_json(data, where)
        kind = event.get("type")
        if kind == "error":
            error = event.get("error")
            failure = stream_error(error if isinstance(error, dict) else {})
            if not started:
                failure.mid_stream = False
                raise failure
            yield Relayed(data)
            failure.delivered = True
            raise failure
        message = event.get("message") if kind == "message_start" else None
        model = message.get("model") if isinstance(message, dict) else None
        yield Relayed(data, running_usage(fields, event), model if isinstance(model, str) else None)
        started = True
        if kind == "message_stop":
            return
    raise truncated(where, "message_stop", mid_stream=started)


# --- errors ----------------------------------------------------------------------------


def _mapped_error(
    status: int, error_type: str, message: str, retry_after: float | None
) -> UpstreamError:
    if status in (401, 402, 403):
        # The upstream refused Omen's own account: not the client's fault, and another
        # provider may still answer.
        return UpstreamError(
            502,
            f"upstream rejected Omen's credentials ({status} {error_type}): {message}",
            type_="upstream_auth_error",
            code=error_type,
            retryable=True,
        )
    if status == 404:
        return UpstreamError(
            404, message, type_="invalid_request_error", code="model_not_found", retryable=True
        )
    if status in (400, 413, 422):
        # About the client's own request: its words unchanged (Claude Code compacts on
        # "prompt is too long"), and the code OpenAI-format agents act on.
        too_long = "prompt is too long" in message
        return UpstreamError(
            status,
            message.removeprefix("anthropic: "),
            type_="invalid_request_error",
            code="context_length_exceeded" if too_long else error_type,
            retryable=False,
        )
    if status == 429:
        return UpstreamError(
            429, message, type_="rate_limit_error", code=error_type, retry_after=retry_after
        )
    return UpstreamError(
        status, message, type_=error_type, code=error_type, retry_after=retry_after
    )


def anthropic_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """Map an Anthropic error response (`{"type":"error","error":{…}}`) to Omen's error."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if isinstance(error, dict):
        error_type = str(error.get("type") or "api_error")
        message = str(error.get("message") or f"HTTP {status}")
    else:
        error_type = "api_error"
        message = body.decode(errors="replace")[:500] or f"HTTP {status}"
    return _mapped_error(status, error_type, f"anthropic: {message}", parse_retry_after(headers))


def stream_error(error: JSON) -> UpstreamError:
    """An `event: error` after the 200: the status is the one Anthropic uses for its type."""
    error_type = str(error.get("type") or "api_error")
    message = str(error.get("message") or error_type)
    status = ERROR_STATUSES.get(error_type, 502)
    mapped = _mapped_error(status, error_type, f"anthropic: {message}", None)
    mapped.mid_stream = True
    return mapped


# --- transport -------------------------------------------------------------------------

# What POST /v1/messages/count_tokens accepts (it refuses max_tokens, stream, metadata …).
_COUNTED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "mcp_servers",
        "context_management",
        "output_config",
    }
)


class AnthropicProvider:
    """Adapter for one `[providers.NAME]` of type anthropic; `endpoint` is the host root."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._clients = UpstreamClients(UpstreamSettings.of(config))
        self._headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        if config.api_key is not None:
            self._headers["x-api-key"] = config.api_key.get_secret_value()
        self._passthrough = config.passthrough_formats

    # --- passthrough: an Anthropic-format client's body as sent ------------------------

    def speaks(self, wire: str, model: str) -> bool:
        return wire in self._passthrough

    def _native_headers(self, call: NativeCall) -> dict[str, str]:
        """Omen's key; the client's API version and beta flags (prompt-caching scopes,
        interleaved thinking, context management …) so the upstream does what it asked."""
        headers = dict(self._headers)
        for name in ("anthropic-version", "anthropic-beta"):
            if call.headers.get(name):
                headers[name] = call.headers[name]
        return headers

    async def native(self, endpoint: str, call: NativeCall) -> ChatResponse:
        where = f"{self.name} {endpoint}"
        raw, _ = await post_json(
            self._clients.get(endpoint),
            "/v1/messages",
            call.body,
            headers=self._native_headers(call),
            where=where,
            on_error=anthropic_error,
        )
        data = loads(raw, where)
        if not isinstance(data, dict) or data.get("type") != "message":
            raise UpstreamError(502, f"{where}: upstream answer is not a message")
        return ChatResponse(body=data, usage=usage_from_anthropic(data.get("usage")), raw=raw)

    async def native_stream(self, endpoint: str, call: NativeCall) -> AsyncIterator[Relayed]:
        """The upstream's events as they come (thinking signatures untouched), usage read
        from message_start and the cumulative message_delta on the way through."""
        where = f"{self.name} {endpoint}"
        async with (
            open_stream(
                self._clients.get(endpoint),
                "/v1/messages",
                call.body,
                headers=self._native_headers(call),
                where=where,
                on_error=anthropic_error,
            ) as response,
            aclosing(relay_messages(sse_events(response, where), where)) as relayed,
        ):
            async for event in relayed:
                yield event

    async def count_tokens(self, endpoint: str, call: NativeCall) -> int:
        where = f"{self.name} {endpoint}"
        body = {k: v for k, v in call.body.items() if k in _COUNTED_FIELDS}
        raw, _ = await post_json(
            self._clients.get(endpoint),
            "/v1/messages/count_tokens",
            body,
            headers=self._native_headers(call),
            where=where,
            on_error=anthropic_error,
        )
        return input_tokens(raw, where)

    # --- translation: an OpenAI-shaped body ---------------------------------------------

    def uncarried(self, body: JSON, model: str) -> list[str]:
        """Chat fields Messages has no place for (named in the decision when translated)."""
        return [name for name in _NOT_IN_MESSAGES if body.get(name) not in (None, False)]

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse:
        where = f"{self.name} {endpoint}"
        raw, _ = await post_json(
            self._clients.get(endpoint),
            "/v1/messages",
            to_anthropic_messages(body, body["model"], stream=False),
            headers=self._headers,
            where=where,
            on_error=anthropic_error,
        )
        data = loads(raw, where)
        if not isinstance(data, dict) or data.get("type") != "message":
            raise UpstreamError(502, f"{where}: upstream answer is not a message")
        return from_anthropic_message(data, body["model"])

    async def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        where = f"{self.name} {endpoint}"
        translator = AnthropicStreamTranslator(f"chatcmpl-{uuid.uuid4().hex[:24]}", body["model"])
        async with (
            open_stream(
                self._clients.get(endpoint),
                "/v1/messages",
                to_anthropic_messages(body, body["model"], stream=True),
                headers=self._headers,
                where=where,
                on_error=anthropic_error,
            ) as response,
            aclosing(iter_lines(response, where)) as lines,
            aclosing(_sse_events(lines, where)) as events,
        ):
            async for event in events:
                try:
                    chunks = translator.feed(event)
                except UpstreamError as exc:
                    exc.mid_stream = translator.started
                    raise
                for chunk in translator.opening(chunks):
                    yield chunk
                if translator.finished:
                    return
        raise truncated(where, "message_stop", mid_stream=translator.started)

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse:
        raise UpstreamError(
            400,
            "anthropic has no embeddings API",
            type_="invalid_request_error",
            code="embeddings_not_supported",
            retryable=True,
        )

    async def list_models(self, endpoint: str) -> list[str]:
        where = f"{self.name} {endpoint}"
        models: list[str] = []
        params = {"limit": "1000"}
        for _ in range(20):  # pages; a runaway `has_more` must not loop forever
            data = await self._get(endpoint, "/v1/models", params, where)
            page = [m["id"] for m in data.get("data") or [] if m.get("id")]
            models.extend(page)
            if not data.get("has_more") or not page:
                break
            params = {"limit": "1000", "after_id": data.get("last_id") or page[-1]}
        return models

    async def _get(self, endpoint: str, path: str, params: dict[str, str], where: str) -> Any:
        data = await get_json(
            self._clients.get(endpoint),
            path,
            headers=self._headers,
            params=params,
            where=where,
            on_error=anthropic_error,
        )
        if not isinstance(data, dict):
            raise UpstreamError(502, f"{where}: model list is not an object")
        return data

    async def probe(self, endpoint: str) -> Probe:
        """GET /v1/models costs no tokens and proves the key and the network path."""
        started = time.perf_counter()
        try:
            await self._get(endpoint, "/v1/models", {"limit": "1"}, f"{self.name} {endpoint}")
        except UpstreamError as exc:
            return failed_probe(exc, (time.perf_counter() - started) * 1000)
        return Probe(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _sse_events(lines: AsyncIterator[bytes], where: str) -> AsyncGenerator[JSON, None]:
    """Group `event:`/`data:` lines into parsed events; the `event:` name fills a missing type."""
    name: str | None = None
    data: list[bytes] = []
    async for line in lines:
        if line.startswith(b"event:"):
            name = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield _event(name, data, where)
            name, data = None, []
    if data:
        yield _event(name, data, where)


def _event(name: str | None, data: list[bytes], where: str) -> JSON:
    event = loads(b"\n".join(data), where)
    if not isinstance(event, dict):
        raise UpstreamError(502, f"{where}: stream event is not an object", mid_stream=True)
    if name and "type" not in event:
        event["type"] = name
    return event
