"""A fake OpenAI Chat Completions upstream (and its xAI and Azure dialects) as a raw ASGI app.

Routes: ``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/embeddings``,
``GET /v1/models`` (openai, xai); ``POST /openai/deployments/{deployment}/chat/completions|
embeddings?api-version=…`` (azure). What each chat or Responses request gets is decided by
``fake.script``; Responses prompt-cache reads come from a ``PromptCacheKeys``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tests.fakes import asgi, content, responses_shapes
from tests.fakes import openai_shapes as shapes
from tests.fakes.asgi import ASGIApp, Headers, Receive, Scope, Send
from tests.fakes.behaviour import (
    CutStream,
    Delay,
    ErrorReply,
    MidStreamError,
    Reply,
    TextReply,
    ToolCallReply,
)
from tests.fakes.openai_shapes import Flavour
from tests.fakes.responses_shapes import PromptCacheKeys, ResponseWriter
from tests.fakes.state import FakeState

_request_ids = itertools.count(1)

Handler = Callable[[FakeState, Flavour, Send, dict[str, Any], str], Awaitable[None]]
_AZURE_PREFIX = "/openai/deployments/"


def make_openai_app(
    fake: FakeState, flavour: Flavour = "openai", prompt_cache: PromptCacheKeys | None = None
) -> ASGIApp:
    """An ASGI app that answers like ``flavour``'s real API, driven by ``fake``."""
    responses = _responses_handler(prompt_cache if prompt_cache is not None else PromptCacheKeys())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await asgi.serve_lifespan(receive, send)
            return
        body = await asgi.read_body(receive)
        payload = asgi.parse_json(body)
        asgi.remember(fake, scope, payload)
        if flavour == "azure":
            await _route_azure(fake, scope, send, payload)
        else:
            await _route_openai(fake, flavour, scope, send, payload, responses)

    return app


async def _route_openai(
    fake: FakeState, flavour: Flavour, scope: Scope, send: Send, payload: Any, responses: Handler
) -> None:
    method, path = scope["method"], scope["path"]
    if not await _authorised(fake, flavour, scope, send):
        return
    if method == "POST" and path == "/v1/chat/completions":
        await _inference(fake, flavour, send, payload, None, _chat)
    elif method == "POST" and path == "/v1/responses":
        await _inference(fake, flavour, send, payload, None, responses)
    elif method == "POST" and path == "/v1/embeddings":
        await _inference(fake, flavour, send, payload, None, _embeddings)
    elif method == "GET" and path == "/v1/models":
        data = [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
            for m in fake.models
        ]
        await asgi.send_json(send, 200, {"object": "list", "data": data})
    else:
        message = f"Invalid URL ({method} {path})"
        error = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
        await asgi.send_json(send, 404, error)


async def _route_azure(fake: FakeState, scope: Scope, send: Send, payload: Any) -> None:
    method, path = scope["method"], scope["path"]
    deployment, _, operation = path.removeprefix(_AZURE_PREFIX).partition("/")
    known_operation = operation in ("chat/completions", "embeddings")
    if not path.startswith(_AZURE_PREFIX) or not known_operation or method != "POST":
        await asgi.send_json(send, 404, {"error": {"code": "404", "message": "Resource not found"}})
        return
    if not await _authorised(fake, "azure", scope, send):
        return
    if not asgi.query_params(scope).get("api-version"):
        await asgi.send_json(send, 404, {"error": {"code": "404", "message": "Resource not found"}})
        return
    if fake.models and deployment not in fake.models:
        await _send_error(send, "azure", ErrorReply(404), deployment, None)
        return
    handler = _chat if operation == "chat/completions" else _embeddings
    await _inference(fake, "azure", send, payload, deployment, handler)


async def _authorised(fake: FakeState, flavour: Flavour, scope: Scope, send: Send) -> bool:
    bearer = asgi.header(scope, b"authorization")
    presented = bearer[7:] if bearer is not None and bearer[:7].lower() == "bearer " else None
    if flavour == "azure":
        presented = asgi.header(scope, b"api-key") or presented
        if presented is None or (fake.api_key is not None and presented != fake.api_key):
            await _send_error(send, "azure", ErrorReply(401), "", presented)
            return False
        return True
    if fake.api_key is None or presented == fake.api_key:
        return True
    if presented is None:
        error = {
            "message": shapes.MISSING_KEY_MESSAGE,
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
        await asgi.send_json(send, 401, {"error": error})
    else:
        await _send_error(send, flavour, ErrorReply(401), "", presented)
    return False


async def _inference(
    fake: FakeState,
    flavour: Flavour,
    send: Send,
    payload: Any,
    deployment: str | None,
    handler: Handler,
) -> None:
    if not isinstance(payload, dict):
        message = "We could not parse the JSON body of your request."
        await _send_bad_request(send, flavour, message, None)
        return
    model = deployment if deployment is not None else payload.get("model")
    if not isinstance(model, str) or not model:
        await _send_bad_request(send, flavour, "you must provide a model parameter", None)
        return
    if fake.models and model not in fake.models:
        await _send_error(send, flavour, ErrorReply(404), model, None)
        return
    fake.request_started()
    try:
        await handler(fake, flavour, send, payload, model)
    finally:
        fake.request_finished()


async def _send_bad_request(send: Send, flavour: Flavour, message: str, param: str | None) -> None:
    if flavour == "azure":
        await asgi.send_json(send, 400, {"error": {"code": "BadRequest", "message": message}})
        return
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    await asgi.send_json(send, 400, {"error": error})


async def _send_error(
    send: Send, flavour: Flavour, reply: ErrorReply, model: str, key: str | None
) -> None:
    body: Any = reply.body
    headers: dict[str, str] = {}
    if body is None:
        body, headers = shapes.default_error(flavour, reply.status, model=model, key=key)
    headers = {**headers, **reply.headers}
    extra = asgi.encode_headers(headers)
    if isinstance(body, str):
        await asgi.send_text(send, reply.status, body, extra)
    else:
        await asgi.send_json(send, reply.status, body, extra)


def _response_headers() -> Headers:
    return [(b"x-request-id", b"req_%032x" % next(_request_ids)), (b"openai-processing-ms", b"1")]


async def _chat(
    fake: FakeState, flavour: Flavour, send: Send, payload: dict[str, Any], model: str
) -> None:
    reply: Reply = fake.script.next_for(model)
    while isinstance(reply, Delay):
        await asyncio.sleep(reply.seconds)
        reply = reply.then
    if isinstance(reply, ErrorReply):
        await _send_error(send, flavour, reply, model, None)
    elif payload.get("stream") is True:
        await _stream(flavour, send, payload, model, reply)
    else:
        await _complete(flavour, send, payload, model, reply)


def _max_tokens(payload: dict[str, Any]) -> int | None:
    limit = payload.get("max_completion_tokens", payload.get("max_tokens"))
    return limit if isinstance(limit, int) and limit > 0 else None


def _text_plan(reply: TextReply, payload: dict[str, Any]) -> tuple[list[str], str, int, int]:
    """The pieces to send, finish_reason and token counts for a text reply."""
    pieces = content.text_pieces(reply.text)
    finish_reason = reply.finish_reason
    limit = _max_tokens(payload)
    if limit is not None and limit < len(pieces):
        pieces, finish_reason = pieces[:limit], "length"
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = content.estimate_prompt_tokens(payload.get("messages"))
    completion = reply.completion_tokens if reply.completion_tokens is not None else len(pieces)
    return pieces, finish_reason, prompt, completion


def _tool_plan(
    flavour: Flavour, reply: ToolCallReply, payload: dict[str, Any]
) -> tuple[list[Any], int, int]:
    calls = [(shapes.resolved_call_id(flavour, call), call) for call in reply.calls]
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = content.estimate_prompt_tokens(payload.get("messages"))
    completion = reply.completion_tokens
    if completion is None:
        completion = sum(
            3 + len(content.argument_pieces(shapes.arguments_json(c))) for _, c in calls
        )
    return calls, prompt, completion


async def _complete(
    flavour: Flavour, send: Send, payload: dict[str, Any], model: str, reply: Reply
) -> None:
    if isinstance(reply, MidStreamError):
        body, _ = shapes.default_error(flavour, 500, model=model)
        await asgi.send_json(send, 500, body)
        return
    if isinstance(reply, ToolCallReply):
        calls, prompt, completion = _tool_plan(flavour, reply, payload)
        message = shapes.tool_message(flavour, calls)
        finish_reason = "tool_calls"
    else:
        text_reply = reply if isinstance(reply, TextReply) else TextReply(text=_cut_text(reply))
        pieces, finish_reason, prompt, completion = _text_plan(text_reply, payload)
        message = shapes.text_message(flavour, "".join(pieces))
    usage = shapes.usage(flavour, prompt, completion)
    body_bytes = shapes.dumps(
        flavour, shapes.completion(flavour, model, message, finish_reason, usage)
    )
    if isinstance(reply, CutStream):
        await asgi.send_partial_then_drop(send, body_bytes)  # raises DropConnection
    await asgi.send_body(send, 200, body_bytes, asgi.JSON, _response_headers())


def _cut_text(reply: Reply) -> str:
    return reply.text if isinstance(reply, CutStream | MidStreamError) else ""


async def _stream(
    flavour: Flavour, send: Send, payload: dict[str, Any], model: str, reply: Reply
) -> None:
    options = payload.get("stream_options")
    options = options if isinstance(options, dict) else {}
    include_usage = options.get("include_usage") is True
    obfuscate = options.get("include_obfuscation") is not False
    writer = shapes.ChunkWriter(flavour, model, include_usage, obfuscate)

    await asgi.start_stream(send, asgi.SSE, _response_headers())
    for event in writer.prelude():
        await asgi.stream_part(send, event)

    if isinstance(reply, ToolCallReply):
        calls, prompt, completion = _tool_plan(flavour, reply, payload)
        for event in writer.tool_calls(calls):
            await asgi.stream_part(send, event)
        await _finish(send, writer, "tool_calls", prompt, completion)
        return

    if isinstance(reply, CutStream | MidStreamError):
        pieces = content.text_pieces(reply.text)[: reply.after_chunks]
        delay = 0.0
    else:
        assert isinstance(reply, TextReply)
        pieces, finish_reason, prompt, completion = _text_plan(reply, payload)
        delay = reply.chunk_delay

    for event in writer.text_opening():
        await asgi.stream_part(send, event)
    for index, piece in enumerate(pieces):
        if delay:
            await asyncio.sleep(delay)
        await asgi.stream_part(send, writer.text(piece, first=index == 0))

    if isinstance(reply, CutStream):
        raise asgi.DropConnection
    if isinstance(reply, MidStreamError):
        await asgi.stream_part(send, shapes.stream_error_event(reply.message))
        await asgi.end_stream(send)
        return
    await _finish(send, writer, finish_reason, prompt, completion)


async def _finish(
    send: Send, writer: shapes.ChunkWriter, finish_reason: str, prompt: int, completion: int
) -> None:
    await asgi.stream_part(send, writer.finish(finish_reason))
    if writer.include_usage:
        await asgi.stream_part(send, writer.usage(shapes.usage(writer.flavour, prompt, completion)))
    await asgi.stream_part(send, shapes.DONE)
    await asgi.end_stream(send)


async def _embeddings(
    fake: FakeState, flavour: Flavour, send: Send, payload: dict[str, Any], model: str
) -> None:
    reply = fake.script.next_for(model)
    while isinstance(reply, Delay):
        await asyncio.sleep(reply.seconds)
        reply = reply.then
    if isinstance(reply, ErrorReply):
        await _send_error(send, flavour, reply, model, None)
        return
    inputs = content.embedding_inputs(payload.get("input"))
    dimensions = payload.get("dimensions")
    dimensions = dimensions if isinstance(dimensions, int) and dimensions > 0 else 8
    as_base64 = payload.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = content.embedding_for(text, dimensions)
        embedding: Any = content.embedding_as_base64(vector) if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = content.count_input_words(inputs)
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    await asgi.send_body(send, 200, shapes.dumps(flavour, body), asgi.JSON, _response_headers())


# --- the Responses API --------------------------------------------------------------------------


def _responses_handler(cache: PromptCacheKeys) -> Handler:
    async def handle(
        fake: FakeState, flavour: Flavour, send: Send, payload: dict[str, Any], model: str
    ) -> None:
        previous = payload.get("previous_response_id")
        if previous is not None:  # nothing is stored here, as with `store: false`
            await asgi.send_json(send, 400, responses_shapes.previous_response_error(str(previous)))
            return
        reply: Reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            if reply.status == 400 and reply.body is None:
                await asgi.send_json(send, 400, responses_shapes.context_window_error())
            else:
                await _send_error(send, flavour, reply, model, None)
            return
        if isinstance(reply, MidStreamError) and payload.get("stream") is not True:
            body, _ = shapes.default_error(flavour, 500, model=model)
            await asgi.send_json(send, 500, body)
            return
        await _respond(send, payload, model, reply, cache)

    return handle


async def _respond(
    send: Send, payload: dict[str, Any], model: str, reply: Reply, cache: PromptCacheKeys
) -> None:
    """One Responses answer, streamed as events or sent whole; the same items either way."""
    streaming = payload.get("stream") is True
    options = payload.get("stream_options")
    obfuscate = not (isinstance(options, dict) and options.get("include_obfuscation") is False)
    writer = ResponseWriter(payload, model, obfuscate)
    events: list[bytes] = writer.opening()

    async def flush() -> None:
        if streaming:
            for event in events:
                await asgi.stream_part(send, event)
        events.clear()

    if streaming:
        await asgi.start_stream(send, asgi.SSE, _response_headers())
    wanted, summary, encrypted = responses_shapes.reasoning_wanted(payload)
    reasoning_tokens = responses_shapes.REASONING_TOKENS if wanted else 0
    if wanted:
        events.extend(writer.reasoning(summary, encrypted))
    prompt = responses_shapes.estimate_input_tokens(payload)
    incomplete = False
    if isinstance(reply, ToolCallReply):
        for call in reply.calls:
            events.extend(writer.function_call(shapes.resolved_call_id("openai", call), call))
        completion = reply.completion_tokens
        if completion is None:
            completion = sum(
                3 + len(content.argument_pieces(shapes.arguments_json(c))) for c in reply.calls
            )
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
    else:
        if isinstance(reply, CutStream | MidStreamError):
            pieces = content.text_pieces(reply.text)
            if streaming:
                pieces = pieces[: reply.after_chunks]
            delay, completion = 0.0, len(pieces)
        else:
            assert isinstance(reply, TextReply)
            pieces = content.text_pieces(reply.text)
            limit = responses_shapes.max_output_tokens(payload)
            incomplete = reply.finish_reason == "length"
            if limit is not None and limit < len(pieces):
                pieces, incomplete = pieces[:limit], True
            delay = reply.chunk_delay
            completion = reply.completion_tokens
            completion = len(pieces) if completion is None else completion
            prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt
        events.extend(writer.message_opening())
        await flush()
        for piece in pieces:
            if delay and streaming:
                await asyncio.sleep(delay)
            events.append(writer.text(piece))
            await flush()
        if isinstance(reply, CutStream) and streaming:
            raise asgi.DropConnection
        if isinstance(reply, MidStreamError):
            await asgi.stream_part(send, writer.failed(reply.message))
            await asgi.end_stream(send)
            return
        events.extend(writer.message_closing("incomplete" if incomplete else "completed"))
    cached = cache.read(payload.get("prompt_cache_key"), prompt)
    usage = responses_shapes.usage(prompt, cached, completion, reasoning_tokens)
    response, closing = writer.finish(usage, incomplete)
    events.append(closing)
    if streaming:
        await flush()
        await asgi.end_stream(send)
        return
    body = orjson.dumps(response)
    if isinstance(reply, CutStream):
        await asgi.send_partial_then_drop(send, body)  # raises DropConnection
    await asgi.send_body(send, 200, body, asgi.JSON, _response_headers())
