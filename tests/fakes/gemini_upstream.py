"""A fake Google Gemini API (v1beta, REST) as a raw ASGI app, shaped like
shared/reference/PROVIDER_WIRE_FORMATS.md §3 and the vercel/ai recordings it cites.

Routes: ``POST /v1beta/models/{model}:generateContent``,
``POST /v1beta/models/{model}:streamGenerateContent`` (``?alt=sse`` for server-sent events,
otherwise one JSON array), ``POST /v1beta/models/{model}:batchEmbedContents``,
``GET /v1beta/models`` (paged) and ``GET /v1beta/models/{model}``.

The quirks it keeps: a function call finishes with ``STOP``, every stream event carries the
running ``usageMetadata`` and only the last has ``finishReason``, streams end without
``[DONE]``, a wrong key is a 400 ``API_KEY_INVALID``, and a 429 says when to retry in
``RetryInfo.retryDelay``. ``GeminiKnobs`` holds what the shared Script cannot say (event
separators, thinking tokens, cached tokens, a blocked prompt).
"""

from __future__ import annotations

import asyncio
import random
import string
from dataclasses import dataclass
from typing import Any

import orjson

from tests.fakes import asgi, content
from tests.fakes.asgi import ASGIApp, Receive, Scope, Send
from tests.fakes.behaviour import (
    CutStream,
    Delay,
    ErrorReply,
    MidStreamError,
    Reply,
    TextReply,
    ToolCallReply,
)
from tests.fakes.state import FakeState

PREFIX = "/v1beta/models"
# Shaped like the recorded thoughtSignature values (opaque base64).
THOUGHT_SIGNATURE = "EqUCCqICAb4+9vsh8Pd5taZVoPzSvjWWwzBrvhEQWBLCGa7IdY8FBMm7Z6dC"
INVALID_KEY_MESSAGE = "API key not valid. Please pass a valid API key."
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
RETRY_DELAY = "34.4s"
IMAGE_TOKENS = 258  # what Gemini counts for one image up to 384x384

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
_REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "tools",
    "toolConfig",
    "safetySettings",
    "cachedContent",
}
_CONFIG_FIELDS = {
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "presencePenalty",
    "frequencyPenalty",
    "seed",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
}
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class GeminiKnobs:
    """Gemini-only behaviour a test may switch; read at each request.

    ``crlf`` picks ``\\r\\n\\r\\n`` (else ``\\n\\n``) between stream events.
    ``thoughts_tokens`` are reported as ``thoughtsTokenCount`` (and add a thoughtSignature);
    ``thought_text`` is sent first as a ``thought: true`` part, as the real API does only when
    the request's ``generationConfig.thinkingConfig.includeThoughts`` is true.
    ``block_reason`` answers every request with ``promptFeedback.blockReason`` and no
    candidates.
    """

    crlf: bool = True
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    thought_text: str | None = None
    block_reason: str | None = None

    def reset(self) -> None:
        """Back to a plain Gemini (the app keeps this object, so it changes in place)."""
        self.__dict__.update(GeminiKnobs().__dict__)


def make_gemini_app(fake: FakeState, knobs: GeminiKnobs | None = None) -> ASGIApp:
    """An ASGI app that answers like generativelanguage.googleapis.com, driven by ``fake``."""
    settings = knobs if knobs is not None else GeminiKnobs()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await asgi.serve_lifespan(receive, send)
            return
        body = await asgi.read_body(receive)
        payload = asgi.parse_json(body)
        asgi.remember(fake, scope, payload)
        if not await _authorised(fake, scope, send):
            return
        method, path = scope["method"], scope["path"]
        query = asgi.query_params(scope)
        name, _, verb = path.removeprefix(PREFIX + "/").partition(":")
        if method == "GET" and path == PREFIX:
            await _list_models(fake, send, query)
        elif method == "GET" and path.startswith(PREFIX + "/") and not verb:
            await _get_model(fake, send, name)
        elif method == "POST" and path.startswith(PREFIX + "/") and verb:
            await _inference(fake, settings, send, payload, name, verb, query)
        else:
            await _send_google_error(send, 404, f"Method not found: {method} {path}")

    return app


# --- shapes ----------------------------------------------------------------------------


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Any:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details is not None:
        error["details"] = details
    return {"error": error}


def default_error(status: int, model: str) -> Any:
    """The body Gemini sends for ``status`` (from the reference's recorded errors)."""
    if status == 400:
        return error_body(400, "Request contains an invalid argument.")
    if status == 404:
        return error_body(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            "generateContent. Call ListModels to see the list of available models and their "
            "supported methods.",
        )
    if status == 429:
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": RETRY_DELAY},
        ]
        return error_body(429, "You exceeded your current quota, please check your plan.", details)
    if status == 500:
        return error_body(
            500,
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )
    if status == 503:
        return error_body(503, "The model is overloaded. Please try again later.")
    if status == 504:
        return error_body(504, "Deadline expired before operation could complete.")
    return error_body(status, f"HTTP {status}")


def invalid_key_body() -> Any:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": INVALID_KEY_MESSAGE,
        },
    ]
    return error_body(400, INVALID_KEY_MESSAGE, details)


def _response_id() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=23))


def _model_entry(model: str) -> dict[str, Any]:
    embedding = "embed" in model
    methods = ["embedContent"] if embedding else ["generateContent", "countTokens"]
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model.replace("-", " ").title(),
        "inputTokenLimit": 2048 if embedding else 1048576,
        "outputTokenLimit": 1 if embedding else 8192,
        "supportedGenerationMethods": methods,
    }


def _usage(prompt: int, candidates: int, knobs: GeminiKnobs) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + knobs.thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if knobs.cached_tokens:
        usage["cachedContentTokenCount"] = knobs.cached_tokens
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": knobs.cached_tokens}]
    if knobs.thoughts_tokens:
        usage["thoughtsTokenCount"] = knobs.thoughts_tokens
    return usage


def _response(
    model: str, response_id: str, candidates: list[dict[str, Any]], usage: dict[str, Any]
) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": candidates} if candidates else {}
    body.update(usageMetadata=usage, modelVersion=model, responseId=response_id)
    return body


def _candidates(
    count: int, parts: list[dict[str, Any]], finish: str | None
) -> list[dict[str, Any]]:
    out = []
    for index in range(count):
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = index
        out.append(candidate)
    return out


def _call_parts(reply: ToolCallReply, knobs: GeminiKnobs) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for call in reply.calls:
        function: dict[str, Any] = {"name": call.name, "args": call.arguments}
        if call.id is not None:
            function["id"] = call.id
        parts.append({"functionCall": function})
    if parts and knobs.thoughts_tokens:
        parts[0]["thoughtSignature"] = THOUGHT_SIGNATURE
    return parts


def _closing_part(knobs: GeminiKnobs) -> dict[str, Any]:
    # The recorded streams end with an empty text part beside the finishReason.
    part: dict[str, Any] = {"text": ""}
    if knobs.thoughts_tokens:
        part["thoughtSignature"] = THOUGHT_SIGNATURE
    return part


# --- checks ----------------------------------------------------------------------------


async def _authorised(fake: FakeState, scope: Scope, send: Send) -> bool:
    if fake.api_key is None:
        return True
    presented = asgi.header(scope, b"x-goog-api-key") or asgi.query_params(scope).get("key")
    if presented == fake.api_key:
        return True
    if presented is None:
        await asgi.send_json(send, 403, error_body(403, NO_KEY_MESSAGE))
    else:
        await asgi.send_json(send, 400, invalid_key_body())
    return False


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def prompt_tokens(payload: dict[str, Any]) -> int:
    """Words of every text part, a fixed count per image, a few framing tokens per turn."""
    turns = list(payload.get("contents") or [])
    if isinstance(payload.get("systemInstruction"), dict):
        turns.append(payload["systemInstruction"])
    total = 1
    for turn in turns:
        total += 3
        for part in turn.get("parts") or []:
            if "inlineData" in part:
                total += IMAGE_TOKENS
            elif "text" in part:
                total += _words(part["text"])
            else:
                total += _words(orjson.dumps(part).decode().replace(",", " "))
    return total


def request_problem(payload: Any) -> str | None:
    """What the real API would refuse in a generateContent body, as its message says it."""
    if not isinstance(payload, dict):
        return "Invalid JSON payload received."
    for key in payload:
        if key not in _REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    config = payload.get("generationConfig") or {}
    for key in config:
        if key not in _CONFIG_FIELDS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config': Cannot find field."
            )
    if "responseSchema" in config and "responseJsonSchema" in config:
        return "responseSchema and responseJsonSchema cannot both be set."
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    calls_before = 0
    for index, turn in enumerate(contents):
        role = turn.get("role")
        if role not in ("user", "model"):
            return f"Please use a valid role: user, model. (contents[{index}].role = {role!r})"
        parts = turn.get("parts")
        if not isinstance(parts, list) or not parts:
            return (
                f"* GenerateContentRequest.contents[{index}].parts: "
                "contents.parts must not be empty.\n"
            )
        responses = sum(1 for p in parts if "functionResponse" in p)
        if responses and responses != calls_before:
            return (
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
        calls_before = sum(1 for p in parts if "functionCall" in p)
    return None


# --- routes ----------------------------------------------------------------------------


async def _send_google_error(send: Send, status: int, message: str) -> None:
    await asgi.send_json(send, status, error_body(status, message))


async def _send_error(send: Send, reply: ErrorReply, model: str) -> None:
    extra = asgi.encode_headers(reply.headers)
    if isinstance(reply.body, str):
        await asgi.send_text(send, reply.status, reply.body, extra)
    else:
        body = reply.body if reply.body is not None else default_error(reply.status, model)
        await asgi.send_json(send, reply.status, body, extra)


async def _list_models(fake: FakeState, send: Send, query: dict[str, str]) -> None:
    size = int(query.get("pageSize") or 50)
    start = int(query.get("pageToken") or 0)
    page: dict[str, Any] = {"models": [_model_entry(m) for m in fake.models[start : start + size]]}
    if start + size < len(fake.models):
        page["nextPageToken"] = str(start + size)
    await asgi.send_json(send, 200, page)


async def _get_model(fake: FakeState, send: Send, name: str) -> None:
    if fake.models and name not in fake.models:
        await asgi.send_json(send, 404, default_error(404, name))
    else:
        await asgi.send_json(send, 200, _model_entry(name))


async def _inference(
    fake: FakeState,
    knobs: GeminiKnobs,
    send: Send,
    payload: Any,
    model: str,
    verb: str,
    query: dict[str, str],
) -> None:
    if verb not in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
        await _send_google_error(send, 404, f"Method not found: {verb}")
        return
    if fake.models and model not in fake.models:
        await asgi.send_json(send, 404, default_error(404, model))
        return
    fake.request_started()
    try:
        reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            await _send_error(send, reply, model)
        elif verb == "batchEmbedContents":
            await _embed(send, payload, model)
        else:
            problem = request_problem(payload)
            if problem is not None:
                await _send_google_error(send, 400, problem)
            elif verb == "generateContent":
                await _generate(knobs, send, payload, model, reply)
            else:
                await _stream(knobs, send, payload, model, reply, sse=query.get("alt") == "sse")
    finally:
        fake.request_finished()


def _text_plan(reply: TextReply, payload: dict[str, Any]) -> tuple[list[str], str, int, int]:
    pieces = content.text_pieces(reply.text)
    finish = _FINISH.get(reply.finish_reason, "STOP")
    limit = (payload.get("generationConfig") or {}).get("maxOutputTokens")
    if isinstance(limit, int) and 0 < limit < len(pieces):
        pieces, finish = pieces[:limit], "MAX_TOKENS"
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_tokens(payload)
    completion = reply.completion_tokens if reply.completion_tokens is not None else len(pieces)
    return pieces, finish, prompt, completion


def _tool_plan(reply: ToolCallReply, payload: dict[str, Any]) -> tuple[int, int]:
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_tokens(payload)
    completion = reply.completion_tokens
    if completion is None:
        completion = sum(
            3 + len(content.argument_pieces(orjson.dumps(c.arguments).decode()))
            for c in reply.calls
        )
    return prompt, completion


def _blocked(knobs: GeminiKnobs, payload: dict[str, Any], model: str) -> dict[str, Any]:
    prompt = prompt_tokens(payload)
    usage = {
        "promptTokenCount": prompt,
        "totalTokenCount": prompt,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    body: dict[str, Any] = {"promptFeedback": {"blockReason": knobs.block_reason}}
    body.update(usageMetadata=usage, modelVersion=model, responseId=_response_id())
    return body


def _thoughts(knobs: GeminiKnobs, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The thought summary part, sent only to a request that asked for thoughts."""
    thinking = (payload.get("generationConfig") or {}).get("thinkingConfig") or {}
    if not knobs.thought_text or thinking.get("includeThoughts") is not True:
        return []
    return [{"text": knobs.thought_text, "thought": True}]


async def _generate(
    knobs: GeminiKnobs, send: Send, payload: dict[str, Any], model: str, reply: Reply
) -> None:
    count = (payload.get("generationConfig") or {}).get("candidateCount") or 1
    if knobs.block_reason:
        await asgi.send_json(send, 200, _blocked(knobs, payload, model))
        return
    if isinstance(reply, MidStreamError):
        await asgi.send_json(send, 500, default_error(500, model))
        return
    thought = _thoughts(knobs, payload)
    if isinstance(reply, ToolCallReply):
        prompt, completion = _tool_plan(reply, payload)
        parts, finish = thought + _call_parts(reply, knobs), "STOP"
    else:
        text_reply = reply if isinstance(reply, TextReply) else TextReply(text=_cut_text(reply))
        pieces, finish, prompt, completion = _text_plan(text_reply, payload)
        text_part: dict[str, Any] = {"text": "".join(pieces)}
        if knobs.thoughts_tokens:
            text_part["thoughtSignature"] = THOUGHT_SIGNATURE
        parts = [*thought, text_part]
    body = _response(
        model, _response_id(), _candidates(count, parts, finish), _usage(prompt, completion, knobs)
    )
    if isinstance(reply, CutStream):
        await asgi.send_partial_then_drop(send, orjson.dumps(body))  # raises DropConnection
    await asgi.send_json(send, 200, body)


def _cut_text(reply: Reply) -> str:
    return reply.text if isinstance(reply, CutStream | MidStreamError) else ""


class _EventWriter:
    """Frames events as server-sent events (either separator) or as one JSON array."""

    def __init__(self, send: Send, sse: bool, crlf: bool) -> None:
        self.send = send
        self.sse = sse
        self.separator = b"\r\n\r\n" if crlf else b"\n\n"
        self.sent = 0

    async def start(self) -> None:
        await asgi.start_stream(self.send, asgi.SSE if self.sse else asgi.JSON)

    async def event(self, event: dict[str, Any]) -> None:
        data = orjson.dumps(event)
        if self.sse:
            frame = b"data: " + data + self.separator
        else:
            frame = (b"[" if self.sent == 0 else b",\r\n") + data
        self.sent += 1
        await asgi.stream_part(self.send, frame)

    async def end(self) -> None:
        if not self.sse:
            await asgi.stream_part(self.send, b"]" if self.sent else b"[]")
        await asgi.end_stream(self.send)


async def _stream(
    knobs: GeminiKnobs,
    send: Send,
    payload: dict[str, Any],
    model: str,
    reply: Reply,
    *,
    sse: bool,
) -> None:
    count = (payload.get("generationConfig") or {}).get("candidateCount") or 1
    response_id = _response_id()
    writer = _EventWriter(send, sse, knobs.crlf)
    await writer.start()
    if knobs.block_reason:
        await writer.event(_blocked(knobs, payload, model))
        await writer.end()
        return

    def event(parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any]) -> Any:
        return _response(model, response_id, _candidates(count, parts, finish), usage)

    thought = _thoughts(knobs, payload)
    if thought:
        await writer.event(event(thought, None, _usage(prompt_tokens(payload), 0, knobs)))

    if isinstance(reply, ToolCallReply):
        prompt, completion = _tool_plan(reply, payload)
        usage = _usage(prompt, completion, knobs)
        await writer.event(event(_call_parts(reply, knobs), None, usage))
        await writer.event(event([_closing_part(knobs)], "STOP", usage))
        await writer.end()
        return

    if isinstance(reply, CutStream | MidStreamError):
        pieces = content.text_pieces(reply.text)[: reply.after_chunks]
        finish, prompt, completion, delay = "STOP", prompt_tokens(payload), len(pieces), 0.0
    else:
        assert isinstance(reply, TextReply)
        pieces, finish, prompt, completion = _text_plan(reply, payload)
        delay = reply.chunk_delay
    for index, piece in enumerate(pieces):
        if delay:
            await asyncio.sleep(delay)
        running = min(index + 1, completion)
        await writer.event(event([{"text": piece}], None, _usage(prompt, running, knobs)))
    if isinstance(reply, CutStream):
        raise asgi.DropConnection
    if isinstance(reply, MidStreamError):
        await writer.event(error_body(500, reply.message))
        await writer.end()
        return
    await writer.event(event([_closing_part(knobs)], finish, _usage(prompt, completion, knobs)))
    await writer.end()


async def _embed(send: Send, payload: Any, model: str) -> None:
    requests = payload.get("requests") if isinstance(payload, dict) else None
    if not isinstance(requests, list) or not requests:
        await _send_google_error(send, 400, "* BatchEmbedContentsRequest.requests: required\n")
        return
    if len(requests) > 100:
        message = "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
        await _send_google_error(send, 400, message)
        return
    embeddings = []
    for index, request in enumerate(requests):
        if request.get("model") != f"models/{model}":
            message = (
                f"* BatchEmbedContentsRequest.requests[{index}].model: model must be "
                f"models/{model}, as in the URL\n"
            )
            await _send_google_error(send, 400, message)
            return
        text = " ".join(
            p.get("text", "") for p in (request.get("content") or {}).get("parts") or []
        )
        dimensions = request.get("outputDimensionality")
        dimensions = dimensions if isinstance(dimensions, int) and dimensions > 0 else 8
        embeddings.append({"values": content.embedding_for(text, dimensions)})
    await asgi.send_json(send, 200, {"embeddings": embeddings})
