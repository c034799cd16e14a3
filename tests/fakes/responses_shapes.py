"""Pure builders for OpenAI's Responses API (`POST /v1/responses`) as the fake upstream speaks it:
the `response` object, its event stream (`event:` and `data:` lines, numbered by
`sequence_number`, no `[DONE]`), usage with prompt-cache reads, and its error bodies."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson

from tests.fakes import content
from tests.fakes.behaviour import ToolCall

REASONING_SUMMARY = "**Answering the request**\n\nThe user asked for something; I reply directly."
REASONING_TOKENS = 24
CONTEXT_WINDOW_MESSAGE = (
    "Your input exceeds the context window of this model. Please adjust your input and try again."
)


class PromptCacheKeys:
    """The fake's prompt cache: a request whose `prompt_cache_key` was seen before reads the
    previous request's prompt back from cache, as OpenAI's cache serves a resent prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}

    def read(self, key: Any, prompt_tokens: int) -> int:
        """Tokens of this prompt served from cache; remembers this prompt for the next one."""
        if not isinstance(key, str) or not key:
            return 0
        with self._lock:
            previous = self._seen.get(key, 0)
            self._seen[key] = prompt_tokens
        return min(previous, prompt_tokens)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


def _new_id(prefix: str) -> str:
    return f"{prefix}_{content.random_alnum(48).lower()}"


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        total = 0
        for part in value:
            if isinstance(part, dict):
                text = part.get("text")
                total += len(text.split()) if isinstance(text, str) else 85  # an image tile
        return total
    return 0


def estimate_input_tokens(payload: dict[str, Any]) -> int:
    """Words of the instructions and every input item, plus a few framing tokens per item."""
    total = 3 + _words(payload.get("instructions"))
    items = payload.get("input")
    if isinstance(items, str):
        return total + 4 + _words(items)
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            total += 4
            for key in ("content", "arguments", "input", "output"):
                total += _words(item.get(key))
    return total


def max_output_tokens(payload: dict[str, Any]) -> int | None:
    limit = payload.get("max_output_tokens")
    return limit if isinstance(limit, int) and limit > 0 else None


def reasoning_wanted(payload: dict[str, Any]) -> tuple[bool, bool, bool]:
    """(a reasoning item at all, with a summary, with encrypted_content)."""
    reasoning = payload.get("reasoning")
    include = payload.get("include")
    encrypted = isinstance(include, list) and "reasoning.encrypted_content" in include
    summary = isinstance(reasoning, dict) and reasoning.get("summary") in (
        "auto",
        "concise",
        "detailed",
    )
    return isinstance(reasoning, dict) or encrypted, summary, encrypted


def usage(prompt: int, cached: int, completion: int, reasoning: int) -> dict[str, Any]:
    """Responses usage: input_tokens include the cached ones, output_tokens the reasoning."""
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion + reasoning,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion + reasoning,
    }


def error_body(status: int, message: str, param: str | None, code: str | None) -> dict[str, Any]:
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def context_window_error() -> dict[str, Any]:
    return error_body(400, CONTEXT_WINDOW_MESSAGE, "input", "context_length_exceeded")


def previous_response_error(response_id: str) -> dict[str, Any]:
    message = f"Previous response with id '{response_id}' not found."
    return error_body(400, message, "previous_response_id", "previous_response_not_found")


def response_object(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """A `response` in progress, echoing the request's settings as OpenAI does."""
    reasoning = payload.get("reasoning")
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    text = payload.get("text")
    return {
        "id": _new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": max_output_tokens(payload),
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": payload.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "prompt_cache_key": payload.get("prompt_cache_key"),
        "prompt_cache_retention": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": payload.get("safety_identifier"),
        "service_tier": "default",
        "store": payload.get("store") is not False,
        "temperature": payload.get("temperature", 1.0),
        "text": text
        if isinstance(text, dict)
        else {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": payload.get("tool_choice", "auto"),
        "tools": payload.get("tools") or [],
        "top_logprobs": 0,
        "top_p": payload.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": payload.get("metadata") or {},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


class ResponseWriter:
    """Builds one response: its output items, its events, and the final object.

    Every method that streams returns the events' bytes; the items are kept either way, so a
    non-streaming answer is `finish(...)`'s response.
    """

    def __init__(self, payload: dict[str, Any], model: str, obfuscate: bool = True) -> None:
        self.payload = payload
        self.response = response_object(payload, model)
        self.sequence = 0
        self.obfuscate = obfuscate
        self._message: dict[str, Any] | None = None
        self._text: list[str] = []

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _snapshot(self) -> dict[str, Any]:
        return orjson.loads(orjson.dumps(self.response))  # type: ignore[no-any-return]

    def opening(self) -> list[bytes]:
        return [
            self.event("response.created", response=self._snapshot()),
            self.event("response.in_progress", response=self._snapshot()),
        ]

    def _add(self, item: dict[str, Any]) -> tuple[int, bytes]:
        index = len(self.response["output"])
        self.response["output"].append(item)
        added = dict(item)
        return index, self.event("response.output_item.added", output_index=index, item=added)

    def _done(self, index: int, item: dict[str, Any]) -> bytes:
        self.response["output"][index] = item
        return self.event("response.output_item.done", output_index=index, item=item)

    def reasoning(self, summary: bool, encrypted: bool) -> list[bytes]:
        item: dict[str, Any] = {"id": _new_id("rs"), "type": "reasoning", "summary": []}
        if encrypted:
            item["encrypted_content"] = "gAAAAAB" + content.random_alnum(160)
        index, added = self._add(item)
        events = [added]
        where = {"item_id": item["id"], "output_index": index}
        if summary:
            part = {"type": "summary_text", "text": ""}
            events.append(
                self.event(
                    "response.reasoning_summary_part.added", **where, summary_index=0, part=part
                )
            )
            for piece in content.text_pieces(REASONING_SUMMARY):
                events.append(
                    self.event(
                        "response.reasoning_summary_text.delta",
                        **where,
                        summary_index=0,
                        delta=piece,
                        **self._obfuscation(),
                    )
                )
            events.append(
                self.event(
                    "response.reasoning_summary_text.done",
                    **where,
                    summary_index=0,
                    text=REASONING_SUMMARY,
                )
            )
            done_part = {"type": "summary_text", "text": REASONING_SUMMARY}
            events.append(
                self.event(
                    "response.reasoning_summary_part.done", **where, summary_index=0, part=done_part
                )
            )
            item = dict(item, summary=[done_part])
        events.append(self._done(index, item))
        return events

    def _obfuscation(self) -> dict[str, str]:
        return {"obfuscation": content.obfuscation()} if self.obfuscate else {}

    def message_opening(self) -> list[bytes]:
        item = {
            "id": _new_id("msg"),
            "type": "message",
            "status": "in_progress",
            "content": [],
            "role": "assistant",
        }
        index, added = self._add(item)
        self._message = {"index": index, "id": item["id"]}
        part = self.event(
            "response.content_part.added",
            item_id=item["id"],
            output_index=index,
            content_index=0,
            part=_text_part(""),
        )
        return [added, part]

    def text(self, piece: str) -> bytes:
        assert self._message is not None
        self._text.append(piece)
        return self.event(
            "response.output_text.delta",
            item_id=self._message["id"],
            output_index=self._message["index"],
            content_index=0,
            delta=piece,
            logprobs=[],
            **self._obfuscation(),
        )

    def message_closing(self, status: str) -> list[bytes]:
        assert self._message is not None
        text = "".join(self._text)
        where = {"item_id": self._message["id"], "output_index": self._message["index"]}
        item = {
            "id": self._message["id"],
            "type": "message",
            "status": status,
            "content": [_text_part(text)],
            "role": "assistant",
        }
        return [
            self.event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            ),
            self.event(
                "response.content_part.done", **where, content_index=0, part=_text_part(text)
            ),
            self._done(self._message["index"], item),
        ]

    def function_call(self, call_id: str, call: ToolCall) -> list[bytes]:
        arguments = orjson.dumps(call.arguments).decode()
        item = {
            "id": _new_id("fc"),
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": call_id,
            "name": call.name,
        }
        index, added = self._add(item)
        where = {"item_id": item["id"], "output_index": index}
        events = [added]
        for piece in content.argument_pieces(arguments):
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    **where,
                    delta=piece,
                    **self._obfuscation(),
                )
            )
        events.append(
            self.event("response.function_call_arguments.done", **where, arguments=arguments)
        )
        events.append(self._done(index, dict(item, status="completed", arguments=arguments)))
        return events

    def finish(self, usage_body: dict[str, Any], incomplete: bool) -> tuple[dict[str, Any], bytes]:
        """The final response and its closing event (response.completed or .incomplete)."""
        self.response["usage"] = usage_body
        if incomplete:
            self.response["status"] = "incomplete"
            self.response["incomplete_details"] = {"reason": "max_output_tokens"}
            kind = "response.incomplete"
        else:
            self.response["status"] = "completed"
            self.response["completed_at"] = int(time.time())
            kind = "response.completed"
        return self.response, self.event(kind, response=self._snapshot())

    def failed(self, message: str) -> bytes:
        """The event OpenAI ends a stream with when the model fails after it started."""
        self.response["status"] = "failed"
        self.response["error"] = {"code": "server_error", "message": message}
        for index, item in enumerate(self.response["output"]):
            if item.get("status") == "in_progress":
                self.response["output"][index] = dict(item, status="incomplete")
        return self.event("response.failed", response=self._snapshot())
