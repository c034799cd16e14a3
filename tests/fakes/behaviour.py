"""What a fake upstream does next: the reply types and the Script that hands them out.

Every fake (OpenAI, xAI, Azure, Ollama) reads the same Script, so a test says *what* should
happen ("a 429", "cut the stream after two chunks") and each fake says it in its own wire format.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEXT = "Hello! How can I help you today?"
DEFAULT_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"


@dataclass(frozen=True)
class TextReply:
    """A normal assistant answer, streamed one word-piece per chunk.

    ``prompt_tokens=None`` estimates from the request's words; ``completion_tokens=None``
    counts the content pieces. ``chunk_delay`` is slept between stream chunks.
    """

    text: str = DEFAULT_TEXT
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str = "stop"
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class ToolCall:
    """One function call the assistant makes; ``id=None`` gets a provider-shaped id."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ToolCallReply:
    """An assistant turn that only calls tools (finish_reason ``tool_calls``)."""

    calls: list[ToolCall] = field(
        default_factory=lambda: [ToolCall("get_weather", {"city": "Paris"})]
    )
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error before any body. ``body=None`` sends the provider's real body for
    ``status``; a ``str`` body is sent verbatim (e.g. a proxy's HTML page)."""

    status: int
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CutStream:
    """Send ``after_chunks`` content chunks of ``text``, then drop the TCP connection
    without finishing the response (no final chunk, no ``[DONE]``, no terminating chunk)."""

    after_chunks: int = 2
    text: str = DEFAULT_TEXT


@dataclass(frozen=True)
class MidStreamError:
    """Send ``after_chunks`` content chunks, then the provider's in-stream error event
    (Ollama: a final ``{"error": …}`` NDJSON line, status stays 200; OpenAI: a
    ``data: {"error": {…}}`` event). A non-streaming request gets a 500 instead."""

    after_chunks: int = 2
    message: str = DEFAULT_ERROR_MESSAGE
    text: str = DEFAULT_TEXT


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before sending the response headers, then behave like ``then``."""

    seconds: float
    then: Reply = field(default_factory=TextReply)


Reply = TextReply | ToolCallReply | ErrorReply | CutStream | MidStreamError | Delay


class Script:
    """The queue of replies a fake hands out, safe to drive from the test's thread.

    Precedence for each request: a sticky per-model reply (``for_model``), then the queue
    (``push``, FIFO), then ``default``.
    """

    def __init__(self, default: Reply | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._per_model: dict[str, Reply] = {}
        self.default: Reply = default if default is not None else TextReply()

    def push(self, reply: Reply, times: int = 1) -> None:
        """Queue ``reply`` for the next ``times`` requests (after anything already queued)."""
        with self._lock:
            self._queue.extend([reply] * times)

    def for_model(self, model: str, reply: Reply | None) -> None:
        """Answer every request for ``model`` with ``reply`` until set to ``None``."""
        with self._lock:
            if reply is None:
                self._per_model.pop(model, None)
            else:
                self._per_model[model] = reply

    def next_for(self, model: str) -> Reply:
        """Take the reply for one request to ``model``."""
        with self._lock:
            sticky = self._per_model.get(model)
            if sticky is not None:
                return sticky
            if self._queue:
                return self._queue.popleft()
            return self.default

    @property
    def pending(self) -> int:
        """How many queued replies have not been used yet."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Forget queued and per-model replies; ``default`` stays."""
        with self._lock:
            self._queue.clear()
            self._per_model.clear()
