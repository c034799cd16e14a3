"""A fake Anthropic Messages API as a raw ASGI app, shaped like
shared/reference/PROVIDER_WIRE_FORMATS.md §2.

Routes: ``POST /v1/messages`` (JSON, or SSE events when ``stream`` is true),
``POST /v1/messages/count_tokens`` and ``GET /v1/models`` (paged by ``limit``/``after_id``).
What each message request gets is decided by ``fake.script``; prompt-cache reads and writes
come from a ``PromptCache``; a request with ``thinking`` on gets a signed thinking block first
(``Thinking``), and a thinking block sent back with a signature this fake never issued is
refused, as the real API refuses a re-serialised one.

Quirks reproduced: ``max_tokens`` and ``anthropic-version`` are required, ``system`` is not a
role, a ``ping`` follows ``message_start`` and sits between tool-argument deltas, the first
``input_json_delta`` is empty, ``message_delta.usage.output_tokens`` is cumulative (and repeats
the input counts), errors are ``{"type":"error","error":{…},"request_id"}``, 529 is
``overloaded_error``, and a stream can fail after its 200 with ``event: error``. A ``system``
message is refused first in ``messages`` but accepted later in the conversation (Claude Code
sends one there, shared/reference/CODING_AGENTS.md).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.fakes import asgi, content
from tests.fakes.asgi import ASGIApp, Headers, Receive, Scope, Send
from tests.fakes.behaviour import (
    DEFAULT_ERROR_MESSAGE,
    CutStream,
    Delay,
    ErrorReply,
    MidStreamError,
    Reply,
    TextReply,
    ToolCallReply,
)
from tests.fakes.state import FakeState

_request_ids = itertools.count(1)

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    400: "messages: Input should be a valid list",
    401: "invalid x-api-key",
    402: "Your credit balance is too low to access the Anthropic API.",
    403: "Your API key does not have permission to use the specified resource.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed the rate limit for your organization of 50 requests per "
    "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    500: "Internal server error",
    504: "Request timed out",
    529: "Overloaded",
}
RETRY_AFTER_SECONDS = "7"
# OpenAI-shaped TextReply.finish_reason → Anthropic stop_reason; anything else is sent as is.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}


@dataclass
class PromptCache:
    """Prompt-cache tokens the fake reports for every message from now on.

    The counts are carved out of the prompt estimate (or ``prompt_tokens``), so with
    ``TextReply(prompt_tokens=100)`` and ``read_tokens=60`` the fake reports
    ``input_tokens=40, cache_read_input_tokens=60``.
    """

    read_tokens: int = 0
    creation_tokens: int = 0


@dataclass
class Thinking:
    """The thinking block a reply opens with when the request has ``thinking`` on.

    ``text`` is what ``thinking_delta`` carries (nothing when the request asks for
    ``display: "omitted"``). ``signatures`` are the ones issued, oldest first: a later request
    whose assistant thinking block carries any other signature gets the real API's 400.
    """

    text: str = "The user wants a short answer; I will give it."
    signatures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def sign(self) -> str:
        # Opaque like the real ones: base64 of bytes the client can only hand back unchanged.
        signature = "Eu" + base64.b64encode(os.urandom(96)).decode()
        with self._lock:
            self.signatures.append(signature)
        return signature

    def issued(self, signature: object) -> bool:
        with self._lock:
            return signature in self.signatures


def make_anthropic_app(
    fake: FakeState, cache: PromptCache | None = None, thinking: Thinking | None = None
) -> ASGIApp:
    """An ASGI app that answers like api.anthropic.com, driven by ``fake``."""
    prompt_cache = cache if cache is not None else PromptCache()
    signer = thinking if thinking is not None else Thinking()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await asgi.serve_lifespan(receive, send)
            return
        body = await asgi.read_body(receive)
        payload = asgi.parse_json(body)
        asgi.remember(fake, scope, payload)
        method, path = scope["method"], scope["path"]
        if not await _authorised(fake, scope, send):
            return
        if method == "POST" and path == "/v1/messages":
            await _inference(fake, _Answer(prompt_cache, signer), scope, send, payload)
        elif method == "POST" and path == "/v1/messages/count_tokens":
            await _count_tokens(scope, send, payload)
        elif method == "GET" and path == "/v1/models":
            await asgi.send_json(send, 200, _models_page(fake, asgi.query_params(scope)))
        else:
            await _send_error(send, 404, "not_found_error", "Not Found")

    return app


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": f"req_011CU{content.random_alnum(19)}",
    }


async def _send_error(
    send: Send, status: int, error_type: str, message: str, headers: Headers | None = None
) -> None:
    await asgi.send_json(send, status, error_body(error_type, message), headers)


async def _authorised(fake: FakeState, scope: Scope, send: Send) -> bool:
    if fake.api_key is None:
        return True
    presented = asgi.header(scope, b"x-api-key")
    bearer = asgi.header(scope, b"authorization")
    if presented is None and bearer is not None and bearer[:7].lower() == "bearer ":
        presented = bearer[7:]
    if presented == fake.api_key:
        return True
    message = "x-api-key header is required" if presented is None else "invalid x-api-key"
    await _send_error(send, 401, "authentication_error", message)
    return False


def _models_page(fake: FakeState, query: dict[str, str]) -> dict[str, Any]:
    try:
        limit = max(1, min(1000, int(query.get("limit", "20"))))
    except ValueError:
        limit = 20
    ids = list(fake.models)
    after = query.get("after_id")
    start = ids.index(after) + 1 if after in ids else 0
    page = ids[start : start + limit]
    data = [
        {
            "type": "model",
            "id": model,
            "display_name": model.replace("-", " ").title(),
            "created_at": "2025-05-22T00:00:00Z",
        }
        for model in page
    ]
    return {
        "data": data,
        "has_more": start + limit < len(ids),
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }


def _invalid(payload: Any, signer: Thinking | None = None) -> str | None:
    """The message of the 400 the real API would send for this body, if any (``signer``:
    a message request, whose thinking signatures are checked; count_tokens passes none)."""
    if not isinstance(payload, dict):
        return "Input should be a valid dictionary"
    if not isinstance(payload.get("model"), str):
        return "model: Field required"
    if signer is not None and not isinstance(payload.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return "messages: Field required"
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system" and index > 0:
            continue
        if role not in ("user", "assistant"):
            return (
                f'messages.{index}.role: Input should be "user" or "assistant"'
                if role != "system"
                else 'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        unanswered = _tool_results_without_a_call(messages, index)
        if unanswered:
            return (
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {unanswered}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        forged = _forged_signature(message, signer) if signer is not None else None
        if forged is not None:
            return f"messages.{index}.content.{forged}: Invalid `signature` in `thinking` block"
    temperature = payload.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    return None


def _forged_signature(message: dict[str, Any], signer: Thinking) -> int | None:
    """The index of an assistant thinking block whose signature this fake did not issue."""
    blocks = message.get("content")
    if message.get("role") != "assistant" or not isinstance(blocks, list):
        return None
    for position, block in enumerate(blocks):
        thought = isinstance(block, dict) and block.get("type") == "thinking"
        if thought and not signer.issued(block.get("signature")):
            return position
    return None


def _tool_results_without_a_call(messages: list[Any], index: int) -> str | None:
    blocks = messages[index].get("content")
    if not isinstance(blocks, list):
        return None
    results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
    if not results:
        return None
    previous = _previous_turn(messages, index)
    calls = {b.get("id") for b in previous if b.get("type") == "tool_use"} if previous else set()
    missing = [r for r in results if r not in calls]
    return missing[0] if missing else None


def _previous_turn(messages: list[Any], index: int) -> Any:
    """The content of the user/assistant message before ``index`` (system messages aside)."""
    for message in reversed(messages[:index]):
        if isinstance(message, dict) and message.get("role") != "system":
            return message.get("content")
    return None


@dataclass
class _Answer:
    """What shapes every answer beyond the script: cache usage and thinking signatures."""

    cache: PromptCache
    signer: Thinking


async def _count_tokens(scope: Scope, send: Send, payload: Any) -> None:
    if asgi.header(scope, b"anthropic-version") is None:
        await _send_error(
            send, 400, "invalid_request_error", "anthropic-version: header is required"
        )
        return
    problem = _invalid(payload)
    if problem is not None:
        await _send_error(send, 400, "invalid_request_error", problem)
        return
    tools = payload.get("tools")
    tool_words = len(orjson.dumps(tools).split()) if isinstance(tools, list) else 0
    count = _prompt_tokens(payload, None) + tool_words
    await asgi.send_json(send, 200, {"input_tokens": count})


async def _inference(
    fake: FakeState, answer: _Answer, scope: Scope, send: Send, payload: Any
) -> None:
    if asgi.header(scope, b"anthropic-version") is None:
        await _send_error(
            send, 400, "invalid_request_error", "anthropic-version: header is required"
        )
        return
    problem = _invalid(payload, answer.signer)
    if problem is not None:
        await _send_error(send, 400, "invalid_request_error", problem)
        return
    model = payload["model"]
    if fake.models and model not in fake.models:
        await _send_error(send, 404, "not_found_error", f"model: {model}")
        return
    fake.request_started()
    try:
        reply: Reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            await _send_reply_error(send, reply)
        elif payload.get("stream") is True:
            await _stream(send, payload, model, reply, answer)
        else:
            await _complete(send, payload, model, reply, answer)
    finally:
        fake.request_finished()


async def _send_reply_error(send: Send, reply: ErrorReply) -> None:
    headers: dict[str, str] = {"request-id": _request_id()}
    if reply.status in (429, 529):
        headers["retry-after"] = RETRY_AFTER_SECONDS
    if reply.status == 429:
        headers["anthropic-ratelimit-requests-limit"] = "50"
        headers["anthropic-ratelimit-requests-remaining"] = "0"
        headers["anthropic-ratelimit-requests-reset"] = "2025-05-22T12:00:07Z"
    headers.update(reply.headers)
    extra = asgi.encode_headers(headers)
    if isinstance(reply.body, str):
        await asgi.send_text(send, reply.status, reply.body, extra)
        return
    body = reply.body
    if body is None:
        error_type = ERROR_TYPES.get(reply.status, "api_error")
        body = error_body(error_type, ERROR_MESSAGES.get(reply.status, "Not Found"))
    await asgi.send_json(send, reply.status, body, extra)


def _request_id() -> str:
    return f"req_{next(_request_ids):024x}"


def _message_id() -> str:
    return "msg_01" + content.random_alnum(22)


def _tool_use_id() -> str:
    return "toolu_01" + content.random_alnum(22)


def _prompt_tokens(payload: dict[str, Any], explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    system = payload.get("system")
    system_words = len(system.split()) if isinstance(system, str) else 0
    if isinstance(system, list):
        system_words = sum(len(str(b.get("text", "")).split()) for b in system)
    return content.estimate_prompt_tokens(payload.get("messages")) + system_words


def _usage(prompt: int, completion: int, cache: PromptCache) -> dict[str, Any]:
    read = min(cache.read_tokens, prompt)
    creation = min(cache.creation_tokens, prompt - read)
    return {
        "input_tokens": prompt - read - creation,
        "cache_creation_input_tokens": creation,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": creation, "ephemeral_1h_input_tokens": 0},
        "output_tokens": completion,
        "service_tier": "standard",
    }


@dataclass
class _TextPlan:
    pieces: list[str]
    stop_reason: str
    stop_sequence: str | None
    prompt: int
    completion: int


def _text_plan(reply: TextReply, payload: dict[str, Any]) -> _TextPlan:
    text = reply.text
    stop_reason = STOP_REASONS.get(reply.finish_reason, reply.finish_reason)
    stop_sequence = None
    for sequence in payload.get("stop_sequences") or []:
        if isinstance(sequence, str) and sequence and sequence in text:
            text, stop_reason, stop_sequence = (
                text[: text.index(sequence)],
                "stop_sequence",
                sequence,
            )
            break
    pieces = content.text_pieces(text)
    limit = payload["max_tokens"]
    if limit < len(pieces):
        pieces, stop_reason, stop_sequence = pieces[:limit], "max_tokens", None
    completion = reply.completion_tokens if reply.completion_tokens is not None else len(pieces)
    prompt = _prompt_tokens(payload, reply.prompt_tokens)
    return _TextPlan(pieces, stop_reason, stop_sequence, prompt, completion)


def _tool_blocks(reply: ToolCallReply) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_use",
            "id": call.id or _tool_use_id(),
            "name": call.name,
            "input": call.arguments,
        }
        for call in reply.calls
    ]


def _arguments_json(block: dict[str, Any]) -> str:
    return orjson.dumps(block["input"]).decode()


def _tool_completion(reply: ToolCallReply, blocks: list[dict[str, Any]]) -> int:
    if reply.completion_tokens is not None:
        return reply.completion_tokens
    return sum(20 + len(content.argument_pieces(_arguments_json(b))) for b in blocks)


def _message(
    model: str,
    blocks: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage: dict[str, Any],
    message_id: str | None = None,
) -> dict[str, Any]:
    # Key order as recorded: model, id, type, role, content, stop_reason, stop_sequence, usage.
    return {
        "model": model,
        "id": message_id or _message_id(),
        "type": "message",
        "role": "assistant",
        "content": blocks,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def _thinking_block(payload: dict[str, Any], signer: Thinking) -> dict[str, Any] | None:
    """The signed thinking block that opens the answer, when the request turned thinking on."""
    thinking = payload.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    text = "" if thinking.get("display") == "omitted" else signer.text
    return {"type": "thinking", "thinking": text, "signature": signer.sign()}


def _thinking_tokens(block: dict[str, Any] | None, explicit: int | None) -> int:
    # Thinking is billed as output; an explicit completion count in the reply already says all.
    if block is None or explicit is not None:
        return 0
    return 8 + len(content.text_pieces(block["thinking"]))


async def _complete(
    send: Send, payload: dict[str, Any], model: str, reply: Reply, answer: _Answer
) -> None:
    if isinstance(reply, MidStreamError):
        await _send_error(send, 500, "api_error", ERROR_MESSAGES[500])
        return
    thought = _thinking_block(payload, answer.signer)
    opening = [thought] if thought is not None else []
    if isinstance(reply, ToolCallReply):
        blocks = _tool_blocks(reply)
        prompt = _prompt_tokens(payload, reply.prompt_tokens)
        completion = _tool_completion(reply, blocks)
        completion += _thinking_tokens(thought, reply.completion_tokens)
        usage = _usage(prompt, completion, answer.cache)
        body = _message(model, [*opening, *blocks], "tool_use", None, usage)
    else:
        assert isinstance(reply, TextReply | CutStream)  # Delay and ErrorReply were handled
        text_reply = reply if isinstance(reply, TextReply) else TextReply(text=reply.text)
        plan = _text_plan(text_reply, payload)
        text_blocks = [*opening, {"type": "text", "text": "".join(plan.pieces)}]
        completion = plan.completion + _thinking_tokens(thought, text_reply.completion_tokens)
        usage = _usage(plan.prompt, completion, answer.cache)
        body = _message(model, text_blocks, plan.stop_reason, plan.stop_sequence, usage)
    raw = orjson.dumps(body)
    if isinstance(reply, CutStream):
        await asgi.send_partial_then_drop(send, raw)  # raises DropConnection
    await asgi.send_body(send, 200, raw, asgi.JSON, [(b"request-id", _request_id().encode())])


def event(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event as Anthropic frames it: ``event:`` line, ``data:`` line, blank line."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


PING = event("ping", {"type": "ping"})


def _message_start(model: str, usage: dict[str, Any]) -> bytes:
    # message_start reports the input side and a first small output count.
    start_usage = {k: v for k, v in usage.items() if k != "cache_creation"}
    start_usage["output_tokens"] = min(1, usage["output_tokens"])
    message = _message(model, [], None, None, start_usage)
    return event("message_start", {"type": "message_start", "message": message})


def _message_end(stop_reason: str, stop_sequence: str | None, usage: dict[str, Any]) -> list[bytes]:
    final_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],  # cumulative, not an increment
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": final_usage,
    }
    return [event("message_delta", delta), event("message_stop", {"type": "message_stop"})]


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return event(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return event(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


def _block_stop(index: int) -> bytes:
    return event("content_block_stop", {"type": "content_block_stop", "index": index})


def _thinking_stream(block: dict[str, Any]) -> list[bytes]:
    """Index 0: the thinking text in pieces (none when omitted), then the signature whole."""
    events = [_block_start(0, {"type": "thinking", "thinking": "", "signature": ""})]
    for piece in content.text_pieces(block["thinking"]):
        events.append(_block_delta(0, {"type": "thinking_delta", "thinking": piece}))
    events.append(_block_delta(0, {"type": "signature_delta", "signature": block["signature"]}))
    events.append(_block_stop(0))
    return events


def _tool_stream(blocks: list[dict[str, Any]], first_index: int = 0) -> list[bytes]:
    events: list[bytes] = []
    for index, block in enumerate(blocks, start=first_index):
        events.append(_block_start(index, {**block, "input": {}}))
        events.append(_block_delta(index, {"type": "input_json_delta", "partial_json": ""}))
        events.append(PING)
        for piece in content.argument_pieces(_arguments_json(block)):
            events.append(_block_delta(index, {"type": "input_json_delta", "partial_json": piece}))
        events.append(_block_stop(index))
    return events


async def _stream(
    send: Send, payload: dict[str, Any], model: str, reply: Reply, answer: _Answer
) -> None:
    await asgi.start_stream(send, asgi.SSE, [(b"request-id", _request_id().encode())])
    thought = _thinking_block(payload, answer.signer)
    opening = _thinking_stream(thought) if thought is not None else []
    first = 1 if thought is not None else 0  # the answer follows the thinking block
    if isinstance(reply, ToolCallReply):
        blocks = _tool_blocks(reply)
        prompt = _prompt_tokens(payload, reply.prompt_tokens)
        completion = _tool_completion(reply, blocks)
        completion += _thinking_tokens(thought, reply.completion_tokens)
        usage = _usage(prompt, completion, answer.cache)
        events = [_message_start(model, usage), PING, *opening, *_tool_stream(blocks, first)]
        events.extend(_message_end("tool_use", None, usage))
        for item in events:
            await asgi.stream_part(send, item)
        await asgi.end_stream(send)
        return

    explicit: int | None = None
    if isinstance(reply, CutStream | MidStreamError):
        pieces = content.text_pieces(reply.text)[: reply.after_chunks]
        prompt = _prompt_tokens(payload, None)
        plan = _TextPlan(pieces, "end_turn", None, prompt, len(pieces))
        delay = 0.0
    else:
        assert isinstance(reply, TextReply)
        plan = _text_plan(reply, payload)
        delay = reply.chunk_delay
        explicit = reply.completion_tokens

    completion = plan.completion + _thinking_tokens(thought, explicit)
    usage = _usage(plan.prompt, completion, answer.cache)
    await asgi.stream_part(send, _message_start(model, usage))
    await asgi.stream_part(send, PING)
    for item in opening:
        await asgi.stream_part(send, item)
    await asgi.stream_part(send, _block_start(first, {"type": "text", "text": ""}))
    for piece in plan.pieces:
        if delay:
            await asyncio.sleep(delay)
        await asgi.stream_part(send, _block_delta(first, {"type": "text_delta", "text": piece}))

    if isinstance(reply, CutStream):
        raise asgi.DropConnection
    if isinstance(reply, MidStreamError):
        # The recorded in-stream error is an overload; a custom message is kept for tests.
        message = "Overloaded" if reply.message == DEFAULT_ERROR_MESSAGE else reply.message
        error = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        await asgi.stream_part(send, event("error", error))
        await asgi.end_stream(send)
        return
    await asgi.stream_part(send, _block_stop(first))
    for item in _message_end(plan.stop_reason, plan.stop_sequence, usage):
        await asgi.stream_part(send, item)
    await asgi.end_stream(send)
