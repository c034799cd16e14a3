"""OpenAI Responses clients (`POST /v1/responses`: Codex CLI, the Agents SDK): their request in
as an OpenAI chat body, the gateway's chat completion or chunk stream out as a Responses object
or event stream — whichever provider answered.

Omen is stateless here: `store: false`, the whole history in `input` every turn. Tool kinds chat
has no word for travel as function tools: a `namespace`'s tools flattened to
`<namespace>__<name>` (Codex's own canonical flat name, `ToolName::canonical_flat_name`), a
`custom` (free-form) tool as a function taking one string `input`. The tool table built from the
request maps a chat tool call back to the item the client dispatches on: a `function_call` with
its `namespace`, or a `custom_tool_call`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from omen.errors import ApiError, invalid
from omen.providers import JSON, UpstreamError, Usage

# Item types OpenAI accepts in `input` that chat cannot carry: dropped and named.
UNCARRIED_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "image_generation_call",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "compaction",
        "compaction_trigger",
        "context_compaction",
        "tool_search_call",
        "configuration_update",
        "program",
        "program_output",
    }
)
# Items whose `tools` become callable (tool search results): their tools join the chat tools.
TOOL_LOADING_ITEMS = frozenset({"tool_search_output", "additional_tools"})

# Request fields that need OpenAI's server-side state: refused, since Omen keeps none.
STATEFUL_FIELDS = {
    "previous_response_id": "`previous_response_id` needs stored responses",
    "conversation": "`conversation` needs a stored conversation",
    "background": "`background` responses need stored responses",
}
# Request fields read by to_chat, or harmless to leave behind (bookkeeping, not model input).
HANDLED_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "stream_options",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "user",
        "metadata",
        "text",
        "store",
        "include",
        "client_metadata",
        "truncation",
        "service_tier",
    }
) | frozenset(STATEFUL_FIELDS)
SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority"})
CHAT_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
CHAT_TOOL_NAME_LIMIT = 64
TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})
# Codex reads the retry delay out of the message with this wording (codex-api sse/responses.rs).
RETRY_HINT = re.compile(r"try again in\s*\d+(?:\.\d+)?\s*(?:s|ms|seconds?)\b", re.IGNORECASE)
CONTEXT_OVERFLOW = re.compile(
    r"context length|context window|maximum context|prompt is too long|input is too long"
    r"|too many (?:input )?tokens|exceeds the maximum number of tokens",
    re.IGNORECASE,
)
FAILED_CODES = frozenset(
    {"context_length_exceeded", "rate_limit_exceeded", "insufficient_quota", "server_error"}
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


# --- the tool table ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolOrigin:
    """What one chat function tool stands for in the client's request."""

    kind: str  # "function" | "custom"
    name: str
    namespace: str | None = None


@dataclass(slots=True)
class ToolTable:
    """The client's tools as chat function tools, and the way back from a chat tool name."""

    chat_tools: list[JSON] = field(default_factory=list)
    origins: dict[str, ToolOrigin] = field(default_factory=dict)  # chat name → origin
    chat_names: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def chat_name(self, namespace: str | None, name: str) -> str:
        """The chat name of a tool the client calls (known, or flattened as it would be)."""
        known = self.chat_names.get((namespace, name))
        if known is not None:
            return known
        return name if namespace is None else flat_name(namespace, name)

    def origin(self, chat_name: str) -> ToolOrigin:
        return self.origins.get(chat_name) or ToolOrigin("function", chat_name)

    def add(self, origin: ToolOrigin, function: JSON) -> None:
        key = (origin.namespace, origin.name)
        if key in self.chat_names:
            return  # declared twice (top level and by a tool search): one is enough
        chat_name = self._unique(origin)
        self.origins[chat_name] = origin
        self.chat_names[key] = chat_name
        self.chat_tools.append({"type": "function", "function": {"name": chat_name, **function}})

    def _unique(self, origin: ToolOrigin) -> str:
        # Any chat name maps back through the table, so a clash is settled by renaming.
        namespace = origin.namespace
        name = origin.name if namespace is None else flat_name(namespace, origin.name)
        if name in self.origins:
            name = _hashed(name, f"{origin.namespace}\x00{origin.name}")
        return name


def flat_name(namespace: str, name: str) -> str:
    """`<namespace>__<name>` as Codex flattens it, made a valid chat function name."""
    joined = f"{namespace.rstrip('_')}__{name.lstrip('_')}"
    safe = CHAT_TOOL_NAME.sub("_", joined)
    if safe != joined or len(safe) > CHAT_TOOL_NAME_LIMIT:
        return _hashed(safe, joined)
    return joined


def _hashed(name: str, key: str) -> str:
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{name[: CHAT_TOOL_NAME_LIMIT - 9]}_{digest}"


def tool_table(request: JSON) -> ToolTable:
    """The tool table of a request to_chat has accepted (never raises)."""
    try:
        return _build_tools(request, [])
    except ApiError:
        return ToolTable()


def _build_tools(body: JSON, dropped: list[str]) -> ToolTable:
    table = ToolTable()
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("`tools` must be an array", param="tools")
        _add_tools(table, tools, "tools", dropped)
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("type") in TOOL_LOADING_ITEMS:
            loaded = item.get("tools")
            if not isinstance(loaded, list):
                raise invalid(f"input[{index}].tools must be an array", param=f"input[{index}]")
            _add_tools(table, loaded, f"input[{index}].tools", dropped)
    return table


def _add_tools(
    table: ToolTable,
    tools: list[Any],
    where: str,
    dropped: list[str],
    namespace: tuple[str, str | None] | None = None,  # (name, description) of the group
) -> None:
    for index, tool in enumerate(tools):
        at = f"{where}[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise invalid(f"{at}: a tool must be an object with a `type`", param=at)
        kind = tool["type"]
        group = None if namespace is None else namespace[0]
        if kind in ("function", "custom"):
            function = _function_tool(tool, at) if kind == "function" else _custom_tool(tool, at)
            if namespace is not None and namespace[1] and "description" not in function:
                function = {"description": namespace[1], **function}
            table.add(ToolOrigin(kind, _name(tool, at), group), function)
        elif kind == "namespace" and namespace is None:
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise invalid(f"{at}.tools must be an array", param=f"{at}.tools")
            group_description = _optional_str(tool, "description", at)
            _add_tools(table, inner, f"{at}.tools", dropped, (_name(tool, at), group_description))
        else:
            _drop(dropped, f"{kind} tool")


def _name(tool: JSON, at: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{at}: a {tool.get('type')} tool needs a `name`", param=f"{at}.name")
    return name


def _function_tool(tool: JSON, at: str) -> JSON:
    function: JSON = {}
    description = _optional_str(tool, "description", at)
    if description:
        function["description"] = description
    parameters = tool.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    elif not isinstance(parameters, dict):
        raise invalid(f"{at}.parameters must be a JSON Schema object", param=f"{at}.parameters")
    function["parameters"] = parameters
    strict = tool.get("strict")
    if strict is not None:
        if not isinstance(strict, bool):
            raise invalid(f"{at}.strict must be a boolean", param=f"{at}.strict")
        function["strict"] = strict
    return function


def _custom_tool(tool: JSON, at: str) -> JSON:
    """A free-form tool as a function of one string, its grammar told in the description."""
    hint = "The tool's raw free-form input."
    spec = tool.get("format")
    if spec is not None:
        if not isinstance(spec, dict):
            raise invalid(f"{at}.format must be an object", param=f"{at}.format")
        if spec.get("type") == "grammar":
            syntax = spec.get("syntax")
            definition = spec.get("definition")
            if not isinstance(syntax, str) or not isinstance(definition, str):
                raise invalid(
                    f"{at}.format: a grammar needs `syntax` and `definition` strings",
                    param=f"{at}.format",
                )
            hint = f"The tool's raw input. It must match this {syntax} grammar:\n{definition}"
    function: JSON = {}
    description = _optional_str(tool, "description", at)
    if description:
        function["description"] = description
    function["parameters"] = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": hint}},
        "required": ["input"],
        "additionalProperties": False,
    }
    return function


# --- request: Responses → chat ----------------------------------------------------------------


def to_chat(body: JSON) -> tuple[JSON, list[str]]:
    """A Responses request body → (an OpenAI chat body, what chat could not carry)."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    for name, why in STATEFUL_FIELDS.items():
        if body.get(name) not in (None, False):
            raise invalid(
                f"{why}; Omen is stateless: send the whole conversation in `input` "
                "with `store: false`",
                param=name,
            )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required", param="model")
    dropped: list[str] = []
    table = _build_tools(body, dropped)
    messages = _messages(body, table, dropped)
    out: JSON = {"model": model, "messages": messages}
    choice = _tool_choice(body.get("tool_choice"), table, dropped)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise invalid("`parallel_tool_calls` must be a boolean", param="parallel_tool_calls")
    if table.chat_tools:  # chat refuses tool_choice and parallel_tool_calls without tools
        out["tools"] = table.chat_tools
        if choice is not None:
            out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    _reasoning(body.get("reasoning"), out, dropped)
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not _is_int(limit) or limit < 1:
            raise invalid(
                "`max_output_tokens` must be a positive integer", param="max_output_tokens"
            )
        out["max_completion_tokens"] = limit
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not _is_number(value):
                raise invalid(f"`{name}` must be a number", param=name)
            out[name] = value
    for name in ("prompt_cache_key", "safety_identifier", "user", "prompt_cache_retention"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise invalid(f"`{name}` must be a string", param=name)
            out[name] = value
    tier = body.get("service_tier")
    if isinstance(tier, str) and tier in SERVICE_TIERS:
        out["service_tier"] = tier
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise invalid("`metadata` must be an object", param="metadata")
        out["metadata"] = metadata
    _text_config(body.get("text"), out, dropped)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("`stream` must be a boolean", param="stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    _leftovers(body, dropped)
    return out, dropped


def _leftovers(body: JSON, dropped: list[str]) -> None:
    """Name the request fields chat has no place for."""
    if body.get("store") is True:
        _drop(dropped, "store")
    include = body.get("include")
    if include is not None:
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise invalid("`include` must be an array of strings", param="include")
        for value in include:
            _drop(dropped, f"include.{value}")
    if body.get("truncation") == "auto":
        _drop(dropped, "truncation")
    for name, value in body.items():
        if name not in HANDLED_FIELDS and value is not None:
            _drop(dropped, name)


def _messages(body: JSON, table: ToolTable, dropped: list[str]) -> list[JSON]:
    history = _History(table, dropped)
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid("`instructions` must be a string", param="instructions")
        if instructions:
            history.messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        history.messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for index, item in enumerate(items):
            history.add(item, index)
        history.close()
    elif items is not None:
        raise invalid("`input` must be a string or an array of items", param="input")
    if not history.messages:
        raise invalid("`input` is required", param="input")
    return history.messages


class _History:
    """Responses items → chat messages: assistant text and calls merge into one assistant
    message; images a tool returned follow the run of tool messages as a user message."""

    def __init__(self, table: ToolTable, dropped: list[str]) -> None:
        self.table = table
        self.dropped = dropped
        self.messages: list[JSON] = []
        self.assistant: JSON | None = None
        self.tool_images: list[JSON] = []

    def add(self, item: Any, index: int) -> None:
        at = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid(f"{at}: an item must be an object", param=at)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if not isinstance(kind, str):
            raise invalid(f"{at}: an item needs a `type`", param=at)
        if kind == "message":
            self._message(item, at)
        elif kind == "function_call":
            name = _required_str(item, "name", at)
            namespace = _optional_str(item, "namespace", at)
            arguments = _required_str(item, "arguments", at)
            self._call(item, at, self.table.chat_name(namespace, name), arguments)
        elif kind == "custom_tool_call":
            name = _required_str(item, "name", at)
            namespace = _optional_str(item, "namespace", at)
            arguments = orjson.dumps({"input": _required_str(item, "input", at)}).decode()
            self._call(item, at, self.table.chat_name(namespace, name), arguments)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._tool_output(item, at)
        elif kind == "reasoning":
            _drop(self.dropped, "reasoning items")
        elif kind in TOOL_LOADING_ITEMS:
            pass  # their tools are in the table already
        elif kind == "item_reference":
            raise invalid(
                f"{at}: `item_reference` needs stored items; Omen is stateless: send the item "
                "itself",
                param=at,
            )
        elif kind in UNCARRIED_ITEMS:
            _drop(self.dropped, f"{kind} items")
        else:
            raise invalid(f"{at}: unknown item type '{kind}'", param=f"{at}.type")

    def close(self) -> None:
        self._flush_assistant()
        self._flush_tool_images()

    def _flush_assistant(self) -> None:
        if self.assistant is not None:
            self.messages.append(self.assistant)
            self.assistant = None

    def _flush_tool_images(self) -> None:
        if self.tool_images:
            note = {"type": "text", "text": "Images returned by the tool calls above:"}
            self.messages.append({"role": "user", "content": [note, *self.tool_images]})
            self.tool_images = []

    def _message(self, item: JSON, at: str) -> None:
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise invalid(
                f"{at}.role must be one of user, system, developer, assistant",
                param=f"{at}.role",
            )
        parts = _content_parts(item.get("content"), at, self.dropped)
        self._flush_tool_images()
        self._flush_assistant()
        if role == "assistant":
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            if len(parts) != sum(p["type"] == "text" for p in parts):
                _drop(self.dropped, "images in assistant messages")
            self.assistant = {"role": "assistant", "content": text}
            return
        chat_role = "user" if role == "user" else "system"
        if all(p["type"] == "text" for p in parts):
            content: str | list[JSON] = "\n".join(p["text"] for p in parts)
        elif chat_role == "system":
            _drop(self.dropped, "images in system messages")
            content = "\n".join(p["text"] for p in parts if p["type"] == "text")
        else:
            content = parts
        self.messages.append({"role": chat_role, "content": content})

    def _call(self, item: JSON, at: str, chat_name: str, arguments: str) -> None:
        call_id = _required_str(item, "call_id", at)
        self._flush_tool_images()
        if self.assistant is None:
            self.assistant = {"role": "assistant", "content": None}
        function = {"name": chat_name, "arguments": arguments}
        call = {"id": call_id, "type": "function", "function": function}
        self.assistant.setdefault("tool_calls", []).append(call)

    def _tool_output(self, item: JSON, at: str) -> None:
        call_id = _required_str(item, "call_id", at)
        output = item.get("output")
        if isinstance(output, str):
            text = output
        elif isinstance(output, list):
            parts = _content_parts(output, f"{at}.output", self.dropped)
            text = "\n".join(p["text"] for p in parts if p["type"] == "text")
            self.tool_images.extend(p for p in parts if p["type"] == "image_url")
        else:
            raise invalid(f"{at}.output must be a string or an array", param=f"{at}.output")
        self._flush_assistant()
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})


def _content_parts(content: Any, at: str, dropped: list[str]) -> list[JSON]:
    """A message's content as chat parts (text and image_url only)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(f"{at}.content must be a string or an array", param=f"{at}.content")
    parts: list[JSON] = []
    for index, part in enumerate(content):
        where = f"{at}.content[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(f"{where}: a content part must be an object with a `type`", param=where)
        kind = part["type"]
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            parts.append({"type": "text", "text": _required_str(part, "text", where)})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _required_str(part, "refusal", where)})
        elif kind == "input_image":
            url = _optional_str(part, "image_url", where)
            if url:
                image: JSON = {"url": url}
                detail = part.get("detail")
                if detail in ("low", "high", "auto"):
                    image["detail"] = detail
                parts.append({"type": "image_url", "image_url": image})
            else:
                _drop(dropped, "input_image file_id")
        elif kind in ("input_file", "input_audio"):
            _drop(dropped, f"{kind} parts")
        else:
            raise invalid(f"{where}: unknown content part type '{kind}'", param=where)
    return parts


def _tool_choice(choice: Any, table: ToolTable, dropped: list[str]) -> Any:
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_MODES:
            raise invalid("`tool_choice` must be auto, none or required", param="tool_choice")
        return choice
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise invalid("`tool_choice` must be a string or an object", param="tool_choice")
    kind = choice["type"]
    if kind in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise invalid("`tool_choice.name` is required", param="tool_choice.name")
        namespace = choice.get("namespace")
        chat_name = table.chat_name(namespace if isinstance(namespace, str) else None, name)
        return {"type": "function", "function": {"name": chat_name}}
    if kind == "allowed_tools":
        _drop(dropped, "tool_choice.allowed_tools")
        return "required" if choice.get("mode") == "required" else "auto"
    _drop(dropped, f"tool_choice {kind}")
    return "auto"


def _reasoning(reasoning: Any, out: JSON, dropped: list[str]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise invalid("`reasoning` must be an object", param="reasoning")
    effort = reasoning.get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise invalid("`reasoning.effort` must be a string", param="reasoning.effort")
        out["reasoning_effort"] = effort
    # Whatever reasoning text the provider returns comes back as the summary; only a
    # requested style of summary is lost.
    for name in ("summary", "generate_summary"):
        if reasoning.get(name) not in (None, "auto"):
            _drop(dropped, f"reasoning.{name}")


def _text_config(text: Any, out: JSON, dropped: list[str]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise invalid("`text` must be an object", param="text")
    verbosity = text.get("verbosity")
    if verbosity is not None:
        if not isinstance(verbosity, str):
            raise invalid("`text.verbosity` must be a string", param="text.verbosity")
        out["verbosity"] = verbosity
    spec = text.get("format")
    if spec is None:
        return
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise invalid("`text.format` must be an object with a `type`", param="text.format")
    kind = spec["type"]
    if kind == "json_schema":
        name = spec.get("name")
        schema = spec.get("schema")
        if not isinstance(name, str) or not isinstance(schema, dict):
            raise invalid(
                "`text.format` json_schema needs a `name` and a `schema` object",
                param="text.format",
            )
        json_schema: JSON = {"name": name, "schema": schema}
        for key in ("description", "strict"):
            if spec.get(key) is not None:
                json_schema[key] = spec[key]
        out["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    elif kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind != "text":
        _drop(dropped, f"text.format {kind}")


def _drop(dropped: list[str], name: str) -> None:
    if name not in dropped:
        dropped.append(name)


def _required_str(obj: JSON, key: str, at: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"{at}.{key} must be a string", param=f"{at}.{key}")
    return value


def _optional_str(obj: JSON, key: str, at: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{at}.{key} must be a string", param=f"{at}.{key}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- response: chat → Responses ---------------------------------------------------------------


def usage_from_responses(usage: JSON | None) -> Usage:
    """Responses usage (input_tokens include the cached ones) → Usage."""
    if not isinstance(usage, dict):
        return Usage()
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    inputs = inputs if isinstance(inputs, dict) else {}
    outputs = outputs if isinstance(outputs, dict) else {}
    return Usage(
        prompt_tokens=_count(usage.get("input_tokens")),
        completion_tokens=_count(usage.get("output_tokens")),
        cached_tokens=_count(inputs.get("cached_tokens")),
        reasoning_tokens=_count(outputs.get("reasoning_tokens")),
        cache_write_tokens=_count(inputs.get("cache_write_tokens")),
    )


def _count(value: Any) -> int:
    return value if _is_int(value) and value > 0 else 0


def usage_to_responses(usage: Usage) -> JSON:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _envelope(request: JSON, response_id: str, created_at: int, model: str) -> JSON:
    """A `response` object with no output yet, echoing the request as OpenAI does."""
    reasoning = request.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    metadata = request.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    tier = request.get("service_tier")
    text = request.get("text")
    tools = request.get("tools")
    choice = request.get("tool_choice")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": _str_or_none(request.get("instructions")),
        "max_output_tokens": request.get("max_output_tokens")
        if _is_int(request.get("max_output_tokens"))
        else None,
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "prompt_cache_key": _str_or_none(request.get("prompt_cache_key")),
        "reasoning": {
            "effort": _str_or_none(reasoning.get("effort")),
            "summary": _str_or_none(reasoning.get("summary")),
        },
        "safety_identifier": _str_or_none(request.get("safety_identifier")),
        "service_tier": tier if isinstance(tier, str) and tier in SERVICE_TIERS else "default",
        "store": False,
        "temperature": _number_or(request.get("temperature"), 1.0),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}},
        "tool_choice": choice if isinstance(choice, str | dict) else "auto",
        "tools": tools if isinstance(tools, list) else [],
        "top_logprobs": 0,
        "top_p": _number_or(request.get("top_p"), 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": _str_or_none(request.get("user")),
        # OpenAI's metadata holds strings only; Omen's routing hints may not be.
        "metadata": {k: v for k, v in metadata.items() if isinstance(v, str)},
    }


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number_or(value: Any, default: float) -> float:
    return float(value) if _is_number(value) else default


def _finish(response: JSON, finish_reason: str | None) -> None:
    """Set the final status: `incomplete` when the output was cut off."""
    if finish_reason == "length":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    elif finish_reason == "content_filter":
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
    else:
        response["status"] = "completed"
        response["completed_at"] = int(time.time())


def _text_part(text: str) -> JSON:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(item_id: str, text: str, status: str) -> JSON:
    content = [_text_part(text)] if status != "in_progress" else []
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _reasoning_item(item_id: str, text: str | None) -> JSON:
    summary = [] if text is None else [{"type": "summary_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": summary}


def _call_item(origin: ToolOrigin, call_id: str, payload: str, status: str) -> JSON:
    """A `function_call` or `custom_tool_call` item; `payload` is the arguments or the input."""
    if origin.kind == "custom":
        item: JSON = {"id": new_id("ctc"), "type": "custom_tool_call", "status": status}
        item.update(call_id=call_id, input=payload, name=origin.name)
    else:
        item = {"id": new_id("fc"), "type": "function_call", "status": status}
        item.update(arguments=payload, call_id=call_id, name=origin.name)
    if origin.namespace is not None:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's input out of the chat arguments `{"input": "..."}` the model wrote."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("input"), str):
        return str(parsed["input"])
    return parsed if isinstance(parsed, str) else arguments


def from_chat(completion: JSON, usage: Usage, request: JSON) -> JSON:
    """An OpenAI chat.completion → a Responses `response` object (completed or incomplete)."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    finish_reason = _str_or_none(choice.get("finish_reason"))
    model = _str_or_none(completion.get("model")) or str(request.get("model") or "")
    created_at = _int_or(completion.get("created"), int(time.time()))
    response = _envelope(request, new_id("resp"), created_at, model)
    table = tool_table(request)
    cut = finish_reason == "length"
    output: list[JSON] = []
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(_reasoning_item(new_id("rs"), reasoning))
    text = message.get("content")
    if not isinstance(text, str) or not text:
        text = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    if text or not calls:
        status = "incomplete" if cut and not calls else "completed"
        output.append(_message_item(new_id("msg"), str(text), status))
    for call in calls:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        origin = table.origin(str(function.get("name") or ""))
        arguments = _str_or_none(function.get("arguments")) or ""
        payload = custom_input(arguments) if origin.kind == "custom" else arguments
        call_id = _str_or_none(call.get("id")) or new_id("call")
        output.append(_call_item(origin, call_id, payload, "completed"))
    response["output"] = output
    response["usage"] = usage_to_responses(usage)
    _finish(response, finish_reason)
    return response


# --- stream: chat chunks → Responses events ---------------------------------------------------


def _sse(event: JSON) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _InputDecoder:
    """Streams the decoded `input` string out of a custom tool's arguments `{"input": "…"}`
    as the JSON pieces arrive. Arguments of another shape stream nothing; the done event
    then carries the whole input."""

    OPENING = re.compile(r'\s*\{\s*"input"\s*:\s*"')
    ESCAPES: ClassVar[dict[str, str]] = {
        '"': '"',
        "\\": "\\",
        "/": "/",
        "b": "\b",
        "f": "\f",
        "n": "\n",
        "r": "\r",
        "t": "\t",
    }

    def __init__(self) -> None:
        self.buffer = ""
        self.position: int | None = None  # where the undecoded rest of the string starts
        self.stopped = False

    def feed(self, piece: str) -> str:
        self.buffer += piece
        if self.stopped:
            return ""
        if self.position is None:
            opening = self.OPENING.match(self.buffer)
            if opening is None:
                compact = re.sub(r"\s+", "", self.buffer)
                self.stopped = not '{"input":"'.startswith(compact)
                return ""
            self.position = opening.end()
        return self._decode()

    def _decode(self) -> str:
        assert self.position is not None
        out: list[str] = []
        buffer, at = self.buffer, self.position
        while at < len(buffer):
            char = buffer[at]
            if char == '"':
                self.stopped = True
                break
            if char != "\\":
                out.append(char)
                at += 1
                continue
            if at + 1 >= len(buffer):
                break  # the escape is split across pieces: wait for the rest
            escape = buffer[at + 1]
            if escape in self.ESCAPES:
                out.append(self.ESCAPES[escape])
                at += 2
                continue
            if escape != "u":
                self.stopped = True
                break
            decoded = self._unicode(buffer, at)
            if decoded is None:
                break
            text, at = decoded
            out.append(text)
        self.position = at
        return "".join(out)

    def _unicode(self, buffer: str, start: int) -> tuple[str, int] | None:
        """A `\\uXXXX` escape (or a surrogate pair of them) at `start`; None until complete."""
        if start + 6 > len(buffer):
            return None
        code = _hex(buffer[start + 2 : start + 6])
        if 0xD800 <= code < 0xDC00:  # a surrogate pair: wait for its second half
            if start + 12 > len(buffer):
                return None
            low = _hex(buffer[start + 8 : start + 12])
            if buffer[start + 6 : start + 8] == "\\u" and 0xDC00 <= low < 0xE000:
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)), start + 12
        if code < 0:
            self.stopped = True
            return None
        if 0xD800 <= code < 0xE000:
            return "\ufffd", start + 6  # half a pair cannot be encoded
        return chr(code), start + 6


def _hex(digits: str) -> int:
    try:
        return int(digits, 16)
    except ValueError:
        return -1


@dataclass(slots=True)
class _Open:
    """One output item being streamed."""

    index: int
    item: JSON
    text: list[str] = field(default_factory=list)
    decoder: _InputDecoder | None = None

    @property
    def item_id(self) -> str:
        return str(self.item["id"])


class ResponsesEncoder:
    """OpenAI chunks → the Responses event stream, one output item at a time."""

    def __init__(self, request: JSON) -> None:
        self.request = request
        self.tools = tool_table(request)
        self.response_id = new_id("resp")
        self.created_at = int(time.time())
        self.model = str(request.get("model") or "")
        self.sequence = 0
        self.started = False
        self.finished = False
        self.output: list[JSON] = []  # items, by output_index
        self.current: _Open | None = None  # the open message or reasoning item
        self.calls: dict[int, _Open] = {}  # chat tool-call index → its item
        self.finish_reason: str | None = None
        self.usage: Usage | None = None

    # events

    def _event(self, kind: str, **fields: Any) -> bytes:
        event: JSON = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return _sse(event)

    def _response(self, status: str) -> JSON:
        response = _envelope(self.request, self.response_id, self.created_at, self.model)
        response["status"] = status
        response["output"] = list(self.output)
        return response

    def _start(self) -> bytes:
        self.started = True
        return self._event(
            "response.created", response=self._response("in_progress")
        ) + self._event("response.in_progress", response=self._response("in_progress"))

    def _open(self, item: JSON) -> _Open:
        opened = _Open(len(self.output), item)
        self.output.append(item)
        return opened

    def _added(self, opened: _Open) -> bytes:
        return self._event(
            "response.output_item.added", output_index=opened.index, item=dict(opened.item)
        )

    def _item_done(self, opened: _Open, item: JSON) -> bytes:
        self.output[opened.index] = item
        return self._event("response.output_item.done", output_index=opened.index, item=item)

    # chunks

    def chunk(self, chunk: JSON) -> bytes:
        if self.finished:
            return b""
        model = chunk.get("model")
        if isinstance(model, str) and model:
            self.model = model
        if isinstance(chunk.get("usage"), dict):
            self.usage = Usage.from_openai(chunk["usage"])
        out = b"" if self.started else self._start()
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out += self._reasoning_delta(reasoning)
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out += self._text_delta(text)
            calls = delta.get("tool_calls")
            for position, call in enumerate(calls if isinstance(calls, list) else []):
                if isinstance(call, dict):
                    out += self._call_delta(call, position)
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]
        return out

    def _reasoning_delta(self, text: str) -> bytes:
        out = b""
        if self.current is None or self.current.item["type"] != "reasoning":
            out += self._close_current()
            self.current = self._open(_reasoning_item(new_id("rs"), None))
            out += self._added(self.current)
            out += self._event(
                "response.reasoning_summary_part.added",
                **self._where(self.current),
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        self.current.text.append(text)
        return out + self._event(
            "response.reasoning_summary_text.delta",
            **self._where(self.current),
            summary_index=0,
            delta=text,
        )

    def _text_delta(self, text: str) -> bytes:
        out = b""
        if self.current is None or self.current.item["type"] != "message":
            out += self._close_current()
            self.current = self._open(_message_item(new_id("msg"), "", "in_progress"))
            out += self._added(self.current)
            out += self._event(
                "response.content_part.added",
                **self._where(self.current),
                content_index=0,
                part=_text_part(""),
            )
        self.current.text.append(text)
        return out + self._event(
            "response.output_text.delta",
            **self._where(self.current),
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _call_delta(self, call: JSON, position: int) -> bytes:
        index = _int_or(call.get("index"), position)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out = b""
        opened = self.calls.get(index)
        if opened is None:
            # A new call closes what streamed before it; OpenAI streams calls one at a time.
            out += self._close_current()
            out += self._close_calls()
            origin = self.tools.origin(str(function.get("name") or ""))
            call_id = _str_or_none(call.get("id")) or new_id("call")
            opened = self._open(_call_item(origin, call_id, "", "in_progress"))
            if origin.kind == "custom":
                opened.decoder = _InputDecoder()
            self.calls[index] = opened
            out += self._added(opened)
        piece = function.get("arguments")
        if not isinstance(piece, str) or not piece:
            return out
        opened.text.append(piece)
        if opened.item.get("status") != "in_progress":
            return out  # a late piece of a call already closed: kept for the final response
        if opened.decoder is None:
            return out + self._event(
                "response.function_call_arguments.delta", **self._where(opened), delta=piece
            )
        decoded = opened.decoder.feed(piece)
        if not decoded:
            return out
        return out + self._event(
            "response.custom_tool_call_input.delta", **self._where(opened), delta=decoded
        )

    @staticmethod
    def _where(opened: _Open) -> JSON:
        return {"item_id": opened.item_id, "output_index": opened.index}

    # closing

    def _item_status(self) -> str:
        return "incomplete" if self.finish_reason == "length" else "completed"

    def _close_current(self) -> bytes:
        opened, self.current = self.current, None
        if opened is None:
            return b""
        text = "".join(opened.text)
        where = self._where(opened)
        if opened.item["type"] == "reasoning":
            part = {"type": "summary_text", "text": text}
            return (
                self._event(
                    "response.reasoning_summary_text.done", **where, summary_index=0, text=text
                )
                + self._event(
                    "response.reasoning_summary_part.done", **where, summary_index=0, part=part
                )
                + self._item_done(opened, _reasoning_item(opened.item_id, text))
            )
        item = _message_item(opened.item_id, text, self._item_status())
        return (
            self._event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            + self._event(
                "response.content_part.done", **where, content_index=0, part=_text_part(text)
            )
            + self._item_done(opened, item)
        )

    def _close_calls(self) -> bytes:
        out = b""
        for opened in self.calls.values():
            if opened.item.get("status") == "in_progress":
                out += self._close_call(opened)
        return out

    def _close_call(self, opened: _Open) -> bytes:
        arguments = "".join(opened.text)
        item = dict(opened.item, status=self._item_status())
        opened.item["status"] = item["status"]
        where = self._where(opened)
        if item["type"] == "custom_tool_call":
            item["input"] = custom_input(arguments)
            event = self._event(
                "response.custom_tool_call_input.done", **where, input=item["input"]
            )
        else:
            item["arguments"] = arguments
            event = self._event(
                "response.function_call_arguments.done", **where, arguments=arguments
            )
        return event + self._item_done(opened, item)

    def _late_pieces(self) -> None:
        """Pieces that arrived for a call after it was closed still belong in its item."""
        for opened in self.calls.values():
            item = self.output[opened.index]
            arguments = "".join(opened.text)
            if item["type"] == "function_call":
                item["arguments"] = arguments
            else:
                item["input"] = custom_input(arguments)

    def done(self, usage: Usage | None) -> bytes:
        """Close what is open and end with response.completed (or response.incomplete)."""
        if self.finished:
            return b""
        out = b"" if self.started else self._start()
        out += self._close_current() + self._close_calls()
        if not self.output:
            self.current = self._open(_message_item(new_id("msg"), "", "in_progress"))
            out += self._added(self.current)
            out += self._event(
                "response.content_part.added",
                **self._where(self.current),
                content_index=0,
                part=_text_part(""),
            )
            out += self._close_current()
        self._late_pieces()
        self.finished = True
        response = self._response("completed")
        final = usage or self.usage
        response["usage"] = usage_to_responses(final) if final is not None else None
        _finish(response, self.finish_reason)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        return out + self._event(kind, response=response)

    def error(self, error: UpstreamError) -> bytes:
        """A `response.failed` event carrying the code Codex acts on."""
        if self.finished:
            return b""
        out = b"" if self.started else self._start()
        self.finished = True
        response = self._response("failed")
        response["output"] = [
            dict(item, status="incomplete") if item.get("status") == "in_progress" else item
            for item in response["output"]
        ]
        if self.usage is not None:
            response["usage"] = usage_to_responses(self.usage)
        response["error"] = failed_error(error)
        return out + self._event("response.failed", response=response)


# --- errors and passthrough -------------------------------------------------------------------


def failed_code(error: UpstreamError) -> str:
    """The `response.failed` error code Codex acts on: it compacts on context_length_exceeded,
    waits and retries on rate_limit_exceeded, stops on insufficient_quota, retries the rest."""
    code = error.code or ""
    if code in FAILED_CODES:
        return code
    if error.type in ("insufficient_quota", "quota_exceeded", "budget_exceeded"):
        return "insufficient_quota"
    if code in ("context_window_exceeded", "prompt_too_long") or (
        error.status in (400, 413) and CONTEXT_OVERFLOW.search(error.message)
    ):
        return "context_length_exceeded"
    if error.status == 429 or error.type == "rate_limit_exceeded":
        return "rate_limit_exceeded"
    return "server_error"


def failed_error(error: UpstreamError) -> JSON:
    """`response.error` for a failed response; a rate limit says when to try again, in the
    words Codex parses ("Please try again in Ns.")."""
    code = failed_code(error)
    message = error.message or "The upstream failed while answering."
    if code == "rate_limit_exceeded" and not RETRY_HINT.search(message):
        seconds = max(1, math.ceil(error.retry_after or 1))
        message = f"{message.rstrip()} Please try again in {seconds}s."
    return {"code": code, "message": message}


class ResponsesUsageReader:
    """For passthrough: reads usage and the model off an upstream's Responses events."""

    LIFECYCLE = frozenset(
        {
            "response.created",
            "response.in_progress",
            "response.completed",
            "response.incomplete",
            "response.failed",
        }
    )

    def feed(self, event: JSON) -> tuple[Usage | None, str | None]:
        """(usage if this event carried some, the model if it named one)."""
        if not isinstance(event, dict) or event.get("type") not in self.LIFECYCLE:
            return None, None
        response = event.get("response")
        if not isinstance(response, dict):
            return None, None
        usage = response.get("usage")
        model = response.get("model")
        return (
            usage_from_responses(usage) if isinstance(usage, dict) else None,
            model if isinstance(model, str) and model else None,
        )
