"""Anthropic Messages clients (`POST /v1/messages`, Claude Code): their request in, OpenAI shape
through the gateway, their answer out — whatever provider actually answered. Used only when
the chosen upstream does not speak Messages itself (otherwise the body passes through).

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
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _image_part(block: JSON, where: str) -> JSON:
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{where}.source must be an object", param=f"{where}.source")
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = str(source.get("url", ""))
    return {"type": "image_url", "image_url": {"url": url}}


def _text_part(block: JSON, where: str) -> JSON:
    text = block.get("text", "")
    if not isinstance(text, str):
        raise invalid(f"{where}.text must be a string", param=f"{where}.text")
    part: JSON = {"type": "text", "text": text}
    if isinstance(block.get("cache_control"), dict):
        part["cache_control"] = block["cache_control"]  # a prompt-cache breakpoint
    return part


def _parts_content(parts: list[JSON]) -> str | list[JSON]:
    """Plain text stays a string; cache marks and images need the list of parts."""
    if all(p["type"] == "text" and "cache_control" not in p for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


class _Decoder:
    """One Anthropic body → an OpenAI chat body, noting what chat cannot carry."""

    def __init__(self) -> None:
        self.dropped: list[str] = []

    def drop(self, name: str) -> None:
        if name not in self.dropped:
            self.dropped.append(name)

    def system(self, system: Any) -> JSON | None:
        if isinstance(system, str):
            return {"role": "system", "content": system} if system else None
        if not isinstance(system, list):
            raise invalid("`system` must be a string or an array of text blocks", param="system")
        parts = []
        for index, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise invalid(f"system.{index} must be a text block", param=f"system.{index}")
            parts.append(_text_part(block, f"system.{index}"))
        return {"role": "system", "content": _parts_content(parts)} if parts else None

    def message(self, message: JSON, index: int) -> list[JSON]:
        role = message.get("role")
        where = f"messages.{index}"
        if role == "system":
            # Claude Code sends reminders as a system message mid-conversation: keep its place.
            system = self.system(message.get("content"))
            return [system] if system else []
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role must be user, assistant or system", param=f"{where}.role")
        content = message.get("content")
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        if not isinstance(content, list):
            raise invalid(f"{where}.content must be a string or blocks", param=f"{where}.content")
        out: list[JSON] = []
        parts: list[JSON] = []
        calls: list[JSON] = []
        for bindex, block in enumerate(content):
            bwhere = f"{where}.content.{bindex}"
            if not isinstance(block, dict):
                raise invalid(f"{bwhere} must be an object", param=bwhere)
            kind = block.get("type")
            if kind == "text":
                parts.append(_text_part(block, bwhere))
            elif kind == "image":
                parts.append(_image_part(block, bwhere))
            elif kind == "tool_use":
                calls.append(self.tool_call(block, bwhere))
            elif kind == "tool_result":
                out.append(self.tool_result(block, bwhere))
            elif kind in ("thinking", "redacted_thinking"):
                # Signed by the model that wrote them: only an Anthropic upstream can use them.
                self.drop("thinking blocks")
            elif isinstance(kind, str):
                self.drop(f"{kind} blocks")
            else:
                raise invalid(f"{bwhere}.type must be a string", param=f"{bwhere}.type")
        if role == "assistant":
            text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
            assistant: JSON = {"role": "assistant", "content": text or None}
            if calls:
                assistant["tool_calls"] = calls
            if text or calls:
                out.append(assistant)
        elif parts:
            out.append({"role": "user", "content": _parts_content(parts)})
        return out

    def tool_call(self, block: JSON, where: str) -> JSON:
        arguments = block.get("input")
        if arguments is not None and not isinstance(arguments, dict):
            raise invalid(f"{where}.input must be an object", param=f"{where}.input")
        return {
            "id": str(block.get("id") or f"toolu_{uuid.uuid4().hex[:20]}"),
            "type": "function",
            "function": {
                "name": str(block.get("name", "")),
                "arguments": orjson.dumps(arguments or {}).decode(),
            },
        }

    def tool_result(self, block: JSON, where: str) -> JSON:
        result = block.get("content")
        if result is not None and not isinstance(result, str | list):
            raise invalid(f"{where}.content must be a string or blocks", param=f"{where}.content")
        text = result if isinstance(result, str) else _text(result)
        if isinstance(result, list) and any(
            isinstance(b, dict) and b.get("type") == "image" for b in result
        ):
            self.drop("images in tool results")
        if block.get("is_error"):
            text = f"[error] {text}"
        return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}

    def tools(self, tools: Any) -> list[JSON]:
        if not isinstance(tools, list):
            raise invalid("`tools` must be an array", param="tools")
        out = []
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid(f"tools.{index} must be an object", param=f"tools.{index}")
            kind = tool.get("type")
            if kind not in (None, "custom"):
                self.drop(f"{kind} tool")  # Anthropic's server tools (web search, editor …)
                continue
            function: JSON = {
                "name": str(tool.get("name", "")),
                "description": str(tool.get("description", "")),
                "parameters": tool.get("input_schema") or {"type": "object"},
            }
            entry: JSON = {"type": "function", "function": function}
            if isinstance(tool.get("cache_control"), dict):
                entry["cache_control"] = tool["cache_control"]
            out.append(entry)
        return out


# Anthropic's thinking budget → OpenAI's reasoning_effort (and back, in the adapters).
def effort_for_budget(budget: int) -> str:
    if budget <= 2048:
        return "low"
    return "medium" if budget <= 16384 else "high"


def _reasoning_effort(thinking: Any, output_config: Any) -> str | None:
    if isinstance(output_config, dict) and output_config.get("effort") in ("low", "medium", "high"):
        return str(output_config["effort"])
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        return effort_for_budget(budget if isinstance(budget, int) else 8192)
    if kind == "adaptive":
        return "medium"
    return None


# Fields an OpenAI chat body has no place for; named in the decision when translated.
_UNCARRIED = ("context_management", "top_k", "service_tier", "container", "mcp_servers")


def to_openai(body: JSON) -> tuple[JSON, list[str]]:
    """An Anthropic Messages body → (an OpenAI chat body, what chat cannot carry)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` must be a non-empty array", param="messages")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise invalid("`max_tokens` is required and must be a positive integer", param="max_tokens")
    decoder = _Decoder()
    out_messages: list[JSON] = []
    if body.get("system"):
        system = decoder.system(body["system"])
        if system:
            out_messages.append(system)
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages.{index} must be an object", param=f"messages.{index}")
        out_messages.extend(decoder.message(message, index))
    out: JSON = {"model": model, "messages": out_messages, "max_tokens": max_tokens}
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    effort = _reasoning_effort(body.get("thinking"), body.get("output_config"))
    if effort:
        out["reasoning_effort"] = effort
    if body.get("tools"):
        tools = decoder.tools(body["tools"])
        if tools:
            out["tools"] = tools
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
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("`metadata` must be an object", param="metadata")
    if metadata:
        hints = {k: v for k, v in metadata.items() if k != "user_id"}
        if hints:
            out["metadata"] = hints
    for name in _UNCARRIED:
        if body.get(name) is not None:
            decoder.drop(name)
    return out, decoder.dropped


def usage_of(usage: Usage) -> JSON:
    """Anthropic counts cache reads and writes apart from `input_tokens`."""
    fresh = usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(0, fresh),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def from_openai(completion: JSON, usage: Usage) -> JSON:
    """An OpenAI chat.completion → an Anthropic message."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[JSON] = []
    if message.get("reasoning"):
        content.append({"type": "thinking", "thinking": message["reasoning"], "signature": ""})
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
            thinking = delta.get("reasoning") or delta.get("reasoning_content")
            if thinking:
                if self.block_kind != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": ""})
                out += _event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.block,
                        "delta": {"type": "thinking_delta", "thinking": thinking},
                    },
                )
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


class MessagesFormat:
    wire = "messages"

    def decode(self, body: JSON) -> tuple[JSON, list[str]]:
        return to_openai(body)

    def encode(self, completion: JSON, usage: Usage, request: JSON) -> JSON:
        return from_openai(completion, usage)

    def encoder(self, request: JSON) -> AnthropicEncoder:
        return AnthropicEncoder(str(request.get("model") or ""))

    def error_body(self, error: ApiError) -> JSON:
        return error_body(error)
