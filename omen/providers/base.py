"""The seam every provider adapter sits behind: one interface, OpenAI-shaped data in and out.

Adapters translate an OpenAI chat body to their wire format and back, and own the transport to
one upstream. They never decide where a request goes; the gateway hands them an endpoint.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = dict[str, Any]

# Statuses after which another candidate may be tried (nothing reached the client yet).
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


_MAX_TOKENS = 1_000_000_000  # more than any request has: a larger count is a broken upstream


def token_count(value: Any) -> int:
    """An upstream's token count as Omen trusts it: a non-negative integer (else 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if value != value or value < 0:  # NaN, negative
        return 0
    return int(min(value, _MAX_TOKENS))


def as_object(value: Any) -> JSON:
    """An upstream field that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


@dataclass(slots=True)
class Usage:
    """Token counts as the upstream reported them (never estimated)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # of prompt_tokens, written to the prompt cache

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_openai(self) -> JSON:
        usage: JSON = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.cache_write_tokens:
            usage["cache_creation_input_tokens"] = self.cache_write_tokens
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        prompt_details = as_object(usage.get("prompt_tokens_details"))
        completion_details = as_object(usage.get("completion_tokens_details"))
        return cls(
            prompt_tokens=token_count(usage.get("prompt_tokens")),
            completion_tokens=token_count(usage.get("completion_tokens")),
            cached_tokens=token_count(prompt_details.get("cached_tokens")),
            reasoning_tokens=token_count(completion_details.get("reasoning_tokens")),
            cache_write_tokens=token_count(usage.get("cache_creation_input_tokens")),
        )


@dataclass(slots=True)
class ChatResponse:
    """A complete OpenAI `chat.completion` body and the usage parsed from it."""

    body: JSON
    usage: Usage
    raw: bytes | None = None  # the upstream bytes, when they can be forwarded unchanged


@dataclass(slots=True)
class NativeCall:
    """A request passed through in the client's own wire format (formats match).

    `wire` is the inbound format ("messages" | "responses" | "chat"); `body` is the client's
    body exactly as sent except `model`; `headers` are the client headers the upstream must
    see too (`anthropic-beta`, `anthropic-version`).
    """

    wire: str
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Relayed:
    """One upstream stream event, forwarded to the client as the upstream framed it.

    `usage` is the running usage when this event carried some (the last one wins), `model`
    the concrete model when this event named it.
    """

    data: bytes
    usage: Usage | None = None
    model: str | None = None


@dataclass(slots=True)
class EmbeddingResponse:
    body: JSON
    usage: Usage


@dataclass(slots=True)
class Probe:
    """What one health probe learnt about an endpoint."""

    healthy: bool
    latency_ms: float
    error: str | None = None
    loaded_models: list[JSON] = field(default_factory=list)
    models: list[str] | None = None


def failed_probe(error: UpstreamError, latency_ms: float) -> Probe:
    """A probe the upstream refused. 404/405 means it has no such listing (a proxy, a
    deployment-only endpoint): "probe unsupported", not unhealthy; real traffic decides."""
    if error.status in (404, 405):
        return Probe(True, latency_ms)
    return Probe(False, latency_ms, error=error.message)


class ChunkEnvelope:
    """The OpenAI chunk every stream translator fills in: one id, one model, one timestamp."""

    fingerprint: str | None = None

    def __init__(self, completion_id: str, model: str) -> None:
        self.completion_id = completion_id
        self.model = model
        self.created = int(time.time())
        self.started = False  # whether the role delta (and so a first byte) has gone out

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        chunk: JSON = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        if self.fingerprint:
            chunk["system_fingerprint"] = self.fingerprint
        chunk["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return chunk

    def first(self) -> JSON:
        """The role delta OpenAI streams open with."""
        return self._chunk({"role": "assistant", "content": "", "refusal": None})

    def opening(self, chunks: list[JSON]) -> list[JSON]:
        """One upstream event's chunks, with the role delta in front of the first event's.

        The role delta waits for the first real event, so an error that arrives first is
        still "before the first byte" and the request may fail over.
        """
        if self.started:
            return chunks
        self.started = True
        return [self.first(), *chunks]


class UpstreamError(Exception):
    """An upstream failed; carries what the client should see in OpenAI's error shape.

    `retryable` says whether another candidate may be tried: connection errors, timeouts,
    429 and 5xx are; a 400 about the request itself is not (every upstream would refuse it).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "upstream_error",
        code: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        mid_stream: bool = False,
        param: str | None = None,
        delivered: bool = False,
    ) -> None:
        super().__init__(message)
        self.param = param
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.retryable = status in RETRYABLE_STATUSES if retryable is None else retryable
        self.retry_after = retry_after
        self.mid_stream = mid_stream
        # A passed-through stream already relayed this error to the client in its own format.
        self.delivered = delivered

    def __repr__(self) -> str:
        return f"UpstreamError({self.status}, {self.message!r})"


class Provider(Protocol):
    """One provider's adapter. `endpoint` is the base URL of the upstream to use."""

    name: str

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse: ...

    def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        """Yield OpenAI `chat.completion.chunk` dicts; the last one carries `usage`.

        Raises UpstreamError before the first chunk for an HTTP error, and with
        `mid_stream=True` when the upstream fails after chunks were yielded.
        """
        ...

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse: ...

    async def list_models(self, endpoint: str) -> list[str]: ...

    async def probe(self, endpoint: str) -> Probe: ...

    async def aclose(self) -> None: ...


class NativeProvider(Provider, Protocol):
    """An adapter that can also pass requests through in some client wire formats.

    `native(endpoint, call)` returns the upstream's answer as a ChatResponse whose `body` is
    the upstream's own JSON (in `call.wire`'s shape), `raw` its bytes and `usage` read from
    it; `native_stream` yields `Relayed` events. Errors are UpstreamErrors, as for `chat`.
    """

    def speaks(self, wire: str, model: str) -> bool: ...

    async def native(self, endpoint: str, call: NativeCall) -> ChatResponse: ...

    def native_stream(self, endpoint: str, call: NativeCall) -> AsyncIterator[Relayed]: ...
