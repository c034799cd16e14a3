"""Ollama's native API (/api/chat NDJSON, /api/embed, /api/tags, /api/ps) behind the OpenAI shape.

Translation is pure functions over dicts (request, response, stream chunk); `OllamaProvider`
only moves bytes. Differences that matter: tool-call arguments are objects (OpenAI: JSON
strings), images are bare base64 beside the text, usage is prompt_eval_count/eval_count,
thinking is `think` (true, or a level for gpt-oss). Where configured, Anthropic-format clients
pass through to Ollama's own /v1/messages (Ollama ≥ 0.14) and its events are relayed as sent.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from omen.providers.anthropic import relay_messages, usage_from_anthropic
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
    failed_probe,
    token_count,
)
from omen.providers.http import (
    UpstreamClients,
    UpstreamSettings,
    get_json,
    iter_lines,
    loads,
    open_stream,
    post_json,
    sse_events,
    truncated,
)

_OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}
# Models whose `think` takes a level; the rest take true/false.
_THINK_LEVELS = ("gpt-oss",)
_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


# --- request ---------------------------------------------------------------------------


def _image_from_url(url: str) -> str:
    if url.startswith("data:"):
        _, _, data = url.partition(",")
        return data
    raise UpstreamError(
        400,
        "Ollama accepts images only as data: URLs (base64); this request has an http(s) image URL",
        type_="invalid_request_error",
        code="unsupported_image_url",
        retryable=True,  # another provider may fetch URLs itself
    )


def _message_to_ollama(message: JSON, tool_names: dict[str, str]) -> JSON:
    role = message.get("role")
    out: JSON = {"role": "system" if role == "developer" else role}
    content = message.get("content")
    if isinstance(content, list):
        texts: list[str] = []
        images: list[str] = []
        for part in content:
            kind = part.get("type")
            if kind == "text":
                texts.append(part.get("text", ""))
            elif kind == "image_url":
                image = part.get("image_url") or {}
                images.append(_image_from_url(image.get("url", "")))
        out["content"] = "\n".join(texts)
        if images:
            out["images"] = images
    else:
        out["content"] = content or ""
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = []
        for index, call in enumerate(calls):
            function = call.get("function") or {}
            arguments = function.get("arguments") or "{}"
            try:
                parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
            except orjson.JSONDecodeError:
                parsed = {}
            tool_names[call.get("id", "")] = function.get("name", "")
            out["tool_calls"].append(
                {"function": {"index": index, "name": function.get("name"), "arguments": parsed}}
            )
    if role == "tool":
        name = tool_names.get(message.get("tool_call_id", ""))
        if name:
            out["tool_name"] = name
    return out


def think(effort: Any, model: str) -> bool | str | None:
    """`reasoning_effort` → /api/chat's `think`: a level for models that take one (gpt-oss,
    which cannot stop thinking, so "minimal" is its lowest level), else on or off."""
    if not isinstance(effort, str) or effort not in _LEVELS:
        return None
    if model.lower().startswith(_THINK_LEVELS):
        return _LEVELS[effort]
    return effort != "minimal"


def _tools_to_ollama(tools: list[JSON]) -> list[JSON]:
    # Only what /api/chat knows: a breakpoint (`cache_control`) or other extras stay behind.
    out: list[JSON] = []
    for tool in tools:
        if tool.get("type", "function") == "function" and isinstance(tool.get("function"), dict):
            out.append({"type": "function", "function": tool["function"]})
    return out


def to_ollama_chat(body: JSON, model: str, stream: bool) -> JSON:
    """OpenAI chat body → Ollama /api/chat body.

    System messages stay where they are, also mid-conversation: /api/chat takes `system`
    among the messages at any position and the model's template renders it in place.
    Prompt-cache breakpoints have no meaning here (Ollama reuses its KV cache by itself), so
    parts travel as their text only.
    """
    tool_names: dict[str, str] = {}
    payload: JSON = {
        "model": model,
        "messages": [_message_to_ollama(m, tool_names) for m in body.get("messages", [])],
        "stream": stream,
    }
    tools = _tools_to_ollama(body.get("tools") or [])
    if tools:
        payload["tools"] = tools
    thinking = think(body.get("reasoning_effort"), model)
    if thinking is not None:
        payload["think"] = thinking
    options: JSON = {}
    for openai_name, ollama_name in _OPTION_FIELDS.items():
        if body.get(openai_name) is not None:
            options[ollama_name] = body[openai_name]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    stop = body.get("stop")
    if stop:
        options["stop"] = [stop] if isinstance(stop, str) else stop
    if options:
        payload["options"] = options
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_object":
        payload["format"] = "json"
    elif response_format.get("type") == "json_schema":
        payload["format"] = (response_format.get("json_schema") or {}).get("schema", "json")
    return payload


# --- response --------------------------------------------------------------------------


def _tool_calls_to_openai(calls: list[JSON], start: int = 0) -> list[JSON]:
    out = []
    for offset, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        out.append(
            {
                "index": function.get("index", start + offset),
                "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments).decode(),
                },
            }
        )
    return out


def usage_from_ollama(final: JSON) -> Usage:
    return Usage(
        prompt_tokens=int(final.get("prompt_eval_count") or 0),
        completion_tokens=int(final.get("eval_count") or 0),
    )


def finish_reason(final: JSON, saw_tool_calls: bool) -> str:
    reason = final.get("done_reason") or "stop"
    if reason == "length":
        return "length"
    return "tool_calls" if saw_tool_calls else "stop"


def from_ollama_chat(final: JSON, completion_id: str, model: str) -> ChatResponse:
    """Ollama's final (non-streamed) object → OpenAI chat.completion."""
    message = final.get("message") or {}
    out_message: JSON = {
        "role": "assistant",
        "content": message.get("content", ""),
        "refusal": None,
    }
    calls = message.get("tool_calls") or []
    if calls:
        out_message["tool_calls"] = [
            {key: value for key, value in call.items() if key != "index"}
            for call in _tool_calls_to_openai(calls)
        ]
    if message.get("thinking"):
        out_message["reasoning"] = message["thinking"]
    usage = usage_from_ollama(final)
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": final.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "logprobs": None,
                "finish_reason": finish_reason(final, bool(calls)),
            }
        ],
        "usage": usage.as_openai(),
        "system_fingerprint": "fp_ollama",
    }
    return ChatResponse(body=body, usage=usage)


class OllamaStreamTranslator(ChunkEnvelope):
    """Turns Ollama NDJSON objects into OpenAI chunks, one object at a time."""

    fingerprint = "fp_ollama"

    def __init__(self, completion_id: str, model: str) -> None:
        super().__init__(completion_id, model)
        self.tool_calls = 0
        self.usage: Usage | None = None

    def feed(self, item: JSON) -> list[JSON]:
        if "error" in item:
            raise UpstreamError(502, f"ollama: {item['error']}", mid_stream=True)
        chunks: list[JSON] = []
        message = item.get("message") or {}
        if message.get("thinking"):
            chunks.append(self._chunk({"reasoning": message["thinking"]}))
        if message.get("content"):
            chunks.append(self._chunk({"content": message["content"]}))
        calls = message.get("tool_calls") or []
        if calls:
            chunks.append(
                self._chunk({"tool_calls": _tool_calls_to_openai(calls, start=self.tool_calls)})
            )
            self.tool_calls += len(calls)
        if item.get("done"):
            self.usage = usage_from_ollama(item)
            chunks.append(self._chunk({}, finish_reason(item, self.tool_calls > 0)))
            usage_chunk = self._chunk({})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self.usage.as_openai()
            chunks.append(usage_chunk)
        return chunks


# --- errors ----------------------------------------------------------------------------


def ollama_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """`{"error": "…"}` (native API) or `{"type":"error","error":{"message"}}` (/v1/messages)."""
    try:
        error = orjson.loads(body).get("error")
        if isinstance(error, dict):
            error = error.get("message")
        message = error if isinstance(error, str) and error else body.decode(errors="replace")
        message = message[:500]
    except (orjson.JSONDecodeError, AttributeError):
        message = body.decode(errors="replace")[:500] or f"HTTP {status}"
    if status == 404:
        return UpstreamError(
            404,
            f"ollama: {message}",
            type_="invalid_request_error",
            code="model_not_found",
            retryable=True,  # another endpoint may have the model pulled
        )
    if status == 400:
        return UpstreamError(400, f"ollama: {message}", type_="invalid_request_error")
    return UpstreamError(status if status >= 500 else 502, f"ollama: {message}")


# --- passthrough: Anthropic's Messages API, served by Ollama itself ---------------------


def _anthropic_headers(call: NativeCall, accept: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": accept}
    for name, value in call.headers.items():
        if name.lower().startswith("anthropic-"):
            headers[name.lower()] = value
    return headers


# --- transport -------------------------------------------------------------------------


class OllamaProvider:
    """Adapter for one Ollama provider table; `endpoint` selects the box.

    `passthrough` is the provider's `passthrough_formats`: with "messages" in it, Anthropic
    clients are forwarded to Ollama's /v1/messages (Ollama ≥ 0.14) instead of translated.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        passthrough: frozenset[str] = frozenset(),
        upstream: UpstreamSettings | None = None,
    ) -> None:
        self.name = name
        self._clients = UpstreamClients(
            upstream or UpstreamSettings(timeout=timeout, connect_timeout=connect_timeout)
        )
        self._passthrough = passthrough

    def speaks(self, wire: str, model: str) -> bool:
        """Anthropic's Messages API, when this Ollama is configured to serve it."""
        return wire == "messages" and wire in self._passthrough

    async def native(self, endpoint: str, call: NativeCall) -> ChatResponse:
        """POST /v1/messages with the client's body; Ollama's Anthropic message back."""
        where = f"ollama {endpoint}"
        body = {**call.body, "stream": False} if call.body.get("stream") else call.body
        raw, _ = await post_json(
            self._clients.get(endpoint),
            "/v1/messages",
            body,
            headers=_anthropic_headers(call, "application/json"),
            where=where,
            on_error=ollama_error,
        )
        data = loads(raw, where)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise UpstreamError(502, f"{where}: /v1/messages answer is not an Anthropic message")
        return ChatResponse(body=data, usage=usage_from_anthropic(data.get("usage")), raw=raw)

    async def native_stream(self, endpoint: str, call: NativeCall) -> AsyncIterator[Relayed]:
        """POST /v1/messages streamed; each SSE event relayed byte for byte."""
        where = f"ollama {endpoint}"
        body = call.body if call.body.get("stream") is True else {**call.body, "stream": True}
        async with (
            open_stream(
                self._clients.get(endpoint),
                "/v1/messages",
                body,
                headers=_anthropic_headers(call, "text/event-stream"),
                where=where,
                on_error=ollama_error,
            ) as response,
            aclosing(relay_messages(sse_events(response, where), where)) as relayed,
        ):
            async for event in relayed:
                yield event

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse:
        model = body["model"]
        raw, _ = await post_json(
            self._clients.get(endpoint),
            "/api/chat",
            to_ollama_chat(body, model, stream=False),
            headers={"content-type": "application/json"},
            where=f"ollama {endpoint}",
            on_error=ollama_error,
        )
        final = loads(raw, f"ollama {endpoint}")
        if not isinstance(final, dict):
            raise UpstreamError(502, f"ollama {endpoint}: /api/chat answer is not an object")
        if "error" in final:
            raise UpstreamError(502, f"ollama: {final['error']}")
        return from_ollama_chat(final, f"chatcmpl-{uuid.uuid4().hex[:24]}", model)

    async def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        model = body["model"]
        translator = OllamaStreamTranslator(f"chatcmpl-{uuid.uuid4().hex[:24]}", model)
        where = f"ollama {endpoint}"
        async with (
            open_stream(
                self._clients.get(endpoint),
                "/api/chat",
                to_ollama_chat(body, model, stream=True),
                headers={"content-type": "application/json"},
                where=where,
                on_error=ollama_error,
            ) as response,
            aclosing(iter_lines(response, where)) as lines,
        ):
            async for line in lines:
                if not line:
                    continue
                item = loads(line, where)
                if not isinstance(item, dict):
                    raise UpstreamError(
                        502, f"{where}: stream line is not an object", mid_stream=translator.started
                    )
                try:
                    chunks = translator.feed(item)
                except UpstreamError as exc:  # an error line first may still fail over
                    exc.mid_stream = translator.started
                    raise
                for chunk in translator.opening(chunks):
                    yield chunk
                if item.get("done"):
                    return
        raise truncated(where, '"done": true', mid_stream=translator.started)

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse:
        model = body["model"]
        text = body.get("input", "")
        if isinstance(text, list) and text and not isinstance(text[0], str):
            # Token ids ([1, 2] or [[1, 2], [3]]) need the model's tokenizer to become text.
            raise UpstreamError(
                400,
                "ollama: /api/embed takes text only; send strings, not token ids",
                type_="invalid_request_error",
                code="unsupported_input",
                param="input",
                retryable=False,
            )
        raw, _ = await post_json(
            self._clients.get(endpoint),
            "/api/embed",
            {"model": model, "input": text},
            headers={"content-type": "application/json"},
            where=f"ollama {endpoint}",
            on_error=ollama_error,
        )
        result = loads(raw, f"ollama {endpoint}")
        usage = Usage(prompt_tokens=token_count(result.get("prompt_eval_count")))
        data = [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(result.get("embeddings") or [])
        ]
        out = {
            "object": "list",
            "data": data,
            "model": result.get("model") or model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
        return EmbeddingResponse(body=out, usage=usage)

    async def _get(self, endpoint: str, path: str) -> Any:
        where = f"ollama {endpoint}"
        data = await get_json(
            self._clients.get(endpoint), path, headers={}, where=where, on_error=ollama_error
        )
        if not isinstance(data, dict):
            raise UpstreamError(502, f"{where}: {path} answer is not an object")
        return data

    async def list_models(self, endpoint: str) -> list[str]:
        tags = await self._get(endpoint, "/api/tags")
        return [m.get("name") or m.get("model") for m in tags.get("models") or []]

    async def probe(self, endpoint: str) -> Probe:
        """/api/ps is cheap and says which models are loaded (in VRAM) right now."""
        started = time.perf_counter()
        try:
            ps = await self._get(endpoint, "/api/ps")
        except UpstreamError as exc:
            return failed_probe(exc, (time.perf_counter() - started) * 1000)
        return Probe(
            True, (time.perf_counter() - started) * 1000, loaded_models=list(ps.get("models") or [])
        )

    async def aclose(self) -> None:
        await self._clients.aclose()
