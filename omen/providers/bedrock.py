"""AWS Bedrock's Converse API (/model/{id}/converse and /converse-stream) behind the OpenAI shape.

Translation is pure functions over dicts (request, response, one stream event at a time);
`BedrockProvider` signs and moves bytes. Differences that matter: content is a list of typed
blocks, tool results travel as `toolResult` blocks in a user turn, the stream is AWS's binary
event stream (decoded by botocore) whose usage comes in a `metadata` event *after*
`messageStop`, and every request is SigV4-signed for the service `bedrock` (or carries a
Bedrock API key as a Bearer token). What a coding agent's request means is carried across:
cache breakpoints as `cachePoint` blocks, `reasoning_effort` as Claude's thinking, later system
messages folded into their user turn, `response_format` through a forced tool.

Claude models also take an Anthropic Messages body unchanged through InvokeModel
(/model/{id}/invoke and /invoke-with-response-stream): the passthrough for Anthropic-format
clients, whose stream events come back base64-wrapped in `chunk` frames and are relayed as SSE.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from botocore.auth import SigV4Auth  # type: ignore[import-untyped,unused-ignore]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped,unused-ignore]
from botocore.credentials import (  # type: ignore[import-untyped,unused-ignore]
    RefreshableCredentials,
)
from botocore.eventstream import (  # type: ignore[import-untyped,unused-ignore]
    EventStreamBuffer,
    ParserError,
)
from botocore.exceptions import BotoCoreError  # type: ignore[import-untyped,unused-ignore]
from botocore.session import Session  # type: ignore[import-untyped,unused-ignore]

from omen.config import ProviderConfig
from omen.providers.anthropic import running_usage, usage_from_anthropic
from omen.providers.base import (
    JSON,
    ChatResponse,
    ChunkEnvelope,
    EmbeddingResponse,
    NativeCall,
    Probe,
    Relayed,
    UpstreamError,
    Usage,
    as_object,
    failed_probe,
    token_count,
)
from omen.providers.http import (
    Body,
    UpstreamClients,
    UpstreamSettings,
    UpstreamStream,
    fetch,
    loads,
    open_stream,
    parse_retry_after,
    post_json,
    truncated,
)

# Not "bedrock-runtime": the credential scope is .../{region}/bedrock/aws4_request.
SIGNING_NAME = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_REGION_IN_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com")
# A system message from mid-conversation, folded into a user turn, starts with this.
SYSTEM_LABEL = "[System message]\n"
# The tool a `response_format` answer is forced through (when the schema has no name).
JSON_TOOL = "json_response"
JSON_TOOL_DESCRIPTION = "Give the final answer as this tool's input, following its schema."
# reasoning_effort → Claude's thinking budget_tokens ("minimal": no thinking).
THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}
MIN_THINKING_BUDGET = 1024
ANSWER_ROOM = 4096  # output tokens beyond the thinking budget when the client set no limit
# Claude models older than 3.7 Sonnet: no extended thinking.
_NO_THINKING = re.compile(r"claude-(?:instant|v2|3-(?:haiku|sonnet|opus|5))")
# InvokeModel on Bedrock speaks Anthropic's Messages body with this version in the body.
BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
# Betas Bedrock's InvokeModel takes for Claude. Any other flag fails the whole request with
# 400 "invalid beta flag", and Claude Code sends first-party ones (claude-code-20250219,
# prompt-caching-scope-…, mcp-servers-…), so the rest stay behind.
BEDROCK_BETAS = frozenset(
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


def is_anthropic_model(model: str) -> bool:
    """Claude on Bedrock: `anthropic.…`, `us.anthropic.…`, or an inference-profile ARN."""
    lowered = model.lower()
    return "anthropic." in lowered or "claude" in lowered


# --- request ---------------------------------------------------------------------------


def _unsupported(message: str, code: str) -> UpstreamError:
    # Retryable: another provider may take what Bedrock cannot.
    return UpstreamError(400, message, type_="invalid_request_error", code=code, retryable=True)


def image_block(url: str) -> JSON:
    """An OpenAI image URL → a Converse image block; Bedrock wants the bytes, not a link."""
    if not url.startswith("data:"):
        raise _unsupported(
            "Bedrock accepts images only as data: URLs (base64); this request has an http(s) "
            "image URL",
            "unsupported_image_url",
        )
    header, _, data = url.partition(",")
    mime = header[5:].split(";")[0].strip().lower()
    image_format = _IMAGE_FORMATS.get(mime)
    if image_format is None or ";base64" not in header:
        raise _unsupported(
            f"Bedrock accepts base64 png, jpeg, gif and webp images, not {mime or 'this image'}",
            "unsupported_image_format",
        )
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def cache_point(marker: Any) -> JSON | None:
    """A chat `cache_control` breakpoint → the Converse block that ends a cached prefix.

    Converse marks a breakpoint with a block of its own placed *after* the cached content,
    where Anthropic flags the last cached block itself; TTLs Bedrock knows ("5m", "1h") carry.
    """
    if not isinstance(marker, dict) or marker.get("type") != "ephemeral":
        return None
    point: JSON = {"type": "default"}
    if marker.get("ttl") in ("5m", "1h"):
        point["ttl"] = marker["ttl"]
    return {"cachePoint": point}


def _with_cache_point(blocks: list[JSON], marker: Any) -> list[JSON]:
    point = cache_point(marker)
    if point is not None and blocks and "cachePoint" not in blocks[-1]:
        blocks.append(point)
    return blocks


def _content_blocks(content: Any) -> list[JSON]:
    # Bedrock rejects blank text blocks, which OpenAI clients send routinely (content "").
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[JSON] = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(image_block((part.get("image_url") or {}).get("url", "")))
        else:
            continue
        _with_cache_point(blocks, part.get("cache_control"))
    return blocks


def _tool_use_block(call: JSON) -> JSON:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = {}
    return {
        "toolUse": {
            "toolUseId": call.get("id") or "",
            "name": function.get("name") or "",
            "input": parsed if isinstance(parsed, dict) else {},
        }
    }


def _tool_result_block(message: JSON) -> JSON:
    text = _text_of(message.get("content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    content = [{"json": parsed}] if isinstance(parsed, dict) else [{"text": text}]
    return {
        "toolResult": {
            "toolUseId": message.get("tool_call_id") or "",
            "content": content,
            "status": "success",
        }
    }


def _marker_of(message: JSON) -> Any:
    """The breakpoint that closes a message: on the message itself, or on its last part."""
    if message.get("cache_control"):
        return message["cache_control"]
    content = message.get("content")
    parts = [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []
    return parts[-1].get("cache_control") if parts else None


def _system_blocks(message: JSON) -> list[JSON]:
    content = message.get("content")
    if not isinstance(content, list):
        blocks = [{"text": content}] if isinstance(content, str) and content else []
        return _with_cache_point(blocks, message.get("cache_control"))
    blocks = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
            _with_cache_point(blocks, part.get("cache_control"))
    return _with_cache_point(blocks, message.get("cache_control"))


def folded_system(blocks: list[JSON]) -> list[JSON]:
    """A system message from the middle of a conversation, as text a user turn can carry.

    Converse has one top-level `system`; moving a later system message up there would change
    what the model read when, and dropping it loses an instruction. It travels in the user
    turn at its place instead, labelled so the model still reads it as an instruction.
    """
    out = [dict(block) for block in blocks]
    for block in out:
        if "text" in block:
            block["text"] = SYSTEM_LABEL + block["text"]
            break
    return out


def _append_turn(turns: list[JSON], role: str, blocks: list[JSON]) -> None:
    if not blocks:
        return
    # Roles must alternate: parallel tool results and a following user text share a turn.
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _turns(messages: list[JSON]) -> tuple[list[JSON], list[JSON]]:
    """The system blocks and the alternating user/assistant turns Converse expects.

    System messages before the conversation starts are the top-level `system`; later ones are
    folded into the user turn at their place (see `folded_system`): ahead of the next user
    message's text, but after tool results, which Claude needs first in their turn.
    """
    system: list[JSON] = []
    turns: list[JSON] = []
    pending: list[JSON] = []  # later system messages, waiting for a user turn to carry them
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            blocks = _system_blocks(message)
            if turns or pending:
                pending.extend(folded_system(blocks))
            else:
                system.extend(blocks)
            continue
        if role == "tool":
            blocks = _with_cache_point([_tool_result_block(message)], _marker_of(message))
            _append_turn(turns, "user", blocks)
        elif role == "assistant":
            _append_turn(turns, "user", pending)
            pending = []
            blocks = _content_blocks(message.get("content"))
            blocks.extend(_tool_use_block(call) for call in message.get("tool_calls") or [])
            _with_cache_point(blocks, message.get("cache_control"))
            _append_turn(turns, "assistant", blocks)
        else:
            blocks = _content_blocks(message.get("content"))
            _with_cache_point(blocks, message.get("cache_control"))
            _append_turn(turns, "user", pending + blocks)
            pending = []
    _append_turn(turns, "user", pending)
    return system, turns


def json_tool(body: JSON) -> JSON | None:
    """The tool that carries a `response_format` answer, if the body asks for one.

    Converse has no structured-output switch that every model honours, so Omen offers the
    schema as a tool and makes the model call it (`toolChoice`); the call's input is the
    answer, returned to the client as the message content with finish_reason "stop". With
    tools of its own the client keeps them: the model must then call one of them or this one.
    Models without forced tool choice (toolChoice `any`/`tool`: Claude, Mistral Large, Nova)
    refuse such a request with a ValidationException.
    """
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        name = spec.get("name") or JSON_TOOL
        description = spec.get("description") or JSON_TOOL_DESCRIPTION
    elif kind == "json_object":
        schema, name, description = {"type": "object"}, JSON_TOOL, JSON_TOOL_DESCRIPTION
    else:
        return None
    return {"toolSpec": {"name": name, "description": description, "inputSchema": {"json": schema}}}


def _tool_specs(tools: list[JSON]) -> list[JSON]:
    specs: list[JSON] = []
    for tool in tools:
        function = tool.get("function") or {}
        spec: JSON = {
            "name": function.get("name", ""),
            "inputSchema": {
                "json": function.get("parameters") or {"type": "object", "properties": {}}
            },
        }
        if function.get("description"):
            spec["description"] = function["description"]
        specs.append({"toolSpec": spec})
        _with_cache_point(specs, tool.get("cache_control"))
    return specs


def _named_choice(choice: Any) -> str | None:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return str(name) if name else None
    return None


def _tool_config(body: JSON, turns: list[JSON]) -> JSON | None:
    tools = [t for t in body.get("tools") or [] if t.get("type", "function") == "function"]
    choice = body.get("tool_choice")
    uses_tools = any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"])
    answer_tool = json_tool(body)
    if answer_tool is not None:
        callable_tools = bool(tools) and choice != "none"
        specs = _tool_specs(tools) if callable_tools or uses_tools else []
        config: JSON = {"tools": [*specs, answer_tool]}
        named = _named_choice(choice) if callable_tools else None
        if named:
            config["toolChoice"] = {"tool": {"name": named}}
        elif callable_tools:
            config["toolChoice"] = {"any": {}}
        else:
            config["toolChoice"] = {"tool": {"name": answer_tool["toolSpec"]["name"]}}
        return config
    # Converse has no "none": leave the tools out, unless the history has tool blocks (then
    # Bedrock insists on a toolConfig, and the model is merely not forced).
    if not tools or (choice == "none" and not uses_tools):
        return None
    config = {"tools": _tool_specs(tools)}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif _named_choice(choice):
        config["toolChoice"] = {"tool": {"name": _named_choice(choice)}}
    return config


def thinks(model: str) -> bool:
    """Claude models with extended thinking: 3.7 Sonnet and every Claude 4 and later."""
    lowered = model.lower()
    return is_anthropic_model(model) and _NO_THINKING.search(lowered) is None


def thinking_budget(effort: Any, max_tokens: Any) -> tuple[int, int] | None:
    """(budget_tokens, maxTokens) for a `reasoning_effort`, or None for no thinking.

    Anthropic counts thinking inside max_tokens and wants room left for the answer, so
    maxTokens stays above the budget: without a client limit the answer gets ANSWER_ROOM
    beyond the budget; under a client limit the budget shrinks to fit (down to Anthropic's
    minimum of 1024) rather than spending more than the client allowed.
    """
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        return None  # "minimal" or none: Claude thinks not at all
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
        return budget, budget + ANSWER_ROOM
    if max_tokens > budget:
        return budget, max_tokens
    fitted = max(MIN_THINKING_BUDGET, max_tokens // 2)
    return fitted, max(max_tokens, fitted + 1)


def _thinking(payload: JSON, body: JSON, model: str) -> None:
    """`reasoning_effort` → Claude's extended thinking, where Claude can take it.

    Left out, so the request still succeeds: when the model has none; when a tool is forced
    (Claude allows thinking with tool_choice auto or none only); and when the last assistant
    turn called tools, because Claude then wants that turn's signed thinking blocks back,
    which a chat body cannot carry.
    """
    if not thinks(model):
        return
    choice = (payload.get("toolConfig") or {}).get("toolChoice") or {}
    if "any" in choice or "tool" in choice:
        return
    assistants = [m for m in body.get("messages") or [] if m.get("role") == "assistant"]
    if assistants and assistants[-1].get("tool_calls"):
        return
    limit = (payload.get("inferenceConfig") or {}).get("maxTokens")
    fitted = thinking_budget(body.get("reasoning_effort"), limit)
    if fitted is None:
        return
    inference: JSON = payload.setdefault("inferenceConfig", {})
    budget, inference["maxTokens"] = fitted
    # Thinking refuses a changed temperature, and top_p below 0.95.
    inference.pop("temperature", None)
    if isinstance(inference.get("topP"), int | float) and inference["topP"] < 0.95:
        del inference["topP"]
    extra: JSON = payload.setdefault("additionalModelRequestFields", {})
    extra["thinking"] = {"type": "enabled", "budget_tokens": budget}


def to_converse(body: JSON) -> JSON:
    """OpenAI chat body → Converse body (the model id goes in the URL, not the body)."""
    system, turns = _turns(body.get("messages", []))
    payload: JSON = {"messages": turns}
    if system:
        payload["system"] = system
    inference: JSON = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        payload["inferenceConfig"] = inference
    tool_config = _tool_config(body, turns)
    if tool_config is not None:
        payload["toolConfig"] = tool_config
    if body.get("reasoning_effort"):
        _thinking(payload, body, str(body.get("model") or ""))
    return payload


def model_path(model: str, operation: str) -> str:
    """The model id percent-encoded as one path segment: `…-v1:0` → `…-v1%3A0`.

    ARNs (inference profiles) have `/` too, which must be encoded as well.
    """
    return f"/model/{quote(model, safe='')}/{operation}"


# --- signing ---------------------------------------------------------------------------


def sign(credentials: Any, region: str, url: str, body: bytes) -> dict[str, str]:
    """The headers of a SigV4-signed Converse POST, exactly as botocore signs it.

    botocore encodes the canonical URI a second time (`%3A` → `%253A`), as AWS expects for every
    service but S3. Signing costs about 80 µs a request (bench: 5000 signatures), so it is
    done per request rather than cached.
    """
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
    )
    SigV4Auth(credentials, SIGNING_NAME, region).add_auth(request)
    return {str(name): str(value) for name, value in request.headers.items()}


def region_of(url: str, default: str | None) -> str | None:
    """The region an endpoint signs for: its host's, else the provider's."""
    found = _REGION_IN_HOST.search(urlsplit(url).hostname or "")
    return found.group(1) if found else default


def _resolve_credentials() -> Any:
    """botocore's standard chain: env, shared files, SSO, container and instance roles.

    Blocking (files, maybe the network): called in a worker thread.
    """
    return Session().get_credentials()


# --- response --------------------------------------------------------------------------

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def finish_reason(stop_reason: str | None, saw_tool_calls: bool) -> str:
    reason = _FINISH_REASONS.get(stop_reason or "", "stop")
    return "tool_calls" if reason == "stop" and saw_tool_calls else reason


def usage_from_converse(usage: JSON | None) -> Usage:
    """Bedrock's inputTokens leave out cache reads and writes; OpenAI's prompt_tokens hold them."""
    usage = as_object(usage)
    cache_read = token_count(usage.get("cacheReadInputTokens"))
    cache_write = token_count(usage.get("cacheWriteInputTokens"))
    return Usage(
        prompt_tokens=token_count(usage.get("inputTokens")) + cache_read + cache_write,
        completion_tokens=token_count(usage.get("outputTokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def _tool_call(tool_use: JSON) -> JSON:
    return {
        "id": tool_use.get("toolUseId") or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {
            "name": tool_use.get("name", ""),
            "arguments": orjson.dumps(tool_use.get("input") or {}).decode(),
        },
    }


def from_converse(
    data: JSON, completion_id: str, model: str, answer_tool: str | None = None
) -> ChatResponse:
    """A Converse response → OpenAI chat.completion.

    `answer_tool` names the tool a `response_format` answer was forced through (`json_tool`):
    its call is the answer, so it comes back as the content, not as a tool call.
    """
    blocks = ((data.get("output") or {}).get("message") or {}).get("content") or []
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[JSON] = []
    answer: str | None = None
    for block in blocks:
        if "text" in block:
            texts.append(block["text"])
        elif "toolUse" in block:
            tool_use = block["toolUse"] or {}
            if answer_tool is not None and tool_use.get("name") == answer_tool:
                answer = orjson.dumps(tool_use.get("input") or {}).decode()
            else:
                calls.append(_tool_call(tool_use))
        elif "reasoningContent" in block:
            reasoning.append(
                ((block["reasoningContent"] or {}).get("reasoningText") or {}).get("text", "")
            )
    if answer is not None:
        texts = [answer]  # any text beside the forced call is preamble, not the JSON asked for
    message: JSON = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    stop_reason = data.get("stopReason")
    if answer is not None and not calls and stop_reason == "tool_use":
        stop_reason = "end_turn"
    usage = usage_from_converse(data.get("usage"))
    body: JSON = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(stop_reason, bool(calls)),
            }
        ],
        "usage": usage.as_openai(),
    }
    return ChatResponse(body=body, usage=usage)


class ConverseStreamTranslator(ChunkEnvelope):
    """Turns ConverseStream event frames into OpenAI chunks, one frame at a time.

    `answer_tool` names the tool a `response_format` answer is forced through: its input
    streams out as content, as if the model had written the JSON itself.
    """

    def __init__(self, completion_id: str, model: str, answer_tool: str | None = None) -> None:
        super().__init__(completion_id, model)
        self.tool_indices: dict[int, int] = {}  # contentBlockIndex → OpenAI tool_calls index
        self.answer_tool = answer_tool
        self.answer_blocks: set[int] = set()  # contentBlockIndex of the answer tool's call
        self.stop_reason: str | None = None
        self.usage: Usage | None = None

    def feed_frame(self, headers: dict[str, Any], payload: bytes) -> list[JSON]:
        """One decoded frame; exception frames raise (with `mid_stream=True`)."""
        message_type = headers.get(":message-type")
        if message_type == "exception":
            raise stream_exception(str(headers.get(":exception-type") or ""), payload)
        if message_type == "error":
            code = str(headers.get(":error-code") or "")
            raise stream_exception(
                code, orjson.dumps({"message": headers.get(":error-message") or code})
            )
        event = loads(payload, "bedrock stream") if payload else {}
        return self.feed(str(headers.get(":event-type") or ""), event)

    def feed(self, event_type: str, event: JSON) -> list[JSON]:
        if event_type == "contentBlockStart":
            tool_use = (event.get("start") or {}).get("toolUse")
            if tool_use is None:
                return []
            block = int(event.get("contentBlockIndex") or 0)
            if self.answer_tool is not None and tool_use.get("name") == self.answer_tool:
                self.answer_blocks.add(block)
                return []
            index = self.tool_indices.setdefault(block, len(self.tool_indices))
            call = {
                "index": index,
                "id": tool_use.get("toolUseId") or f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": tool_use.get("name", ""), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if event_type == "contentBlockDelta":
            return self._delta(int(event.get("contentBlockIndex") or 0), event.get("delta") or {})
        if event_type == "messageStop":
            self.stop_reason = event.get("stopReason") or "end_turn"
            return self.finish() if self.done else []
        if event_type == "metadata":
            self.usage = usage_from_converse(event.get("usage"))
            return self.finish() if self.done else []
        return []  # messageStart (its role went out with first()), contentBlockStop

    @property
    def done(self) -> bool:
        """Both messageStop and metadata seen (live streams send metadata last)."""
        return self.stop_reason is not None and self.usage is not None

    def _delta(self, block: int, delta: JSON) -> list[JSON]:
        if delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        tool_use = delta.get("toolUse")
        if tool_use is not None and block in self.answer_blocks:
            return [self._chunk({"content": tool_use["input"]})] if tool_use.get("input") else []
        if tool_use is not None and block in self.tool_indices:
            arguments = {"arguments": tool_use.get("input", "")}
            call = {"index": self.tool_indices[block], "function": arguments}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = (delta.get("reasoningContent") or {}).get("text")
        if reasoning:
            return [self._chunk({"reasoning": reasoning})]
        return []

    def finish(self) -> list[JSON]:
        """The finish chunk and the usage chunk (usage zero if no metadata ever came)."""
        stop_reason = self.stop_reason
        if self.answer_blocks and not self.tool_indices and stop_reason == "tool_use":
            stop_reason = "end_turn"  # the forced answer call is the answer, not a tool call
        reason = finish_reason(stop_reason, bool(self.tool_indices))
        usage_chunk = self._chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = (self.usage or Usage()).as_openai()
        return [self._chunk({}, reason), usage_chunk]


# --- passthrough: Claude's own Messages body through InvokeModel -------------------------


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def bedrock_betas(header: str | None, body_betas: Any = None) -> list[str]:
    """The client's `anthropic-beta` flags (a comma list) that Bedrock accepts, in order."""
    flags = [flag.strip() for flag in (header or "").split(",")]
    if isinstance(body_betas, list):
        flags.extend(str(flag) for flag in body_betas)
    kept: list[str] = []
    for flag in flags:
        if flag in BEDROCK_BETAS and flag not in kept:
            kept.append(flag)
    return kept


def to_invoke(call: NativeCall) -> JSON:
    """The client's Messages body as InvokeModel takes it.

    The model goes in the URL and streaming is the operation, so `model` and `stream` would
    be refused as extraneous keys; the API version and beta flags travel in the body.
    """
    body = {key: value for key, value in call.body.items() if key not in ("model", "stream")}
    body["anthropic_version"] = BEDROCK_ANTHROPIC_VERSION
    betas = bedrock_betas(_header(call.headers, "anthropic-beta"), body.pop("anthropic_beta", None))
    if betas:
        body["anthropic_beta"] = betas
    return body


_ANTHROPIC_STREAM_ERRORS = {
    "overloaded_error": "serviceUnavailableException",
    "rate_limit_error": "throttlingException",
    "invalid_request_error": "validationException",
    "api_error": "internalServerException",
}
_STREAM_ERROR = "modelStreamErrorException"


class InvokeStreamRelay:
    """Turns InvokeModelWithResponseStream frames into Anthropic SSE events, one at a time.

    Each `chunk` frame's `bytes` (base64) is one Anthropic stream event, relayed exactly;
    Bedrock adds `amazon-bedrock-invocationMetrics` to the last one, which clients ignore.
    """

    def __init__(self) -> None:
        self.started = False  # whether an event has been relayed
        self.finished = False  # message_stop seen
        self._usage: JSON = {}

    def feed_frame(self, headers: dict[str, Any], payload: bytes) -> Relayed | None:
        """One decoded frame; exception frames raise (with `mid_stream=True`)."""
        message_type = headers.get(":message-type")
        if message_type == "exception":
            raise stream_exception(str(headers.get(":exception-type") or ""), payload)
        if message_type == "error":
            code = str(headers.get(":error-code") or "")
            raise stream_exception(
                code, orjson.dumps({"message": headers.get(":error-message") or code})
            )
        if headers.get(":event-type") != "chunk":
            return None
        envelope = loads(payload, "bedrock stream")
        encoded = envelope.get("bytes") if isinstance(envelope, dict) else None
        if not isinstance(encoded, str):
            raise UpstreamError(502, "bedrock: stream chunk without bytes")
        try:
            data = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise UpstreamError(502, f"bedrock: stream chunk is not base64 ({exc})") from exc
        event = loads(data, "bedrock stream")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise UpstreamError(502, "bedrock: stream chunk is not an Anthropic event")
        kind = event["type"]
        if kind == "error":  # Anthropic's own in-stream error, should Bedrock pass one on
            error = event.get("error")
            error = error if isinstance(error, dict) else {}
            aws_kind = _ANTHROPIC_STREAM_ERRORS.get(
                str(error.get("type")), "internalServerException"
            )
            message = str(error.get("message") or error.get("type") or "stream error")
            raise stream_exception(aws_kind, orjson.dumps({"message": message}))
        model = None
        if kind == "message_start":
            model = (event.get("message") or {}).get("model")
        elif kind == "message_stop":
            self.finished = True
        self.started = True
        return Relayed(
            data=b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n",
            usage=running_usage(self._usage, event),
            model=model if isinstance(model, str) else None,
        )


# --- errors ----------------------------------------------------------------------------

_AUTH_ERRORS = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "incompletesignatureexception",
    "missingauthenticationtokenexception",
    "expiredtokenexception",
    "invalidclienttokenid",
    "signaturedoesnotmatch",
}


_STALE_CREDENTIAL_ERRORS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException"}
)


def _mapped_error(
    kind: str, status: int, message: str, retry_after: float | None = None
) -> UpstreamError:
    """`kind` is the AWS error name, any case (`ThrottlingException`, `throttlingException`)."""
    name = kind.lower()
    text = f"bedrock: {message}" if message else f"bedrock: {kind or f'HTTP {status}'}"
    if name in _AUTH_ERRORS or (not name and status in (401, 403)):
        # Bedrock refused Omen's own credentials or model access: not the client's fault, and
        # another provider may still answer.
        return UpstreamError(
            502,
            f"upstream rejected Omen's credentials ({kind or status}): {message}",
            type_="upstream_auth_error",
            code=kind or None,
            retryable=True,
        )
    if name in ("throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"):
        return UpstreamError(
            429, text, type_="rate_limit_error", code=kind, retry_after=retry_after
        )
    if name == "modelnotreadyexception":
        return UpstreamError(
            status if status in (429, 503) else 503, text, code=kind, retryable=True
        )
    if name == "serviceunavailableexception":
        return UpstreamError(503, text, code=kind, retry_after=retry_after)
    if name == "validationexception":
        return UpstreamError(400, text, type_="invalid_request_error", code=kind, retryable=False)
    if name == "resourcenotfoundexception" or (not name and status == 404):
        return UpstreamError(
            404, text, type_="invalid_request_error", code="model_not_found", retryable=True
        )
    if name == "modeltimeoutexception":
        return UpstreamError(504, text, type_="timeout", code=kind)
    if name in ("modelerrorexception", "modelstreamerrorexception"):
        return UpstreamError(502, text, code=kind, retryable=True)
    if name == "internalserverexception":
        return UpstreamError(500, text, code=kind)
    if status in (400, 413, 422):
        return UpstreamError(status, text, type_="invalid_request_error", code=kind or None)
    return UpstreamError(status if status >= 500 or status == 429 else 502, text, code=kind or None)


def bedrock_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """`x-amzn-errortype: ThrottlingException:http://internal.amazon.com/…` + `{"message"}`."""
    kind = (headers.get("x-amzn-errortype") or "").split(":", 1)[0].strip()
    try:
        data = orjson.loads(body)
        message = str(data.get("message") or data.get("Message") or "")
        kind = kind or str(data.get("__type") or "").rsplit("#", 1)[-1]
    except (orjson.JSONDecodeError, AttributeError):
        message = body.decode(errors="replace")[:500]
    return _mapped_error(kind, status, message, parse_retry_after(headers))


def stream_exception(kind: str, payload: bytes) -> UpstreamError:
    """An exception frame inside a 200 stream (`:message-type=exception`)."""
    try:
        data = orjson.loads(payload) if payload else {}
    except orjson.JSONDecodeError:
        data = {"message": payload.decode(errors="replace")[:500]}
    message = str(data.get("message") or kind)
    if data.get("originalMessage"):
        original = data.get("originalStatusCode")
        message = f"{message} ({original}: {data['originalMessage']})"
    error = _mapped_error(kind, 500, message)
    error.mid_stream = True
    return error


# --- transport -------------------------------------------------------------------------


async def iter_frames(body: Body, where: str) -> AsyncGenerator[Any, None]:
    """Decode the binary event stream as its bytes arrive (frames straddle reads)."""
    frames = EventStreamBuffer()
    try:
        async with aclosing(body.aiter_raw()) as chunks:
            async for chunk in chunks:
                frames.add_data(chunk)
                for frame in frames:
                    if isinstance(body, UpstreamStream):
                        body.started = True
                    yield frame
    except ParserError as exc:
        raise UpstreamError(502, f"{where}: corrupt event stream ({exc})", mid_stream=True) from exc


def _reachable(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    # The probe's HEAD: any HTTP answer, a 403 or 404 included, proves the path.
    return UpstreamError(status, "reachable", code="reachable")


class BedrockProvider:
    """Adapter for one `[providers.NAME]` of type bedrock; `endpoint` is the runtime base URL.

    Auth is a Bedrock API key (`api_key`, or $AWS_BEARER_TOKEN_BEDROCK) sent as a Bearer token,
    else SigV4 with botocore's standard credential chain, resolved once off the event loop and
    refreshed (again off the loop) before it expires.
    """

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._models = list(config.models)
        self._clients = UpstreamClients(UpstreamSettings.of(config))
        key = config.api_key.get_secret_value() if config.api_key else None
        self._bearer = key or os.environ.get("AWS_BEARER_TOKEN_BEDROCK") or None
        self._region = config.region or region_of(config.base_url or "", None)
        self._passthrough = config.passthrough_formats
        self._credentials: Any = None
        self._credentials_lock = asyncio.Lock()

    async def _frozen_credentials(self) -> Any:
        credentials = self._credentials
        if credentials is not None and not (
            isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed()
        ):
            return credentials.get_frozen_credentials()
        async with self._credentials_lock:
            try:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(_resolve_credentials)
                if self._credentials is None:
                    raise UpstreamError(
                        502,
                        f"{self.name}: no AWS credentials (set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, a profile or a role, or a Bedrock api_key)",
                        type_="upstream_auth_error",
                        retryable=True,
                    )
                # Refreshing may call STS or the instance metadata service: not on the loop.
                return await asyncio.to_thread(self._credentials.get_frozen_credentials)
            except BotoCoreError as exc:
                raise UpstreamError(
                    502,
                    f"{self.name}: AWS credentials unavailable: {exc}",
                    type_="upstream_auth_error",
                    retryable=True,
                ) from exc

    async def _authorised(self, endpoint: str, path: str, payload: JSON) -> dict[str, str]:
        """The headers that authorise exactly this payload's bytes at `path`."""
        if self._bearer:
            return {"content-type": "application/json", "authorization": f"Bearer {self._bearer}"}
        region = region_of(endpoint, self._region)
        if region is None:
            raise UpstreamError(
                502,
                f"{self.name}: no region to sign for (set region or $AWS_REGION)",
                type_="upstream_auth_error",
                retryable=True,
            )
        credentials = await self._frozen_credentials()
        # The helpers serialise the payload again; orjson is deterministic, so the bytes sent
        # are the bytes signed.
        url = endpoint.rstrip("/") + path
        return sign(credentials, region, url, orjson.dumps(payload))

    def _forget_rejected_credentials(self, error: UpstreamError) -> None:
        # Rotated keys or a new profile: resolve the chain again on the next request. Not for
        # AccessDenied (an IAM policy or model access), which new credentials would not fix.
        if error.code in _STALE_CREDENTIAL_ERRORS and not self._bearer:
            self._credentials = None

    async def _post(self, endpoint: str, path: str, payload: JSON, where: str) -> bytes:
        """A signed JSON POST; the raw answer."""
        headers = await self._authorised(endpoint, path, payload)
        headers["accept"] = "application/json"
        try:
            raw, _ = await post_json(
                self._clients.get(endpoint),
                path,
                payload,
                headers=headers,
                where=where,
                on_error=bedrock_error,
            )
        except UpstreamError as exc:
            self._forget_rejected_credentials(exc)
            raise
        return raw

    @asynccontextmanager
    async def _frames(
        self, endpoint: str, path: str, payload: JSON, where: str
    ) -> AsyncIterator[AsyncIterator[Any]]:
        """A signed streamed POST, as its event-stream frames."""
        headers = await self._authorised(endpoint, path, payload)
        headers["accept"] = EVENT_STREAM
        async with (
            open_stream(
                self._clients.get(endpoint),
                path,
                payload,
                headers=headers,
                where=where,
                on_error=bedrock_error,
            ) as response,
            aclosing(iter_frames(response, where)) as frames,
        ):
            yield frames

    async def chat(self, endpoint: str, body: JSON) -> ChatResponse:
        model = body["model"]
        where = f"{self.name} {endpoint}"
        raw = await self._post(endpoint, model_path(model, "converse"), to_converse(body), where)
        data = loads(raw, where)
        if not isinstance(data, dict) or "output" not in data:
            raise UpstreamError(502, f"{where}: Converse answer has no output")
        answer = json_tool(body)
        return from_converse(
            data,
            f"chatcmpl-{uuid.uuid4().hex[:24]}",
            model,
            answer["toolSpec"]["name"] if answer is not None else None,
        )

    async def stream(self, endpoint: str, body: JSON) -> AsyncIterator[JSON]:
        model = body["model"]
        where = f"{self.name} {endpoint}"
        path = model_path(model, "converse-stream")
        answer = json_tool(body)
        translator = ConverseStreamTranslator(
            f"chatcmpl-{uuid.uuid4().hex[:24]}",
            model,
            answer["toolSpec"]["name"] if answer is not None else None,
        )
        try:
            async with self._frames(endpoint, path, to_converse(body), where) as frames:
                async for frame in frames:
                    chunks = translator.feed_frame(frame.headers, frame.payload)
                    for chunk in translator.opening(chunks):
                        yield chunk
                    if translator.done:
                        return
        except UpstreamError as exc:
            exc.mid_stream = translator.started
            self._forget_rejected_credentials(exc)
            raise
        if translator.stop_reason is not None:
            for chunk in translator.finish():  # the metadata (usage) event never came
                yield chunk
            return
        raise truncated(where, "messageStop", mid_stream=translator.started)

    def speaks(self, wire: str, model: str) -> bool:
        """Claude models take Anthropic's Messages body as is, through InvokeModel."""
        return wire == "messages" and wire in self._passthrough and is_anthropic_model(model)

    async def native(self, endpoint: str, call: NativeCall) -> ChatResponse:
        """POST /model/{id}/invoke: the Anthropic message back, as Bedrock sent it."""
        model = str(call.body.get("model") or "")
        where = f"{self.name} {endpoint}"
        raw = await self._post(endpoint, model_path(model, "invoke"), to_invoke(call), where)
        data = loads(raw, where)
        if not isinstance(data, dict) or not isinstance(data.get("content"), list):
            raise UpstreamError(502, f"{where}: InvokeModel answer is not an Anthropic message")
        return ChatResponse(body=data, usage=usage_from_anthropic(data.get("usage")), raw=raw)

    async def native_stream(self, endpoint: str, call: NativeCall) -> AsyncIterator[Relayed]:
        """POST /model/{id}/invoke-with-response-stream: Anthropic's events, relayed."""
        model = str(call.body.get("model") or "")
        where = f"{self.name} {endpoint}"
        path = model_path(model, "invoke-with-response-stream")
        relay = InvokeStreamRelay()
        try:
            async with self._frames(endpoint, path, to_invoke(call), where) as frames:
                async for frame in frames:
                    relayed = relay.feed_frame(frame.headers, frame.payload)
                    if relayed is not None:
                        yield relayed
                    if relay.finished:
                        return
        except UpstreamError as exc:
            exc.mid_stream = relay.started
            self._forget_rejected_credentials(exc)
            raise
        raise truncated(where, "message_stop", mid_stream=relay.started)

    async def embed(self, endpoint: str, body: JSON) -> EmbeddingResponse:
        raise UpstreamError(
            400,
            f"{self.name}: embeddings are not served through Bedrock's Converse API",
            type_="invalid_request_error",
            code="unsupported_operation",
            retryable=True,  # another provider may embed
        )

    async def list_models(self, endpoint: str) -> list[str]:
        # Listing is a control-plane call (bedrock, not bedrock-runtime): the config is the list.
        return list(self._models)

    async def probe(self, endpoint: str) -> Probe:
        """An unauthenticated HEAD: proves DNS, TCP and TLS to the endpoint, costs no tokens.

        Bedrock has no token-free authenticated runtime check, so health is mostly passive:
        credentials, throttling and model access show up in the outcomes of real requests.
        Any HTTP answer (usually a 403 or 404) counts as reachable.
        """
        started = time.perf_counter()
        try:
            await fetch(
                self._clients.get(endpoint),
                "HEAD",
                "/",
                headers={},
                where=f"{self.name} {endpoint}",
                on_error=_reachable,
            )
        except UpstreamError as exc:
            if exc.code != "reachable":
                return failed_probe(exc, (time.perf_counter() - started) * 1000)
        return Probe(True, (time.perf_counter() - started) * 1000)

    async def aclose(self) -> None:
        await self._clients.aclose()
