"""A fake AWS Bedrock runtime (Converse and ConverseStream) as a raw ASGI app, shaped like
shared/reference/PROVIDER_WIRE_FORMATS.md §6.

Routes: ``POST /model/{modelId}/converse``, ``POST /model/{modelId}/converse-stream`` (the
binary AWS event stream: CRC32-framed messages, random ``p`` padding, no ``contentBlockStart``
for text, ``metadata`` after ``messageStop``), and ``HEAD``/``GET /`` (what an unauthenticated
probe sees: a 404). The model id arrives percent-encoded (``…-v1%3A0``) and is decoded here.

For Claude model ids, ``POST /model/{modelId}/invoke`` and ``…/invoke-with-response-stream``
take Anthropic's Messages body the Bedrock way (``anthropic_version: "bedrock-2023-05-31"``
and ``anthropic_beta`` in the body; ``model`` and ``stream`` refused as extraneous keys; a
beta flag Bedrock does not know refused with "invalid beta flag") and answer in Anthropic's
shapes: a message, or ``chunk`` frames whose ``bytes`` (base64) each hold one Anthropic stream
event, the last (``message_stop``) carrying ``amazon-bedrock-invocationMetrics``. Prompt-cache
reads and writes come from a ``PromptCache``, on every route. A Converse request that enables
Claude's thinking (``additionalModelRequestFields.thinking``) gets a ``reasoningContent``
block before the text.

Every inference request must be SigV4-signed for the service ``bedrock``
(``AWS4-HMAC-SHA256 Credential=…/bedrock/aws4_request``) or carry ``Bearer <fake.api_key>``.
Given ``secret_keys`` (access key id → secret), the fake recomputes the signature with botocore
over the bytes it received, as AWS would.

``RecordedRequest.path`` is recorded as sent (still percent-encoded): the encoding of the model
id is part of the contract.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import string
import struct
import zlib
from typing import Any
from urllib.parse import unquote

import orjson

from tests.fakes import asgi, content
from tests.fakes.anthropic_upstream import PromptCache
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
from tests.fakes.state import FakeState, RecordedRequest

EVENT_STREAM = b"application/vnd.amazon.eventstream"
_CORAL = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits
_rng = random.Random()

_ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "ValidationException",
        "The content field in the Message object at messages.1 is empty. Add a ContentBlock "
        "object to the content field and try again.",
    ),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the model identifier provided.",
    ),
    408: ("ModelTimeoutException", "Model has timed out in processing the request."),
    424: ("ModelErrorException", "The model encountered an error processing the request."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "content_filtered"}
_OPERATIONS = ("converse", "converse-stream", "invoke", "invoke-with-response-stream")


def make_bedrock_app(
    fake: FakeState,
    secret_keys: dict[str, str] | None = None,
    cache: PromptCache | None = None,
) -> ASGIApp:
    """An ASGI app that answers like ``bedrock-runtime.{region}.amazonaws.com``."""
    prompt_cache = cache if cache is not None else PromptCache()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await asgi.serve_lifespan(receive, send)
            return
        body = await asgi.read_body(receive)
        payload = asgi.parse_json(body)
        raw_path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        _remember(fake, scope, raw_path, payload)
        method = scope["method"]
        parts = raw_path.split("/")
        if method == "POST" and len(parts) == 4 and parts[1] == "model":
            operation = parts[3]
            if operation not in _OPERATIONS:
                await _send_error(send, 404, "UnknownOperationException", None)
                return
            refusal = _check_auth(fake, secret_keys, scope, raw_path, body)
            if refusal is not None:
                await _send_error(send, 403, refusal[0], refusal[1])
                return
            model, stream = unquote(parts[2]), operation.endswith("stream")
            if operation.startswith("invoke"):
                await _invoke(fake, prompt_cache, send, payload, model, stream)
            else:
                await _inference(fake, prompt_cache, send, payload, model, stream)
        elif method in ("GET", "HEAD") and raw_path == "/":
            extra = asgi.encode_headers({"x-amzn-errortype": "UnknownOperationException" + _CORAL})
            await asgi.send_body(send, 404, b"" if method == "HEAD" else b"{}", asgi.JSON, extra)
        else:
            await _send_error(send, 404, "UnknownOperationException", None)

    return app


def _remember(fake: FakeState, scope: Scope, raw_path: str, payload: Any) -> None:
    if not fake.record:
        return
    fake.remember(
        RecordedRequest(
            method=scope["method"],
            path=raw_path,
            query=asgi.query_params(scope),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            json=payload,
        )
    )


# --- auth ------------------------------------------------------------------------------


def _check_auth(
    fake: FakeState,
    secret_keys: dict[str, str] | None,
    scope: Scope,
    raw_path: str,
    body: bytes,
) -> tuple[str, str] | None:
    """None when the request may proceed, else (AWS error type, message)."""
    authorization = asgi.header(scope, b"authorization") or ""
    if authorization.startswith("Bearer "):
        if fake.api_key is not None and authorization != f"Bearer {fake.api_key}":
            return (
                "UnrecognizedClientException",
                "Invalid API Key format: Must start with pre-defined prefix",
            )
        return None
    if not authorization:
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    fields = _sigv4_fields(authorization)
    scope_parts = fields.get("Credential", "").split("/")
    if (
        fields.get("algorithm") != "AWS4-HMAC-SHA256"
        or len(scope_parts) != 5
        or scope_parts[3:] != ["bedrock", "aws4_request"]
        or not asgi.header(scope, b"x-amz-date")
    ):
        return (
            "IncompleteSignatureException",
            f"Authorization header is not SigV4 for bedrock: {authorization}",
        )
    if secret_keys is None:
        return None
    secret = secret_keys.get(scope_parts[0])
    if secret is None:
        return (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    expected = _signature(scope, raw_path, body, fields, scope_parts, secret)
    if expected != fields.get("Signature"):
        return (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method.",
        )
    return None


def _sigv4_fields(authorization: str) -> dict[str, str]:
    algorithm, _, rest = authorization.partition(" ")
    fields = {"algorithm": algorithm}
    for item in rest.split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    return fields


def _signature(
    scope: Scope,
    raw_path: str,
    body: bytes,
    fields: dict[str, str],
    scope_parts: list[str],
    secret: str,
) -> str:
    """Recompute the signature the way AWS does: from the request as received."""
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped,unused-ignore]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped,unused-ignore]
    from botocore.credentials import Credentials  # type: ignore[import-untyped,unused-ignore]

    signed = fields.get("SignedHeaders", "").split(";")
    headers = {name: asgi.header(scope, name.encode()) or "" for name in signed}
    host = headers.get("host") or asgi.header(scope, b"host") or ""
    request = AWSRequest(method=scope["method"], url=f"http://{host}{raw_path}", data=body)
    for name, value in headers.items():
        request.headers[name] = value
    request.context["timestamp"] = asgi.header(scope, b"x-amz-date")
    token = asgi.header(scope, b"x-amz-security-token")
    signer = SigV4Auth(Credentials(scope_parts[0], secret, token), scope_parts[3], scope_parts[2])
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


# --- replies ---------------------------------------------------------------------------


async def _send_error(send: Send, status: int, kind: str, message: str | None) -> None:
    extra = asgi.encode_headers({"x-amzn-errortype": kind + _CORAL})
    body = {"message": message} if message is not None else {}
    await asgi.send_json(send, status, body, extra)


async def _send_reply_error(send: Send, reply: ErrorReply) -> None:
    kind, message = _ERRORS.get(reply.status, ("InternalServerException", f"HTTP {reply.status}"))
    headers = {"x-amzn-errortype": kind + _CORAL, **reply.headers}
    extra = asgi.encode_headers(headers)
    if isinstance(reply.body, str):
        await asgi.send_text(send, reply.status, reply.body, extra)
    else:
        body = reply.body if reply.body is not None else {"message": message}
        await asgi.send_json(send, reply.status, body, extra)


async def _inference(
    fake: FakeState, cache: PromptCache, send: Send, payload: Any, model: str, stream: bool
) -> None:
    if fake.models and model not in fake.models:
        await _send_error(
            send, 400, "ValidationException", "The provided model identifier is invalid."
        )
        return
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        await _send_error(send, 400, "SerializationException", "Unexpected request body")
        return
    fake.request_started()
    try:
        reply: Reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            await _send_reply_error(send, reply)
        elif isinstance(reply, CutStream | MidStreamError):
            await _broken(send, stream, reply)
        elif isinstance(reply, ToolCallReply):
            await _tool_calls(send, stream, payload, reply, cache)
        else:
            assert isinstance(reply, TextReply)
            await _text(send, stream, payload, reply, cache)
    finally:
        fake.request_finished()


def _prompt_tokens(payload: dict[str, Any], given: int | None) -> int:
    return given if given is not None else content.estimate_prompt_tokens(payload["messages"])


def _cache_split(prompt: int, cache: PromptCache) -> tuple[int, int, int]:
    """(uncached input, cache reads, cache writes), carved out of the whole prompt."""
    read = min(cache.read_tokens, prompt)
    write = min(cache.creation_tokens, prompt - read)
    return prompt - read - write, read, write


def _usage(prompt: int, completion: int, cache: PromptCache | None = None) -> dict[str, Any]:
    # Converse's inputTokens leave the cached part out, as Anthropic's input_tokens do.
    uncached, read, write = _cache_split(prompt, cache or PromptCache())
    return {
        "cacheReadInputTokens": read,
        "cacheWriteInputTokens": write,
        "inputTokens": uncached,
        "outputTokens": completion,
        "serverToolUsage": {},
        "totalTokens": prompt + completion,
    }


def _converse_body(blocks: list[dict[str, Any]], stop: str, usage: dict[str, Any]) -> Any:
    return {
        "metrics": {"latencyMs": _rng.randrange(300, 2000)},
        "output": {"message": {"content": blocks, "role": "assistant"}},
        "stopReason": stop,
        "usage": usage,
    }


# What a Claude model "thinks" when the request enables thinking, and its opaque signature.
THINKING_TEXT = "The user wants a short answer."
THINKING_SIGNATURE = "EqQBCkYIBxgCKkBZ0vS9ZHBf"


def _thinks(payload: dict[str, Any]) -> bool:
    thinking = (payload.get("additionalModelRequestFields") or {}).get("thinking") or {}
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


async def _text(
    send: Send, stream: bool, payload: dict[str, Any], reply: TextReply, cache: PromptCache
) -> None:
    pieces = content.text_pieces(reply.text)
    stop = _STOP_REASONS.get(reply.finish_reason, "end_turn")
    limit = (payload.get("inferenceConfig") or {}).get("maxTokens")
    if isinstance(limit, int) and 0 < limit < len(pieces):
        pieces, stop = pieces[:limit], "max_tokens"
    prompt = _prompt_tokens(payload, reply.prompt_tokens)
    completion = reply.completion_tokens if reply.completion_tokens is not None else len(pieces)
    usage = _usage(prompt, completion, cache)
    thinks = _thinks(payload)
    if not stream:
        blocks: list[dict[str, Any]] = [{"text": "".join(pieces)}]
        if thinks:
            reasoning = {"reasoningText": {"text": THINKING_TEXT, "signature": THINKING_SIGNATURE}}
            blocks.insert(0, {"reasoningContent": reasoning})
        await asgi.send_json(send, 200, _converse_body(blocks, stop, usage))
        return
    await _start(send)
    await _event(send, "messageStart", {"role": "assistant"})
    index = 0
    if thinks:
        # Reasoning arrives as its own block first: text deltas, then the signature.
        for delta in ({"text": THINKING_TEXT}, {"signature": THINKING_SIGNATURE}):
            body = {"contentBlockIndex": 0, "delta": {"reasoningContent": delta}}
            await _event(send, "contentBlockDelta", body)
        await _event(send, "contentBlockStop", {"contentBlockIndex": 0})
        index = 1
    for piece in pieces:
        if reply.chunk_delay:
            await asyncio.sleep(reply.chunk_delay)
        text_delta = {"contentBlockIndex": index, "delta": {"text": piece}}
        await _event(send, "contentBlockDelta", text_delta)
    await _event(send, "contentBlockStop", {"contentBlockIndex": index})
    await _finish(send, stop, usage)


def _tool_use_id(given: str | None) -> str:
    return given or "tooluse_" + "".join(_rng.choices(_PADDING, k=22))


async def _tool_calls(
    send: Send, stream: bool, payload: dict[str, Any], reply: ToolCallReply, cache: PromptCache
) -> None:
    ids = [_tool_use_id(call.id) for call in reply.calls]
    prompt = _prompt_tokens(payload, reply.prompt_tokens)
    completion = reply.completion_tokens
    if completion is None:
        completion = sum(
            3 + len(content.argument_pieces(orjson.dumps(c.arguments).decode()))
            for c in reply.calls
        )
    usage = _usage(prompt, completion, cache)
    if not stream:
        blocks = [
            {"toolUse": {"toolUseId": tool_id, "name": call.name, "input": call.arguments}}
            for tool_id, call in zip(ids, reply.calls, strict=True)
        ]
        await asgi.send_json(send, 200, _converse_body(blocks, "tool_use", usage))
        return
    await _start(send)
    await _event(send, "messageStart", {"role": "assistant"})
    for index, (tool_id, call) in enumerate(zip(ids, reply.calls, strict=True)):
        start = {"toolUse": {"toolUseId": tool_id, "name": call.name}}
        await _event(send, "contentBlockStart", {"contentBlockIndex": index, "start": start})
        for piece in content.argument_pieces(orjson.dumps(call.arguments).decode()):
            delta = {"toolUse": {"input": piece}}
            await _event(send, "contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
        await _event(send, "contentBlockStop", {"contentBlockIndex": index})
    await _finish(send, "tool_use", usage)


async def _broken(send: Send, stream: bool, reply: CutStream | MidStreamError) -> None:
    if not stream:
        if isinstance(reply, MidStreamError):
            kind, _ = _ERRORS[500]
            await _send_error(send, 500, kind, reply.message)
            return
        body = _converse_body([{"text": reply.text}], "end_turn", _usage(1, 1))
        await asgi.send_partial_then_drop(send, orjson.dumps(body))
    await _start(send)
    pieces = content.text_pieces(reply.text)[: reply.after_chunks]
    if pieces:
        await _event(send, "messageStart", {"role": "assistant"})
    for piece in pieces:
        await _event(send, "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
    if isinstance(reply, CutStream):
        raise asgi.DropConnection
    error = {
        "message": "Model Stream Error",
        "originalStatusCode": 500,
        "originalMessage": reply.message,
    }
    await asgi.stream_part(send, exception_frame("modelStreamErrorException", error))
    await asgi.end_stream(send)


async def _start(send: Send) -> None:
    extra = asgi.encode_headers({"x-amzn-requestid": _request_id()})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", EVENT_STREAM), *extra],
        }
    )


async def _event(send: Send, event_type: str, body: dict[str, Any]) -> None:
    await asgi.stream_part(send, event_frame(event_type, body))


async def _finish(send: Send, stop: str, usage: dict[str, Any]) -> None:
    # Live order: messageStop, then metadata with the usage.
    stop_event = {
        "additionalModelResponseFields": {"delta": {"stop_sequence": None}},
        "stopReason": stop,
    }
    await _event(send, "messageStop", stop_event)
    metrics = {"latencyMs": _rng.randrange(300, 2000)}
    await _event(send, "metadata", {"metrics": metrics, "usage": usage})
    await asgi.end_stream(send)


def _request_id() -> str:
    return "%08x-%04x-%04x-%04x-%012x" % (  # noqa: UP031
        _rng.getrandbits(32),
        _rng.getrandbits(16),
        _rng.getrandbits(16),
        _rng.getrandbits(16),
        _rng.getrandbits(48),
    )


# --- InvokeModel for Claude: Anthropic's Messages body, Bedrock's framing ----------------

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# The beta flags Bedrock accepts for Claude; any other fails the request.
KNOWN_BETAS = frozenset(
    {
        "computer-use-2024-10-22",
        "computer-use-2025-01-24",
        "token-efficient-tools-2025-02-19",
        "interleaved-thinking-2025-05-14",
        "output-128k-2025-02-19",
        "dev-full-thinking-2025-05-14",
        "context-1m-2025-08-07",
        "context-management-2025-06-27",
        "effort-2025-11-24",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)
_ANTHROPIC_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}


def _malformed(problem: str) -> str:
    return f"Malformed input request: #: {problem}, please reformat your input and try again."


def _invoke_problem(payload: Any, model: str) -> str | None:
    """The ValidationException message Bedrock would send for this invoke body, if any."""
    if "anthropic." not in model and "claude" not in model:
        return "The fake models InvokeModel for Anthropic model ids only."
    if not isinstance(payload, dict):
        return _malformed("expected type: JSONObject")
    for key in ("model", "stream"):
        if key in payload:
            return _malformed(f"extraneous key [{key}] is not permitted")
    if payload.get("anthropic_version") != BEDROCK_ANTHROPIC_VERSION:
        return _malformed("required key [anthropic_version] not found")
    if not isinstance(payload.get("max_tokens"), int):
        return _malformed("required key [max_tokens] not found")
    if not isinstance(payload.get("messages"), list):
        return _malformed("required key [messages] not found")
    betas = payload.get("anthropic_beta")
    if betas is not None and (
        not isinstance(betas, list) or any(flag not in KNOWN_BETAS for flag in betas)
    ):
        return "invalid beta flag"
    return None


def anthropic_model_name(model: str) -> str:
    """The name Claude reports for a Bedrock id: `us.anthropic.claude-x-v1:0` → `claude-x`."""
    name = model.rsplit("/", 1)[-1]
    name = name.split("anthropic.", 1)[-1]
    return re.sub(r"-v\d+(?::\d+)?$", "", name)


def _invoke_prompt_tokens(payload: dict[str, Any], given: int | None) -> int:
    if given is not None:
        return given
    system = payload.get("system")
    words = len(system.split()) if isinstance(system, str) else 0
    if isinstance(system, list):
        words = sum(len(str(b.get("text", "")).split()) for b in system if isinstance(b, dict))
    return content.estimate_prompt_tokens(payload["messages"]) + words


def _anthropic_usage(prompt: int, completion: int, cache: PromptCache) -> dict[str, Any]:
    uncached, read, write = _cache_split(prompt, cache)
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": completion,
    }


def _invocation_metrics(usage: dict[str, Any]) -> dict[str, int]:
    return {
        "inputTokenCount": usage["input_tokens"],
        "outputTokenCount": usage["output_tokens"],
        "invocationLatency": _rng.randrange(300, 2000),
        "firstByteLatency": _rng.randrange(100, 300),
        "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
        "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
    }


def _claude_message(
    model: str, blocks: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": "msg_bdrk_01" + content.random_alnum(22),
        "type": "message",
        "role": "assistant",
        "model": anthropic_model_name(model),
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


async def _invoke(
    fake: FakeState, cache: PromptCache, send: Send, payload: Any, model: str, stream: bool
) -> None:
    if fake.models and model not in fake.models:
        await _send_error(
            send, 400, "ValidationException", "The provided model identifier is invalid."
        )
        return
    problem = _invoke_problem(payload, model)
    if problem is not None:
        await _send_error(send, 400, "ValidationException", problem)
        return
    fake.request_started()
    try:
        reply: Reply = fake.script.next_for(model)
        while isinstance(reply, Delay):
            await asyncio.sleep(reply.seconds)
            reply = reply.then
        if isinstance(reply, ErrorReply):
            await _send_reply_error(send, reply)
        elif stream:
            await _invoke_stream(send, payload, model, reply, cache)
        else:
            await _invoke_whole(send, payload, model, reply, cache)
    finally:
        fake.request_finished()


def _claude_tool_blocks(reply: ToolCallReply) -> list[dict[str, Any]]:
    return [
        {
            "type": "tool_use",
            "id": call.id or "toolu_bdrk_01" + content.random_alnum(22),
            "name": call.name,
            "input": call.arguments,
        }
        for call in reply.calls
    ]


def _claude_plan(
    payload: dict[str, Any], reply: Reply, cache: PromptCache
) -> tuple[list[str], str, dict[str, Any]]:
    """(text pieces, stop_reason, usage) for a text-like reply."""
    text = reply.text if isinstance(reply, TextReply | CutStream | MidStreamError) else ""
    pieces = content.text_pieces(text)
    stop = "end_turn"
    given_prompt: int | None = None
    completion: int | None = None
    if isinstance(reply, TextReply):
        stop = _ANTHROPIC_STOP_REASONS.get(reply.finish_reason, reply.finish_reason)
        given_prompt, completion = reply.prompt_tokens, reply.completion_tokens
    else:
        pieces = pieces[: getattr(reply, "after_chunks", len(pieces))]
    if payload["max_tokens"] < len(pieces):
        pieces, stop = pieces[: payload["max_tokens"]], "max_tokens"
    prompt = _invoke_prompt_tokens(payload, given_prompt)
    usage = _anthropic_usage(prompt, completion if completion is not None else len(pieces), cache)
    return pieces, stop, usage


async def _invoke_whole(
    send: Send, payload: dict[str, Any], model: str, reply: Reply, cache: PromptCache
) -> None:
    if isinstance(reply, MidStreamError):
        await _send_error(send, 500, "InternalServerException", reply.message)
        return
    if isinstance(reply, ToolCallReply):
        blocks = _claude_tool_blocks(reply)
        prompt = _invoke_prompt_tokens(payload, reply.prompt_tokens)
        completion = reply.completion_tokens
        if completion is None:
            completion = sum(20 + len(orjson.dumps(b["input"])) // 4 for b in blocks)
        usage = _anthropic_usage(prompt, completion, cache)
        body = _claude_message(model, blocks, "tool_use", usage)
    else:
        pieces, stop, usage = _claude_plan(payload, reply, cache)
        body = _claude_message(model, [{"type": "text", "text": "".join(pieces)}], stop, usage)
    raw = orjson.dumps(body)
    if isinstance(reply, CutStream):
        await asgi.send_partial_then_drop(send, raw)  # raises DropConnection
    extra = asgi.encode_headers(
        {
            "x-amzn-requestid": _request_id(),
            "x-amzn-bedrock-input-token-count": str(usage["input_tokens"]),
            "x-amzn-bedrock-output-token-count": str(usage["output_tokens"]),
        }
    )
    await asgi.send_body(send, 200, raw, asgi.JSON, extra)


async def _chunk(send: Send, event: dict[str, Any]) -> None:
    """One Anthropic stream event, wrapped the Bedrock way: a `chunk` frame of base64 bytes."""
    encoded = base64.b64encode(orjson.dumps(event)).decode()
    await _event(send, "chunk", {"bytes": encoded})


async def _invoke_stream(
    send: Send, payload: dict[str, Any], model: str, reply: Reply, cache: PromptCache
) -> None:
    await _start(send)
    if isinstance(reply, ToolCallReply):
        blocks = _claude_tool_blocks(reply)
        prompt = _invoke_prompt_tokens(payload, reply.prompt_tokens)
        completion = reply.completion_tokens
        if completion is None:
            completion = sum(20 + len(orjson.dumps(b["input"])) // 4 for b in blocks)
        usage = _anthropic_usage(prompt, completion, cache)
        await _message_start(send, model, usage)
        for index, block in enumerate(blocks):
            await _chunk(send, _block_start(index, {**block, "input": {}}))
            arguments = orjson.dumps(block["input"]).decode()
            for piece in ["", *content.argument_pieces(arguments)]:
                await _chunk(send, _block_delta(index, "input_json_delta", "partial_json", piece))
            await _chunk(send, {"type": "content_block_stop", "index": index})
        await _message_end(send, "tool_use", usage)
        return
    pieces, stop, usage = _claude_plan(payload, reply, cache)
    await _message_start(send, model, usage)
    await _chunk(send, _block_start(0, {"type": "text", "text": ""}))
    delay = reply.chunk_delay if isinstance(reply, TextReply) else 0.0
    for piece in pieces:
        if delay:
            await asyncio.sleep(delay)
        await _chunk(send, _block_delta(0, "text_delta", "text", piece))
    if isinstance(reply, CutStream):
        raise asgi.DropConnection
    if isinstance(reply, MidStreamError):
        error = {
            "message": "Model Stream Error",
            "originalStatusCode": 500,
            "originalMessage": reply.message,
        }
        await asgi.stream_part(send, exception_frame("modelStreamErrorException", error))
        await asgi.end_stream(send)
        return
    await _chunk(send, {"type": "content_block_stop", "index": 0})
    await _message_end(send, stop, usage)


async def _message_start(send: Send, model: str, usage: dict[str, Any]) -> None:
    start_usage = dict(usage, output_tokens=min(1, usage["output_tokens"]))
    message = _claude_message(model, [], None, start_usage)
    await _chunk(send, {"type": "message_start", "message": message})


def _block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _block_delta(index: int, kind: str, field: str, value: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": {"type": kind, field: value}}


async def _message_end(send: Send, stop: str, usage: dict[str, Any]) -> None:
    # Bedrock's message_delta carries the cumulative output count only; the input side came
    # with message_start, and the totals again in the last chunk's invocation metrics.
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    await _chunk(send, delta)
    stop_event = {
        "type": "message_stop",
        "amazon-bedrock-invocationMetrics": _invocation_metrics(usage),
    }
    await _chunk(send, stop_event)
    await asgi.end_stream(send)


# --- the binary framing ----------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths + CRC32), string headers, payload, CRC32."""
    encoded = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        encoded += bytes([len(name_bytes)]) + name_bytes + b"\x07"
        encoded += struct.pack(">H", len(value_bytes)) + value_bytes
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def padding() -> str:
    """The random-length ``p`` field live streams carry (a prefix of a-zA-Z0-9)."""
    return _PADDING[: _rng.randrange(1, len(_PADDING) + 1)]


def event_frame(event_type: str, body: dict[str, Any], *, pad: bool = True) -> bytes:
    payload = dict(body, p=padding()) if pad else body
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame(headers, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))


def exception_frame(exception_type: str, body: dict[str, Any]) -> bytes:
    headers = {
        ":message-type": "exception",
        ":exception-type": exception_type,
        ":content-type": "application/json",
    }
    return frame(headers, orjson.dumps(body))
