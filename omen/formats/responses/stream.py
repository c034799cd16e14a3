"""The stream: chat chunks as the Responses event stream, one output item at a time, and the
`response.failed` codes Codex acts on."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from omen.formats.responses.response import (
    call_item,
    custom_input,
    envelope,
    finish,
    int_or,
    message_item,
    new_id,
    reasoning_item,
    str_or_none,
    text_part,
    usage_to_responses,
)
from omen.formats.responses.tools import tool_table
from omen.providers import JSON, UpstreamError, Usage

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
        response = envelope(self.request, self.response_id, self.created_at, self.model)
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
            self.current = self._open(reasoning_item(new_id("rs"), None))
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
            self.current = self._open(message_item(new_id("msg"), "", "in_progress"))
            out += self._added(self.current)
            out += self._event(
                "response.content_part.added",
                **self._where(self.current),
                content_index=0,
                part=text_part(""),
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
        index = int_or(call.get("index"), position)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        out = b""
        opened = self.calls.get(index)
        if opened is None:
            # A new call closes what streamed before it; OpenAI streams calls one at a time.
            out += self._close_current()
            out += self._close_calls()
            origin = self.tools.origin(str(function.get("name") or ""))
            call_id = str_or_none(call.get("id")) or new_id("call")
            opened = self._open(call_item(origin, call_id, "", "in_progress"))
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
                + self._item_done(opened, reasoning_item(opened.item_id, text))
            )
        item = message_item(opened.item_id, text, self._item_status())
        return (
            self._event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            + self._event(
                "response.content_part.done", **where, content_index=0, part=text_part(text)
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
            self.current = self._open(message_item(new_id("msg"), "", "in_progress"))
            out += self._added(self.current)
            out += self._event(
                "response.content_part.added",
                **self._where(self.current),
                content_index=0,
                part=text_part(""),
            )
            out += self._close_current()
        self._late_pieces()
        self.finished = True
        response = self._response("completed")
        final = usage or self.usage
        response["usage"] = usage_to_responses(final) if final is not None else None
        finish(response, self.finish_reason)
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
