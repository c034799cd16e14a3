"""A fake Ollama server (native API) as a raw ASGI app, shaped like
shared/reference/PROVIDER_WIRE_FORMATS.md §4.

Routes: ``POST /api/chat`` (NDJSON stream by default), ``POST /api/embed``, ``GET /api/tags``,
``GET /api/ps``, ``GET /api/version``, ``GET /`` ("Ollama is running"), and ``POST /v1/messages``,
the Anthropic compatibility layer of Ollama ≥ 0.14 (``middleware/anthropic.go``): Anthropic's
message or its SSE events, usage as ``input_tokens``/``output_tokens`` only (no prompt cache),
no ``ping``, each tool call sent whole, errors as ``{"type":"error","error":{…},"request_id"}``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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

VERSION = "0.5.1"
_MODEL_SIZE = 2019393189
_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "llama",
    "families": ["llama"],
    "parameter_size": "3.2B",
    "quantization_level": "Q4_K_M",
}
# Nanoseconds per token, roughly a 3B model on a small GPU.
_PROMPT_EVAL_NS = 150_000
_EVAL_NS = 7_700_000
_LOAD_NS = 41_295_167

Handler = Callable[[FakeState, Send, dict[str, Any], str, Reply], Awaitable[None]]


def make_ollama_app(fake: FakeState) -> ASGIApp:
    """An ASGI app that answers like ``ollama serve``, driven by ``fake``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await asgi.serve_lifespan(receive, send)
            return
        body = await asgi.read_body(receive)
        payload = asgi.parse_json(body)
        asgi.remember(fake, scope, payload)
        method, path = scope["method"], scope["path"]
        if (
            fake.api_key is not None
            and asgi.header(scope, b"authorization") != f"Bearer {fake.api_key}"
        ):
            await asgi.send_json(send, 401, {"error": "unauthorized"})
        elif method == "POST" and path == "/api/chat":
            await _inference(fake, send, payload, _chat)
        elif method == "POST" and path == "/api/embed":
            await _inference(fake, send, payload, _embed)
        elif method == "POST" and path == "/v1/messages":
            await _messages_inference(fake, send, payload)
        elif method == "GET" and path == "/api/tags":
            await asgi.send_json(send, 200, {"models": [_model_entry(m) for m in fake.models]})
        elif method == "GET" and path == "/api/ps":
            await asgi.send_json(send, 200, {"models": [_loaded_entry(m) for m in fake.loaded]})
        elif method == "GET" and path == "/api/version":
            await asgi.send_json(send, 200, {"version": VERSION})
        elif method in ("GET", "HEAD") and path == "/":
            await asgi.send_body(send, 200, b"Ollama is running", b"text/plain; charset=utf-8")
        else:
            await asgi.send_body(send, 404, b"404 page not found", b"text/plain")

    return app


def full_name(model: str) -> str:
    """Ollama's canonical name: ``llama3.2`` is ``llama3.2:latest``."""
    return model if ":" in model else f"{model}:latest"


def _knows(fake: FakeState, model: str) -> bool:
    return not fake.models or full_name(model) in {full_name(m) for m in fake.models}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _model_entry(model: str) -> dict[str, Any]:
    name = full_name(model)
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-05-04T17:37:44.706015396-07:00",
        "size": _MODEL_SIZE,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": _DETAILS,
    }


def _loaded_entry(model: str) -> dict[str, Any]:
    name = full_name(model)
    expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    return {
        "name": name,
        "model": name,
        "size": _MODEL_SIZE,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": _DETAILS,
        "expires_at": expires,
        "size_vram": _MODEL_SIZE,
        "context_length": 4096,
    }


def _error_body(status: int, model: str) -> dict[str, Any]:
    if status == 404:
        return {"error": f'model "{model}" not found, try pulling it first'}
    if status == 503:
        return {"error": "server busy, please try again.  maximum pending requests exceeded"}
    if status == 500:
        return {"error": "llama runner process has terminated: exit status 2"}
    if status == 400:
        return {"error": "invalid request"}
    return {"error": f"unexpected status {status}"}


async def _send_error(send: Send, reply: ErrorReply, model: str) -> None:
    extra = asgi.encode_headers(reply.headers)
    if isinstance(reply.body, str):
        await asgi.send_text(send, reply.status, reply.body, extra)
    else:
        body = reply.body if reply.body is not None else _error_body(reply.status, model)
        await asgi.send_json(send, reply.status, body, extra)


async def _inference(fake: FakeState, send: Send, payload: Any, handler: Handler) -> None:
    if not isinstance(payload, dict):
        await asgi.send_json(
            send, 400, {"error": "invalid character 'x' looking for beginning of value"}
        )
        return
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        await asgi.send_json(send, 400, {"error": "model is required"})
        return
    if not _knows(fake, model):
        await asgi.send_json(send, 404, _error_body(404, model))
        return
    fake.request_started()
    try:
        reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            await _send_error(send, reply, model)
        else:
            await handler(fake, send, payload, model, reply)
    finally:
        fake.request_finished()


def _metrics(fake: FakeState, model: str, prompt_tokens: int, eval_tokens: int) -> dict[str, int]:
    """Done-chunk timings in nanoseconds; zero fields are omitted like Go's ``omitempty``."""
    load = _LOAD_NS if full_name(model) not in {full_name(m) for m in fake.loaded} else 2_000_000
    prompt_ns = prompt_tokens * _PROMPT_EVAL_NS
    eval_ns = eval_tokens * _EVAL_NS
    metrics = {
        "total_duration": load + prompt_ns + eval_ns + 1_000_000,
        "load_duration": load,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": prompt_ns,
        "eval_count": eval_tokens,
        "eval_duration": eval_ns,
    }
    return {key: value for key, value in metrics.items() if value}


def _chunk(model: str, message: dict[str, Any]) -> bytes:
    return (
        orjson.dumps({"model": model, "created_at": _now(), "message": message, "done": False})
        + b"\n"
    )


def _done(
    model: str, message: dict[str, Any], done_reason: str, metrics: dict[str, int]
) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": _now(),
        "message": message,
        "done_reason": done_reason,
        "done": True,
        **metrics,
    }


def _tool_calls(reply: ToolCallReply) -> list[dict[str, Any]]:
    calls = []
    for index, call in enumerate(reply.calls):
        entry: dict[str, Any] = {}
        if call.id is not None:
            entry["id"] = call.id
        entry["function"] = {"index": index, "name": call.name, "arguments": call.arguments}
        calls.append(entry)
    return calls


async def _chat(
    fake: FakeState, send: Send, payload: dict[str, Any], model: str, reply: Reply
) -> None:
    stream = payload.get("stream") is not False
    messages = payload.get("messages")
    if isinstance(messages, list) and not messages:
        # An empty chat only loads the model.
        loaded = _done(model, {"role": "assistant", "content": ""}, "load", {})
        await _send_whole_or_line(send, stream, loaded)
        return
    prompt = content.estimate_prompt_tokens(messages)

    if isinstance(reply, ToolCallReply):
        calls = _tool_calls(reply)
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
        completion = reply.completion_tokens
        if completion is None:
            completion = sum(
                3 + len(content.argument_pieces(orjson.dumps(c.arguments).decode()))
                for c in reply.calls
            )
        metrics = _metrics(fake, model, prompt, completion)
        if not stream:
            message = {"role": "assistant", "content": "", "tool_calls": calls}
            await asgi.send_json(send, 200, _done(model, message, "stop", metrics))
            return
        await asgi.start_stream(send, asgi.NDJSON)
        await asgi.stream_part(
            send, _chunk(model, {"role": "assistant", "content": "", "tool_calls": calls})
        )
        final = _done(model, {"role": "assistant", "content": ""}, "stop", metrics)
        await asgi.stream_part(send, orjson.dumps(final) + b"\n")
        await asgi.end_stream(send)
        return

    if isinstance(reply, CutStream | MidStreamError):
        await _broken(send, stream, model, reply)
        return

    assert isinstance(reply, TextReply)
    pieces = content.text_pieces(reply.text)
    done_reason = reply.finish_reason
    options = payload.get("options")
    limit = options.get("num_predict") if isinstance(options, dict) else None
    if isinstance(limit, int) and 0 < limit < len(pieces):
        pieces, done_reason = pieces[:limit], "length"
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
    completion = reply.completion_tokens if reply.completion_tokens is not None else len(pieces)
    metrics = _metrics(fake, model, prompt, completion)
    if not stream:
        message = {"role": "assistant", "content": "".join(pieces)}
        await asgi.send_json(send, 200, _done(model, message, done_reason, metrics))
        return
    await asgi.start_stream(send, asgi.NDJSON)
    for piece in pieces:
        if reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
        await asgi.stream_part(send, _chunk(model, {"role": "assistant", "content": piece}))
    final = _done(model, {"role": "assistant", "content": ""}, done_reason, metrics)
    await asgi.stream_part(send, orjson.dumps(final) + b"\n")
    await asgi.end_stream(send)


async def _send_whole_or_line(send: Send, stream: bool, body: dict[str, Any]) -> None:
    if stream:
        await asgi.send_body(send, 200, orjson.dumps(body) + b"\n", asgi.NDJSON)
    else:
        await asgi.send_json(send, 200, body)


async def _broken(send: Send, stream: bool, model: str, reply: CutStream | MidStreamError) -> None:
    if not stream:
        if isinstance(reply, MidStreamError):
            await asgi.send_json(send, 500, {"error": reply.message})
            return
        message = {"role": "assistant", "content": reply.text}
        await asgi.send_partial_then_drop(send, orjson.dumps(_done(model, message, "stop", {})))
    await asgi.start_stream(send, asgi.NDJSON)
    for piece in content.text_pieces(reply.text)[: reply.after_chunks]:
        await asgi.stream_part(send, _chunk(model, {"role": "assistant", "content": piece}))
    if isinstance(reply, CutStream):
        raise asgi.DropConnection
    await asgi.stream_part(send, orjson.dumps({"error": reply.message}) + b"\n")
    await asgi.end_stream(send)


async def _embed(
    fake: FakeState, send: Send, payload: dict[str, Any], model: str, reply: Reply
) -> None:
    inputs = content.embedding_inputs(payload.get("input"))
    tokens = content.count_input_words(inputs)
    metrics = _metrics(fake, model, tokens, 0)
    dimensions = payload.get("dimensions")
    dimensions = dimensions if isinstance(dimensions, int) and dimensions > 0 else 8
    body = {
        "model": model,
        "embeddings": [content.embedding_for(text, dimensions) for text in inputs],
        "total_duration": metrics["total_duration"],
        "load_duration": metrics["load_duration"],
        "prompt_eval_count": tokens,
    }
    await asgi.send_json(send, 200, body)


# --- /v1/messages: Ollama's Anthropic compatibility layer (middleware/anthropic.go) --------

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_ANTHROPIC_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _anthropic_error(status: int, message: str) -> dict[str, Any]:
    """anthropic.NewError: the type follows the status, a request id is made up."""
    return {
        "type": "error",
        "error": {"type": _ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": "req_" + hashlib.sha256(_now().encode()).hexdigest()[:24],
    }


async def _send_anthropic_error(send: Send, status: int, message: str) -> None:
    # Go's json.Encoder ends the body with a newline.
    body = orjson.dumps(_anthropic_error(status, message)) + b"\n"
    await asgi.send_body(send, status, body, asgi.JSON)


async def _messages_inference(fake: FakeState, send: Send, payload: Any) -> None:
    """POST /v1/messages: the same model checks and script as /api/chat, Anthropic's shapes."""
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        await _send_anthropic_error(send, 400, "invalid request: messages are required")
        return
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        await _send_anthropic_error(send, 400, "model is required")
        return
    if not _knows(fake, model):
        await _send_anthropic_error(send, 404, _error_body(404, model)["error"])
        return
    fake.request_started()
    try:
        reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            if isinstance(reply.body, str):
                await asgi.send_text(send, reply.status, reply.body)
            else:
                message = _error_body(reply.status, model)["error"]
                body = (
                    reply.body
                    if reply.body is not None
                    else _anthropic_error(reply.status, message)
                )
                await asgi.send_json(send, reply.status, body, asgi.encode_headers(reply.headers))
        elif payload.get("stream") is True:
            await _messages_stream(send, payload, model, reply)
        else:
            await _messages_whole(send, payload, model, reply)
    finally:
        fake.request_finished()


def _message_id() -> str:
    return "msg_" + hashlib.sha256(_now().encode()).hexdigest()[:24]


def _messages_plan(
    payload: dict[str, Any], reply: Reply
) -> tuple[list[str], list[dict[str, Any]], str, int, int]:
    """(text pieces, tool_use blocks, stop_reason, input tokens, output tokens)."""
    prompt = content.estimate_prompt_tokens(payload["messages"])
    system = payload.get("system")
    if isinstance(system, str):
        prompt += len(system.split())
    elif isinstance(system, list):
        prompt += sum(len(str(b.get("text", "")).split()) for b in system if isinstance(b, dict))
    if isinstance(reply, ToolCallReply):
        blocks = [
            {
                "type": "tool_use",
                "id": call.id or f"call_{hashlib.sha256(call.name.encode()).hexdigest()[:8]}",
                "name": call.name,
                "input": call.arguments,
            }
            for call in reply.calls
        ]
        completion = reply.completion_tokens
        if completion is None:
            completion = sum(3 + len(orjson.dumps(b["input"])) // 4 for b in blocks)
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
        return [], blocks, "tool_use", prompt, completion
    if isinstance(reply, TextReply):
        pieces = content.text_pieces(reply.text)
        stop = _ANTHROPIC_STOP_REASONS.get(reply.finish_reason, "end_turn")
        limit = payload.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < len(pieces):
            pieces, stop = pieces[:limit], "max_tokens"
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
        completion = reply.completion_tokens
        return pieces, [], stop, prompt, completion if completion is not None else len(pieces)
    assert isinstance(reply, CutStream | MidStreamError)
    pieces = content.text_pieces(reply.text)[: reply.after_chunks]
    return pieces, [], "end_turn", prompt, len(pieces)


async def _messages_whole(send: Send, payload: dict[str, Any], model: str, reply: Reply) -> None:
    if isinstance(reply, MidStreamError):
        await _send_anthropic_error(send, 500, reply.message)
        return
    pieces, blocks, stop, prompt, completion = _messages_plan(payload, reply)
    text = [{"type": "text", "text": "".join(pieces)}] if pieces else []
    # ToMessagesResponse: Go struct order, stop_sequence omitted when empty.
    body = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": text + blocks,
        "stop_reason": stop,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }
    raw = orjson.dumps(body) + b"\n"
    if isinstance(reply, CutStream):
        await asgi.send_partial_then_drop(send, raw)  # raises DropConnection
    await asgi.send_body(send, 200, raw, asgi.JSON)


def sse(name: str, data: dict[str, Any]) -> bytes:
    """One event as Ollama's writeSSE frames it."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _messages_stream(send: Send, payload: dict[str, Any], model: str, reply: Reply) -> None:
    pieces, blocks, stop, prompt, completion = _messages_plan(payload, reply)
    await asgi.start_stream(send, b"text/event-stream")
    message = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "usage": {"input_tokens": prompt, "output_tokens": 0},
    }
    await asgi.stream_part(
        send, sse("message_start", {"type": "message_start", "message": message})
    )
    index = 0
    if pieces:
        start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        await asgi.stream_part(send, sse("content_block_start", start))
        delay = reply.chunk_delay if isinstance(reply, TextReply) else 0.0
        for piece in pieces:
            if delay:
                await asyncio.sleep(delay)
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            await asgi.stream_part(send, sse("content_block_delta", delta))
        if isinstance(reply, CutStream):
            raise asgi.DropConnection
        if isinstance(reply, MidStreamError):
            error = {"type": "error", "error": {"type": "api_error", "message": reply.message}}
            await asgi.stream_part(send, sse("error", error))
            await asgi.end_stream(send)
            return
        stop_event = {"type": "content_block_stop", "index": 0}
        await asgi.stream_part(send, sse("content_block_stop", stop_event))
        index = 1
    for offset, block in enumerate(blocks):
        # The converter sends each tool call whole: start, one input_json_delta, stop.
        at = index + offset
        start = {
            "type": "content_block_start",
            "index": at,
            "content_block": {**block, "input": {}},
        }
        await asgi.stream_part(send, sse("content_block_start", start))
        delta = {
            "type": "content_block_delta",
            "index": at,
            "delta": {
                "type": "input_json_delta",
                "partial_json": orjson.dumps(block["input"]).decode(),
            },
        }
        await asgi.stream_part(send, sse("content_block_delta", delta))
        stop_block = {"type": "content_block_stop", "index": at}
        await asgi.stream_part(send, sse("content_block_stop", stop_block))
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": stop},
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }
    await asgi.stream_part(send, sse("message_delta", end))
    await asgi.stream_part(send, sse("message_stop", {"type": "message_stop"}))
    await asgi.end_stream(send)
