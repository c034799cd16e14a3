"""The response half: a chat completion as a Responses `response` object, the usage in both
shapes, and the envelope and output items the stream builds from too."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from omen.formats.responses.request import SERVICE_TIERS, is_int, is_number
from omen.formats.responses.tools import ToolOrigin, tool_table
from omen.providers import JSON, Usage
from omen.providers.openai_format import responses_usage


def new_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(24).hex()}"


# One reading of Responses usage, shared with the passthrough in the provider layer.
usage_from_responses = responses_usage


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


def envelope(request: JSON, response_id: str, created_at: int, model: str) -> JSON:
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
        "instructions": str_or_none(request.get("instructions")),
        "max_output_tokens": request.get("max_output_tokens")
        if is_int(request.get("max_output_tokens"))
        else None,
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "prompt_cache_key": str_or_none(request.get("prompt_cache_key")),
        "reasoning": {
            "effort": str_or_none(reasoning.get("effort")),
            "summary": str_or_none(reasoning.get("summary")),
        },
        "safety_identifier": str_or_none(request.get("safety_identifier")),
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
        "user": str_or_none(request.get("user")),
        # OpenAI's metadata holds strings only; Omen's routing hints may not be.
        "metadata": {k: v for k, v in metadata.items() if isinstance(v, str)},
    }


def int_or(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number_or(value: Any, default: float) -> float:
    return float(value) if is_number(value) else default


def finish(response: JSON, finish_reason: str | None) -> None:
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


def text_part(text: str) -> JSON:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def message_item(item_id: str, text: str, status: str) -> JSON:
    content = [text_part(text)] if status != "in_progress" else []
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def reasoning_item(item_id: str, text: str | None) -> JSON:
    summary = [] if text is None else [{"type": "summary_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": summary}


def call_item(origin: ToolOrigin, call_id: str, payload: str, status: str) -> JSON:
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
    finish_reason = str_or_none(choice.get("finish_reason"))
    model = str_or_none(completion.get("model")) or str(request.get("model") or "")
    created_at = int_or(completion.get("created"), int(time.time()))
    response = envelope(request, new_id("resp"), created_at, model)
    table = tool_table(request)
    cut = finish_reason == "length"
    output: list[JSON] = []
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(reasoning_item(new_id("rs"), reasoning))
    text = message.get("content")
    if not isinstance(text, str) or not text:
        text = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    calls = message.get("tool_calls")
    calls = [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    if text or not calls:
        status = "incomplete" if cut and not calls else "completed"
        output.append(message_item(new_id("msg"), str(text), status))
    for call in calls:
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        origin = table.origin(str(function.get("name") or ""))
        arguments = str_or_none(function.get("arguments")) or ""
        payload = custom_input(arguments) if origin.kind == "custom" else arguments
        call_id = str_or_none(call.get("id")) or new_id("call")
        output.append(call_item(origin, call_id, payload, "completed"))
    response["output"] = output
    response["usage"] = usage_to_responses(usage)
    finish(response, finish_reason)
    return response
