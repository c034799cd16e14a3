"""Checks on a client's JSON body, so bad input is a clear 400 and never a 500 further in."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from omen.errors import ApiError, invalid

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_MAX_DEPTH = 254
_MAX_INT = 1_000_000_000  # token counts and the like: anything larger is a mistake
_PART_TYPES = {"text", "image_url", "input_audio", "file", "refusal"}


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; 413 past `limit` bytes (checked while reading, not after)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(
                    413, f"request body is larger than {limit} bytes", code="body_too_large"
                )
        except ValueError:
            raise invalid("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise invalid("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object", code="invalid_json")
    try:
        # Everything Omen forwards or stores is serialised again; orjson stops at 254 levels.
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        raise invalid(
            f"request body is nested more than {_MAX_DEPTH} levels deep", code="invalid_json"
        ) from None
    return body


def _expect(value: Any, kind: type | tuple[type, ...], param: str, what: str) -> None:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(f"`{param}` must be {what}", param=param, code="invalid_type")


def check_chat(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise invalid(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    _expect(model, str, "model", "a string")
    if not model.strip():
        raise invalid("`model` must not be empty", param="model")
    messages = body.get("messages")
    if messages is None:
        raise invalid("`messages` is required", param="messages", code="missing_required_parameter")
    _expect(messages, list, "messages", "an array of messages")
    if not messages:
        raise invalid("`messages` must contain at least one message", param="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        _expect(message, dict, where, "an object")
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise invalid(f"`{where}.role` must be one of {sorted(_ROLES)}", param=f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            _expect(content, list, f"{where}.content", "a string or an array of content parts")
            for pindex, part in enumerate(content):
                ppath = f"{where}.content[{pindex}]"
                _expect(part, dict, ppath, "an object")
                kind = part.get("type")
                if not isinstance(kind, str) or kind not in _PART_TYPES:
                    raise invalid(f"`{ppath}.type` is not a known content part type", param=ppath)
                if kind == "text":
                    _expect(part.get("text"), str, f"{ppath}.text", "a string")
                if part["type"] == "image_url":
                    image = part.get("image_url")
                    _expect(image, dict, f"{ppath}.image_url", "an object with a url")
                    _expect(image.get("url"), str, f"{ppath}.image_url.url", "a string")
        if role == "tool":
            _expect(message.get("tool_call_id"), str, f"{where}.tool_call_id", "a string")
        calls = message.get("tool_calls")
        if calls is not None:
            _expect(calls, list, f"{where}.tool_calls", "an array")
            for cindex, call in enumerate(calls):
                cpath = f"{where}.tool_calls[{cindex}]"
                _expect(call, dict, cpath, "an object")
                _expect(call.get("function"), dict, f"{cpath}.function", "an object")
                _expect(call["function"].get("name"), str, f"{cpath}.function.name", "a string")
    if "stream" in body:
        _expect(body["stream"], bool, "stream", "a boolean")
    options = body.get("stream_options")
    if options is not None:
        _expect(options, dict, "stream_options", "an object")
    for name in ("max_tokens", "max_completion_tokens", "n", "seed"):
        if body.get(name) is not None:
            _expect(body[name], int, name, "an integer")
            if name != "seed" and not 1 <= body[name] <= _MAX_INT:
                raise invalid(f"`{name}` must be between 1 and {_MAX_INT}", param=name)
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        if body.get(name) is not None:
            if isinstance(body[name], bool):
                raise invalid(f"`{name}` must be a number", param=name, code="invalid_type")
            _expect(body[name], (int, float), name, "a number")
    if body.get("response_format") is not None:
        _expect(body["response_format"], dict, "response_format", "an object")
    if body.get("stop") is not None and not isinstance(body["stop"], str):
        _expect(body["stop"], list, "stop", "a string or an array of strings")
    tools = body.get("tools")
    if tools is not None:
        _expect(tools, list, "tools", "an array of tools")
        for index, tool in enumerate(tools):
            _expect(tool, dict, f"tools[{index}]", "an object")
            function = tool.get("function")
            _expect(function, dict, f"tools[{index}].function", "an object")
            _expect(function.get("name"), str, f"tools[{index}].function.name", "a string")
    metadata = body.get("metadata")
    if metadata is not None:
        _expect(metadata, dict, "metadata", "an object")


def check_embeddings(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise invalid(
            "you must provide a model parameter", param="model", code="missing_required_parameter"
        )
    _expect(model, str, "model", "a string")
    value = body.get("input")
    if value is None:
        raise invalid("`input` is required", param="input", code="missing_required_parameter")
    if not _embedding_input(value):
        raise invalid(
            "`input` must be a string, an array of strings, an array of token ids, "
            "or an array of token-id arrays",
            param="input",
        )
    metadata = body.get("metadata")
    if metadata is not None:
        _expect(metadata, dict, "metadata", "an object")


def _token_ids(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    )


def _embedding_input(value: Any) -> bool:
    """Every form OpenAI accepts: "text", ["a", "b"], [1, 2], [[1, 2], [3]]."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    return (
        all(isinstance(v, str) for v in value)
        or _token_ids(value)
        or all(_token_ids(v) for v in value)
    )
