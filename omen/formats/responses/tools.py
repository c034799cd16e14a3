"""The tool table: the client's tools as chat function tools (a `namespace`'s tools flattened to
`<namespace>__<name>`, a `custom` tool as a function of one string `input`), and the way back
from a chat tool name to the tool the client declared."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from omen.errors import ApiError, invalid
from omen.providers import JSON

# Items whose `tools` become callable (tool search results): their tools join the chat tools.
TOOL_LOADING_ITEMS = frozenset({"tool_search_output", "additional_tools"})
CHAT_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
CHAT_TOOL_NAME_LIMIT = 64


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
        return build_tools(request, [])
    except ApiError:
        return ToolTable()


def build_tools(body: JSON, dropped: list[str]) -> ToolTable:
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
            group_description = optional_str(tool, "description", at)
            _add_tools(table, inner, f"{at}.tools", dropped, (_name(tool, at), group_description))
        else:
            drop(dropped, f"{kind} tool")


def _name(tool: JSON, at: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{at}: a {tool.get('type')} tool needs a `name`", param=f"{at}.name")
    return name


def _function_tool(tool: JSON, at: str) -> JSON:
    function: JSON = {}
    description = optional_str(tool, "description", at)
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
    description = optional_str(tool, "description", at)
    if description:
        function["description"] = description
    function["parameters"] = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": hint}},
        "required": ["input"],
        "additionalProperties": False,
    }
    return function


def drop(dropped: list[str], name: str) -> None:
    if name not in dropped:
        dropped.append(name)


def optional_str(obj: JSON, key: str, at: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{at}.{key} must be a string", param=f"{at}.{key}")
    return value
