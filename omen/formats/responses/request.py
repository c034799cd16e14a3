"""The request half: a Responses request body (instructions, `input` items, tools, options) as
an OpenAI chat body, and the list of what chat could not carry."""

from __future__ import annotations

from typing import Any

import orjson

from omen.errors import invalid
from omen.formats.responses.tools import (
    TOOL_LOADING_ITEMS,
    ToolTable,
    build_tools,
    drop,
    optional_str,
)
from omen.providers import JSON

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
TOOL_CHOICE_MODES = frozenset({"auto", "none", "required"})


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
    table = build_tools(body, dropped)
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
        if not is_int(limit) or limit < 1:
            raise invalid(
                "`max_output_tokens` must be a positive integer", param="max_output_tokens"
            )
        out["max_completion_tokens"] = limit
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not is_number(value):
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
        drop(dropped, "store")
    include = body.get("include")
    if include is not None:
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise invalid("`include` must be an array of strings", param="include")
        for value in include:
            drop(dropped, f"include.{value}")
    if body.get("truncation") == "auto":
        drop(dropped, "truncation")
    for name, value in body.items():
        if name not in HANDLED_FIELDS and value is not None:
            drop(dropped, name)


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
            namespace = optional_str(item, "namespace", at)
            arguments = _required_str(item, "arguments", at)
            self._call(item, at, self.table.chat_name(namespace, name), arguments)
        elif kind == "custom_tool_call":
            name = _required_str(item, "name", at)
            namespace = optional_str(item, "namespace", at)
            arguments = orjson.dumps({"input": _required_str(item, "input", at)}).decode()
            self._call(item, at, self.table.chat_name(namespace, name), arguments)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self._tool_output(item, at)
        elif kind == "reasoning":
            drop(self.dropped, "reasoning items")
        elif kind in TOOL_LOADING_ITEMS:
            pass  # their tools are in the table already
        elif kind == "item_reference":
            raise invalid(
                f"{at}: `item_reference` needs stored items; Omen is stateless: send the item "
                "itself",
                param=at,
            )
        elif kind in UNCARRIED_ITEMS:
            drop(self.dropped, f"{kind} items")
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
                drop(self.dropped, "images in assistant messages")
            self.assistant = {"role": "assistant", "content": text}
            return
        chat_role = "user" if role == "user" else "system"
        if all(p["type"] == "text" for p in parts):
            content: str | list[JSON] = "\n".join(p["text"] for p in parts)
        elif chat_role == "system":
            drop(self.dropped, "images in system messages")
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
            url = optional_str(part, "image_url", where)
            if url:
                image: JSON = {"url": url}
                detail = part.get("detail")
                if detail in ("low", "high", "auto"):
                    image["detail"] = detail
                parts.append({"type": "image_url", "image_url": image})
            else:
                drop(dropped, "input_image file_id")
        elif kind in ("input_file", "input_audio"):
            drop(dropped, f"{kind} parts")
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
        drop(dropped, "tool_choice.allowed_tools")
        return "required" if choice.get("mode") == "required" else "auto"
    drop(dropped, f"tool_choice {kind}")
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
            drop(dropped, f"reasoning.{name}")


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
        drop(dropped, f"text.format {kind}")


def _required_str(obj: JSON, key: str, at: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise invalid(f"{at}.{key} must be a string", param=f"{at}.{key}")
    return value


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
