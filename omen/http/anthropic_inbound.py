"""Anthropic-format clients (`POST /v1/messages`): their request in, OpenAI shape through the
gateway, their answer out — whatever provider actually answered.

Pure functions plus a stream encoder: an Anthropic body → an OpenAI chat body; an OpenAI
completion → an Anthropic message; OpenAI chunks → Anthropic's event stream
(message_start, content_block_start/delta/stop, message_delta, message_stop).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from omen.errors import ApiError, invalid
from omen.providers import JSON, UpstreamError, Usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _image_part(block: JSON) -> JSON:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = str(source.get("url", ""))
    return {"type": "image_url", "image_url": {"url": url}}


def _convert_message(message: JSON, index: int) -> list[JSON]:
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise invalid(
            f"messages.{index}.role must be user or assistant", param=f"messages.{index}.role"
        )
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise invalid(
            f"messages.{index}.content must be a string or blocks",
            param=f"messages.{index}.content",
        )
    out: list[JSON] = []
    parts: list[JSON] = []
    calls: list[JSON] = []
    for block in content:
        if not isinstance(block, dict):
            raise invalid(f"messages.{index}.content holds a non-object block")
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id") or f"toolu_{uuid.uuid4().hex[:20]}",
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        elif kind == "tool_result":
            result = block.get("content")
            text = result if isinstance(result, str) else _text(result)
            if block.get("is_error"):
                text = f"[error] {text}"
            out.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text}
            )
        # thinking / redacted_thinking blocks are the model's own; nothing to send back
    if role == "assistant":
        text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
        assistant: JSON = {"role": "assistant", "content": text or None}
        if calls:
            assistant["tool_calls"] = calls
        out.append(assistant)
    elif parts:
        only_text = all(p["type"] == "text" for p in parts)
        out.append(
            {"role": "user", "content": "\n".join(p["text"] for p in parts) if only_text else parts}
        )
    return out


def to_openai(body: JSON) -> JSON:
    """An Anthropic Messages body → an OpenAI chat body for the gateway."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` must be a non-empty array", param="messages")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("`max_tokens` is required and must be a positive integer", param="max_tokens")
    out_messages: list[JSON] = []
    system = body.get("system")
    if system:
        out_messages.append({"role": "system", "content": _text(system)})
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{index} must be an object", param=f"messages.{index}")
        out_messages.extend(_convert_message(message, index))
    out: JSON = {"model": model, "messages": out_messages, "max_tokens": max_tokens}
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    tools = body.get("tools")
    if tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.get("name", ""),
                    "description": tool.get("description", ""),
                    "parameters": tool.get("input_schema") or {"type": "object"},
                },
            }
            for tool in tools
            if isinstance(tool, dict)
        ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        elif kind == "auto":
            out["tool_choice"] = "auto"
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        hints = {k: v for k, v in metadata.items() if k != "user_id"}
        if hints:
            out["metadata"] = hints
    return out


def usage_of(usage: Usage) -> JSON:
    out: JSON = {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens:
        out["cache_read_input_tokens"] = usage.cached_tokens
    return out


def from_openai(completion: JSON, usage: Usage) -> JSON:
    """An OpenAI chat.completion → an Anthropic message."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[JSON] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"_raw": function.get("arguments")}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(usage),
    }


def error_body(error: ApiError) -> JSON:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(error.status, "api_error"), "message": error.message},
    }


def _event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicEncoder:
    """OpenAI chunks → Anthropic's event stream, one content block at a time."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.block: int = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index → block index
        self.finish: str | None = None

    def _start(self, chunk: JSON) -> bytes:
        self.started = True
        message: JSON = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": chunk.get("model") or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _close_block(self) -> bytes:
        if self.block_kind is None:
            return b""
        self.block_kind = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.block})

    def _open(self, kind: str, content_block: JSON) -> bytes:
        out = self._close_block()
        self.block += 1
        self.block_kind = kind
        return out + _event(
            "content_block_start",
            {"type": "content_block_start", "index": self.block, "content_block": content_block},
        )

    def chunk(self, chunk: JSON) -> bytes:
        out = b"" if self.started else self._start(chunk)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.block_kind != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.block,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if index not in self.tool_blocks:
                    out += self._open(
                        "tool_use",
                        {
                            "type": "tool_use",
                            "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:20]}",
                            "name": function.get("name", ""),
                            "input": {},
                        },
                    )
                    self.tool_blocks[index] = self.block
                if function.get("arguments"):
                    out += _event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": self.tool_blocks[index],
                            "delta": {
                                "type": "input_json_delta",
                                "partial_json": function["arguments"],
                            },
                        },
                    )
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

    def done(self, usage: Usage | None) -> bytes:
        out = self._close_block()
        final = usage or Usage()
        out += _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": STOP_REASONS.get(self.finish or "stop", "end_turn"),
                    "stop_sequence": None,
                },
                "usage": usage_of(final),
            },
        )
        return out + _event("message_stop", {"type": "message_stop"})

    def error(self, error: UpstreamError) -> bytes:
        kind = "overloaded_error" if error.status in (503, 529) else "api_error"
        return _event("error", {"type": "error", "error": {"type": kind, "message": error.message}})
