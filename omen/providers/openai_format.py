"""The OpenAI chat wire format, as spoken by OpenAI, xAI and Azure OpenAI.

Bodies pass through nearly untouched; what changes: Omen's routing hints (`metadata`) stay
home, streams always ask for usage (so spend is exact even when the client did not ask),
Azure addresses deployments and sends its empty prompt-filter chunk first, which is dropped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Literal

import orjson

from omen.providers.base import (
    JSON,
    ChatResponse,
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

Flavour = Literal["openai", "xai", "azure"]


# Models that take `reasoning_effort`; others refuse the field, so it is left out for them.
_REASONING_MODELS = ("o1", "o3", "o4", "gpt-5", "grok-3-mini", "grok-4")


def _plain_parts(message: JSON) -> JSON:
    """Anthropic-style cache marks on content parts: OpenAI caches prefixes by itself."""
    content = message.get("content")
    if not isinstance(content, list) or not any(
        isinstance(p, dict) and "cache_control" in p for p in content
    ):
        return message
    parts = [
        {k: v for k, v in p.items() if k != "cache_control"} if isinstance(p, dict) else p
        for p in content
    ]
    return {**message, "content": parts}


def upstream_body(body: JSON, *, stream: bool) -> JSON:
    """The client's body as the upstream should see it."""
    payload = {key: value for key, value in body.items() if key != "metadata"}
    if "reasoning_effort" in payload and not str(payload.get("model", "")).startswith(
        _REASONING_MODELS
    ):
        del payload["reasoning_effort"]
    tools = payload.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "cache_control" in t for t in tools):
        payload["tools"] = [
            {k: v for k, v in t.items() if k != "cache_control"} if isinstance(t, dict) else t
            for t in tools
        ]
    messages = payload.get("messages")
    if isinstance(messages, list):
        payload["messages"] = [_plain_parts(m) if isinstance(m, dict) else m for m in messages]
    if stream:
        options = dict(payload.get("stream_options") or {})
        options["include_usage"] = True
        payload["stream"] = True
        payload["stream_options"] = options
    else:
        payload.pop("stream", None)
        payload.pop("stream_options", None)
    return payload


def normalise_xai_usage(usage: JSON | None) -> bool:
    """xAI leaves reasoning tokens out of completion_tokens (but bills them and counts them in
    total_tokens); OpenAI counts them in. Put them in, so spend is priced like everyone's.
    Returns whether the dict was changed (the raw bytes then no longer match)."""
    if not usage:
        return False
    details = usage.get("completion_tokens_details")
    reasoning = token_count(details.get("reasoning_tokens") if isinstance(details, dict) else 0)
    prompt = token_count(usage.get("prompt_tokens"))
    completion = token_count(usage.get("completion_tokens"))
    total = token_count(usage.get("total_tokens"))
    if reasoning and total >= prompt + completion + reasoning:
        usage["completion_tokens"] = completion + reasoning
        return True
    return False


def openai_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """Map an upstream error response to what Omen's client should see."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    param: str | None = None
    if isinstance(error, dict):
        message = str(error.get("message") or f"HTTP {status}")
        param = str(error["param"]) if error.get("param") is not None else None
        code = error.get("code")
        code = str(code) if code is not None else None
        type_ = error.get("type") or "upstream_error"
    else:
        message = str(error) if error else body.decode(errors="replace")[:500] or f"HTTP {status}"
        code, type_ = None, "upstream_error"
    retry_after = parse_retry_after(headers)
    if status in (401, 403):
        # The upstream refused Omen's own credentials: not the client's fault, and another
        # provider may still answer.
        return UpstreamError(
            502,
            f"upstream rejected Omen's credentials ({status}): {message}",
            type_="upstream_auth_error",
            code=code,
            retryable=True,
        )
    if status == 404:
        return UpstreamError(
            404,
            message,
            type_="invalid_request_error",
            code=code or "model_not_found",
            retryable=True,
        )
    if status in (400, 413, 422):
        return UpstreamError(
            status, message, type_=str(type_), code=code, retryable=False, param=param
        )
    return UpstreamError(status, message, type_=str(type_), code=code, retry_after=retry_after)


def responses_usage(usage: JSON | None) -> Usage:
    """The Responses API's usage (input_tokens include the cached ones) as Omen counts it."""
    if not isinstance(usage, dict):
        return Usage()
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    return Usage(
        prompt_tokens=token_count(usage.get("input_tokens")),
        completion_tokens=token_count(usage.get("output_tokens")),
        cached_tokens=token_count(inputs.get("cached_tokens")),
        reasoning_tokens=token_count(outputs.get("reasoning_tokens")),
        cache_write_tokens=token_count(inputs.get("cache_write_tokens")),
    )


def responses_error(event: JSON, where: str) -> UpstreamError:
    """A `response.failed` (or `error`) event as Omen's error, keeping the code agents act on."""
    answer = event.get("response")
    error = answer.get("error") if isinstance(answer, dict) else event.get("error", event)
    if not isinstance(error, dict):
        error = {}
    code = str(error.get("code") or "server_error")
    message = str(error.get("message") or code)
    status = {"rate_limit_exceeded": 429, "context_length_exceeded": 400}.get(code, 502)
    return UpstreamError(
        status,
        f"{where}: {message}",
        type_="invalid_request_error" if status == 400 else "upstream_error",
        code=code,
        retryable=status != 400,
    )


def _finishes(chunk: JSON) -> bool:
    choices = chunk.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                return True
    return False


class OpenAIProvider:
    """Adapter for OpenAI-format upstreams; `endpoint` is the base URL (with /v1 for OpenAI)."""

    def __init__(
        self,
        name: str,
        *,
        flavour: Flavour = "openai",
        api_key: str | None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        api_version: str = "2024-10-21",
        deployments: dict[str, str] | None = None,
        passthrough: frozenset[str] = frozenset({"chat"}),
        upstream: UpstreamSettings | None = None,
    ) -> None:
        self.name = name
        self._passthrough = passthrough
        self.flavour = flavour
        self._api_version = api_version
        self._deployments = deployments or {}
        self._clients = UpstreamClients(
            upstream or UpstreamSettings(timeout=timeout, connect_timeout=connect_timeout)
        )
        self._headers = {"content-type": "application/json"}
        if api_key:
            if flavour == "azure":
                self._headers["api-key"] = api_key
            else:
                self._headers["authorization"] = f"Bearer {api_key}"

    def _route(self, model: str, operation: str) -> tuple[str, dict[str, str] | None]:
        if self.flavour == "azure":
            deployment = self._deployments.get(model, model)
            return (
                f"/openai/deployments/{deployment}/{operation}",
                {"api-version": self._api_version},
            )
        return f"/{operation}", None

    # --- passthrough: a Responses (or chat) client's body as sent ----------------------

    def speaks(self, wire: str, model: str) -> bool:
        return wire in self._passthrough

    def _responses_path(self, suffix: str = "") -> str:
        # Azure serves the Responses API on its v1 surface, not per deployment.
        return ("/openai/v1/responses" if self.flavour == "azure" else "/responses") + suffix

    async def native(self, endpoint: str, call: NativeCall) -> ChatResponse:
        if call.wire == "chat":
            return await self.chat(endpoint, call.body)
        where = f"{self.name} {endpoint}"
        raw, _ = await post_json(
            self._clients.get(endpoint),
            self._responses_path(),
            call.body,
            headers=self._headers,
            where=where,
            on_error=openai_error,
        )
        data = loads(raw, where)
        if not isinstance(data, dict) or data.get("object") != "response":
            raise UpstreamError(502, f"{where}: upstream answer is not a response")
        return ChatResponse(body=data, usage=responses_usage(data.get("usage")), raw=raw)

    async def native_stream(self, endpoint: str, call: NativeCall) -> AsyncIterator[Relayed]:
        """The Responses event stream as it comes; usage from its final response event."""
        where = f"{self.name} {endpoint}"
        started = False
        async with (
            open_stream(
                self._clients.get(endpoint),
                self._responses_path(),
                call.body,
                headers=self._headers,
                where=where,
                on_error=openai_error,
            ) as response,
            aclosing(sse_events(response, where)) as events,
        ):
            async for data in events:
                event = sse_json(data, where)
                kind = event.get("type")
                if kind in ("response.failed", "error"):
                    error = responses_error(event, where)
                    if not started:
                        raise error  # nothing relayed yet: another candidate may answer
                    yield Relayed(data)
                    error.delivered = True
                    raise error
                relayed = Relayed(data)
                answer = event.get("response")
                if isinstance(answer, dict):
                    relayed.model = answer.get("model")
                    if answer.get("usage"):
                        relayed.usage = responses_usage(answer["usage"])
                yield relayed
                started = True
                if kind in ("response.completed", "response.incomplete"):
                    return
        raise truncated(where, "response.completed", mid_stream=started)

    async def count_tokens(self, endpoint: str, call: NativeCall) -> int:
        where = f"{self.name} {endpoint}"
        body = {k: v for k, v in call.body.items() if k not in ("stream", "store", "include")}
        raw, _ = await post_json(
            self._clients.get(endpoint),
            self._responses_path("/input_tokens"),
            body,
            headers=self._headers,
            where=where,
            on_error=openai_error,
        )
        return input_tokens(raw, where)

    # --- translation target: chat completions -----------------------------------------

    def uncarried(self, body: JSON, model: str) -> list[str]:
        """What `upstream_body` leaves out for this model (named in the decision)."""
        if body.get("reasoning_effort") and not model.startswith(_REASONING_MODELS):
            return ["reasoning_effort"]
        return []

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse:
        path, params = self._route(body["model"], "chat/completions")
        raw, _ = await post_json(
            self._clients.get(endpoint),
            path,
            upstream_body(body, stream=False),
            headers=self._headers,
            params=params,
            where=f"{self.name} {endpoint}",
            on_error=openai_error,
        )
        data = loads(raw, f"{self.name} {endpoint}")
        if not isinstance(data, dict) or "choices" not in data:
            raise UpstreamError(502, f"{self.name}: upstream answer has no choices")
        changed = self.flavour == "xai" and normalise_xai_usage(data.get("usage"))
        return ChatResponse(
            body=data,
            usage=Usage.from_openai(data.get("usage")),
            raw=None if changed else raw,  # a changed body is re-serialised
        )

    async def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        where = f"{self.name} {endpoint}"
        path, params = self._route(body["model"], "chat/completions")
        started = finished = False
        async with (
            open_stream(
                self._clients.get(endpoint),
                path,
                upstream_body(body, stream=True),
                headers=self._headers,
                params=params,
                where=where,
                on_error=openai_error,
            ) as response,
            aclosing(iter_lines(response, where)) as lines,
        ):
            async for line in lines:
                if not line.startswith(b"data:"):
                    continue  # blank separators, comments, `event:` lines
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = loads(data, where)
                if not isinstance(chunk, dict):
                    raise UpstreamError(
                        502, f"{where}: stream chunk is not an object", mid_stream=started
                    )
                if "error" in chunk:
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise UpstreamError(502, f"{where}: {message}", mid_stream=True)
                if not chunk.get("choices") and not chunk.get("usage"):
                    continue  # Azure's prompt-filter preamble
                if self.flavour == "xai" and chunk.get("usage"):
                    normalise_xai_usage(chunk["usage"])
                if not finished:
                    finished = _finishes(chunk)
                yield chunk
                started = True
        # Some OpenAI-compatible servers omit [DONE]: a finish_reason is what completes a
        # stream; without one it was cut short, [DONE] or not.
        if not finished:
            raise truncated(where, "a finish_reason", mid_stream=started)

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse:
        path, params = self._route(body["model"], "embeddings")
        raw, _ = await post_json(
            self._clients.get(endpoint),
            path,
            {key: value for key, value in body.items() if key != "metadata"},
            headers=self._headers,
            params=params,
            where=f"{self.name} {endpoint}",
            on_error=openai_error,
        )
        data = loads(raw, f"{self.name} {endpoint}")
        if not isinstance(data, dict):
            raise UpstreamError(502, f"{self.name} {endpoint}: embeddings answer is not an object")
        return EmbeddingResponse(body=data, usage=Usage.from_openai(data.get("usage")))

    async def list_models(self, endpoint: str) -> list[str]:
        if self.flavour == "azure":
            return list(self._deployments)
        data = await get_json(
            self._clients.get(endpoint),
            "/models",
            headers=self._headers,
            where=f"{self.name} {endpoint}",
            on_error=openai_error,
        )
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise UpstreamError(502, f"{self.name} {endpoint}: model list has no data")
        return [m["id"] for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def probe(self, endpoint: str) -> Probe:
        """GET /models costs no tokens and proves the key and the network path."""
        started = time.perf_counter()
        try:
            await self.list_models(endpoint)
        except UpstreamError as exc:
            return failed_probe(exc, (time.perf_counter() - started) * 1000)
        return Probe(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._clients.aclose()
