"""Checks on a client's JSON body, so bad input is a clear 400 and never a 500 further in."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from omen.errors import ApiError, invalid

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
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
        if role not in _ROLES:
            raise invalid(f"`{where}.role` must be one of {sorted(_ROLES)}", param=f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            _expect(content, list, f"{where}.content", "a string or an array of content parts")
            for pindex, part in enumerate(content):
                ppath = f"{where}.content[{pindex}]"
                _expect(part, dict, ppath, "an object")
                if part.get("type") not in _PART_TYPES:
                    raise invalid(f"`{ppath}.type` is not a known content part type", param=ppath)
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
            if name != "seed" and body[name] < 1:
                raise invalid(f"`{name}` must be at least 1", param=name)
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
    if isinstance(value, list):
        if not value:
            raise invalid("`input` must not be empty", param="input")
        if not all(isinstance(v, str) for v in value) and not all(
            isinstance(v, int) for v in value
        ):
            raise invalid("`input` must be a string or an array of strings", param="input")
    elif not isinstance(value, str):
        raise invalid("`input` must be a string or an array of strings", param="input")
