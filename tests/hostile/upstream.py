"""A raw-socket misbehaving upstream: just enough HTTP/1.1 to be an OpenAI-format server.

`/v1/models` always answers well (so health probes pass); `/v1/chat/completions`,
`/v1/responses`, `/v1/responses/input_tokens` and `/v1/embeddings` answer according to
``behaviour``, which a test sets before its request. Each behaviour has a streamed form
(the request's ``"stream": true``) and a plain one. Everything is bounded: "endless" means
until the peer hangs up or ``max_bytes``/``max_seconds`` is reached, so a broken Omen cannot
keep this thread busy forever.

In a test: ``with HostileUpstream("hang") as up: ... up.url ...`` (a thread of its own).
For load tests, a process of its own::

    python -m tests.hostile.upstream --port 9001 --behaviour ok
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MODELS = ["gpt-4o", "text-embedding-3-small"]

BEHAVIOURS = (
    "ok",
    "endless",  # plain: a JSON body that never ends; stream: SSE chunks that never end
    "drip",  # the whole answer, status line included, one byte every 0.5 s
    "hang",  # read the request, never answer
    "gzip_bomb",  # content-encoding: gzip of a huge zero stream
    "early_hints",  # 100 Continue and 103 Early Hints before the real 200
    "short_body",  # Content-Length larger than what is sent, then close
    "chunked_cut",  # Transfer-Encoding: Chunked, closed before the last chunk
    "crlf_model",  # CR/LF in the returned `model`
    "usage_lots",  # "usage": "lots"
    "negative_usage",  # usage counts below zero
    "retry_after_inf",  # 429 with retry-after: inf
    "status_999",  # HTTP/1.1 999
    "json_list",  # plain: a JSON list body; stream: a JSON list as the first SSE chunk
    "json_list_mid",  # stream: a JSON list after the first chunks
    "no_terminator",  # stream: cleanly ended transfer without finish_reason or [DONE]
    "echo_key",  # 400 whose error text echoes the request head (with Omen's upstream key)
    "echo_key_401",  # the same as a 401
    "echo_key_500",  # the same as a 500
    "huge_headers",  # a header block that never ends
)

TEXT = "Hello from the hostile upstream."
PROMPT_TOKENS, COMPLETION_TOKENS = 5, 7


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    head: bytes  # the raw request line and headers, as received

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def stream(self) -> bool:
        data = self.json
        return isinstance(data, dict) and data.get("stream") is True

    @property
    def kind(self) -> str:
        path = self.path.split("?", 1)[0]
        if path.endswith("/responses/input_tokens"):
            return "input_tokens"
        if path.endswith("/responses"):
            return "responses"
        if path.endswith("/embeddings"):
            return "embeddings"
        if path.endswith("/models"):
            return "models"
        return "chat"


@dataclass
class Tally:
    """What the upstream saw; read by the tests (guarded by a lock: another thread writes)."""

    requests: int = 0
    connections_open: int = 0
    bytes_sent: int = 0
    # monotonic time each misbehaving answer ended (the peer hung up, or it ran out)
    fault_ends: list[float] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)


class Closed(Exception):
    """The peer hung up."""


# --- canned bodies ------------------------------------------------------------------------


def chat_body(model: str = "gpt-4o", usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TEXT},
                "finish_reason": "stop",
            }
        ],
        "usage": usage
        if usage is not None
        else {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def chunk(delta: dict[str, Any], finish: str | None = None, model: str = "gpt-4o") -> bytes:
    body = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def usage_chunk(usage: Any, model: str = "gpt-4o") -> bytes:
    body = {
        "id": "chatcmpl-hostile",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


GOOD_USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
}


def chat_events(model: str = "gpt-4o", usage: Any = GOOD_USAGE, *, end: bool = True) -> list[bytes]:
    events = [
        chunk({"role": "assistant", "content": ""}, model=model),
        chunk({"content": "Hello "}, model=model),
        chunk({"content": "from the hostile upstream."}, model=model),
    ]
    if end:
        events.append(chunk({}, "stop", model=model))
        events.append(usage_chunk(usage, model=model))
        events.append(b"data: [DONE]\n\n")
    return events


def response_object(model: str = "gpt-4o", status: str = "completed", usage: Any = None) -> dict:
    return {
        "id": "resp_hostile",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": model,
        "output": []
        if status != "completed"
        else [
            {
                "type": "message",
                "id": "msg_hostile",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
            }
        ],
        "usage": usage
        if usage is not None
        else {
            "input_tokens": PROMPT_TOKENS,
            "output_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    }


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def response_events(model: str = "gpt-4o", usage: Any = None, *, end: bool = True) -> list[bytes]:
    events = [
        sse(
            "response.created",
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": response_object(model, "in_progress", usage),
            },
        ),
        sse(
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_hostile",
                "output_index": 0,
                "content_index": 0,
                "delta": TEXT,
            },
        ),
    ]
    if end:
        events.append(
            sse(
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": 2,
                    "response": response_object(model, "completed", usage),
                },
            )
        )
    return events


def embeddings_body(usage: Any = None) -> dict[str, Any]:
    return {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3, 0.4]}],
        "usage": usage if usage is not None else {"prompt_tokens": 2, "total_tokens": 2},
    }


def models_body() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "hostile"} for m in MODELS],
    }


def ok_body(request: Request, model: str = "gpt-4o", usage: Any = None) -> dict[str, Any]:
    kind = request.kind
    if kind == "responses":
        if usage is not None:
            return response_object(model, usage=usage)
        return response_object(model)
    if kind == "embeddings":
        return embeddings_body(usage)
    if kind == "input_tokens":
        return {"object": "response.input_tokens", "input_tokens": PROMPT_TOKENS}
    if kind == "models":
        return models_body()
    return chat_body(model, usage)


def ok_events(request: Request, model: str = "gpt-4o", usage: Any = None, *, end: bool = True):
    if request.kind == "responses":
        return response_events(model, usage, end=end)
    return chat_events(model, GOOD_USAGE if usage is None else usage, end=end)


def head(status: int | str, headers: list[tuple[str, str]]) -> bytes:
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 429: "Too Many Requests"}
    line = status if isinstance(status, str) else f"{status} {reason.get(status, 'Whatever')}"
    lines = [f"HTTP/1.1 {line}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def gzip_bomb_blocks() -> tuple[bytes, bytes]:
    """A gzip header with the first deflate block, and a block that inflates to 1 MiB of
    zeros and can be repeated forever (a full flush resets the window between blocks)."""
    zeros = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    again = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return gzip_header + first, again


_BOMB: tuple[bytes, bytes] | None = None


def bomb() -> tuple[bytes, bytes]:
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip_bomb_blocks()
    return _BOMB


# --- the server ---------------------------------------------------------------------------


class HostileUpstream:
    def __init__(
        self,
        behaviour: str = "ok",
        *,
        max_bytes: int = 3 << 30,
        max_seconds: float = 60.0,
        port: int = 0,
    ) -> None:
        assert behaviour in BEHAVIOURS, behaviour
        self.behaviour = behaviour
        self.max_bytes = max_bytes  # per answer
        self.max_seconds = max_seconds  # per answer
        self.tally = Tally()
        self.lock = threading.Lock()
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    # --- lifecycle

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, behaviour: str) -> None:
        assert behaviour in BEHAVIOURS, behaviour
        self.behaviour = behaviour

    def start(self) -> HostileUpstream:
        self._thread = threading.Thread(target=self._run, name="hostile-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile upstream did not start")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.run_until_complete(self._listen())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._connection, "127.0.0.1", self._port, limit=1 << 20, backlog=2048
        )

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:  # aborted transports end most of them; cancel the rest (a drip's sleep)
                _, pending = await asyncio.wait(tasks, timeout=1)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> HostileUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget what was seen (a test calls this before the request it checks)."""
        with self.lock:
            self.tally.fault_ends.clear()
            self.tally.seen.clear()

    def fault_ends(self) -> list[float]:
        with self.lock:
            return list(self.tally.fault_ends)

    def seen(self) -> list[Seen]:
        with self.lock:
            return list(self.tally.seen)

    # --- one connection

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        with self.lock:
            self.tally.connections_open += 1
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                with self.lock:
                    self.tally.requests += 1
                    if len(self.tally.seen) < 2000:
                        self.tally.seen.append(
                            Seen(
                                request.method,
                                request.path,
                                request.headers,
                                request.body[:4096],
                                time.monotonic(),
                            )
                        )
                if request.kind == "models" or self.behaviour == "ok":
                    await self._ok(request, writer)
                    continue
                keep = await self._misbehave(self.behaviour, request, reader, writer)
                if not keep:
                    return
        except (Closed, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            return  # the server is stopping (asyncio's callback would log a re-raised one)
        finally:
            with self.lock:
                self.tally.connections_open -= 1
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.is_closing():
            raise Closed
        writer.write(data)
        with self.lock:
            self.tally.bytes_sent += len(data)
        try:
            await writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise Closed from exc
        if writer.is_closing():
            raise Closed

    async def _ok(self, request: Request, writer: asyncio.StreamWriter) -> None:
        if request.stream and request.kind in ("chat", "responses"):
            body = b"".join(ok_events(request))
            await self._send(
                writer,
                head(
                    200,
                    [("content-type", "text/event-stream"), ("content-length", str(len(body)))],
                )
                + body,
            )
            return
        await self._json(writer, 200, ok_body(request))

    async def _json(
        self,
        writer: asyncio.StreamWriter,
        status: int | str,
        body: Any,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data)))]
        await self._send(writer, head(status, headers + (extra or [])) + data)

    async def _misbehave(
        self,
        behaviour: str,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer badly; True when the connection may serve another request."""
        handler: Callable[..., Awaitable[bool]] = getattr(self, f"_b_{behaviour}")
        try:
            return await asyncio.wait_for(handler(request, reader, writer), self.max_seconds)
        except (TimeoutError, Closed, ConnectionError):
            return False
        finally:
            with self.lock:
                self.tally.fault_ends.append(time.monotonic())

    # --- behaviours (each returns whether the connection stays usable)

    async def _b_endless(self, request, reader, writer) -> bool:
        sent = 0
        if request.stream:
            await self._send(
                writer,
                head(200, [("content-type", "text/event-stream"), ("connection", "close")])
                + chat_events(end=False)[0],
            )
            piece = chunk({"content": "x" * 4000}) * 16
            while sent < self.max_bytes:
                await self._send(writer, piece)
                sent += len(piece)
            return False
        await self._send(
            writer,
            head(200, [("content-type", "application/json"), ("connection", "close")])
            + b'{"id":"chatcmpl-hostile","object":"chat.completion","model":"gpt-4o",'
            b'"choices":[{"index":0,"message":{"role":"assistant","content":"',
        )
        piece = b"a" * 65536
        while sent < self.max_bytes:
            await self._send(writer, piece)
            sent += len(piece)
        return False

    async def _b_drip(self, request, reader, writer) -> bool:
        if request.stream:
            body = b"".join(ok_events(request))
            data = head(200, [("content-type", "text/event-stream"), ("connection", "close")])
            data += body
        else:
            payload = json.dumps(ok_body(request)).encode()
            data = head(
                200, [("content-type", "application/json"), ("content-length", str(len(payload)))]
            )
            data += payload
        for i in range(len(data)):
            await self._send(writer, data[i : i + 1])
            await asyncio.sleep(0.5)
        return False

    async def _b_hang(self, request, reader, writer) -> bool:
        while await reader.read(65536):  # until the peer hangs up
            pass
        return False

    async def _b_gzip_bomb(self, request, reader, writer) -> bool:
        first, again = bomb()
        kind = "text/event-stream" if request.stream else "application/json"
        await self._send(
            writer,
            head(
                200,
                [("content-type", kind), ("content-encoding", "gzip"), ("connection", "close")],
            )
            + first,
        )
        inflated = 1 << 20
        burst = again * 64
        while inflated < 10 * (self.max_bytes):  # ~10x max_bytes of zeros, inflated
            await self._send(writer, burst)
            inflated += 64 << 20
        return False

    async def _b_early_hints(self, request, reader, writer) -> bool:
        await self._send(writer, b"HTTP/1.1 100 Continue\r\n\r\n")
        await self._send(
            writer, b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
        )
        await self._ok(request, writer)
        return True

    async def _b_short_body(self, request, reader, writer) -> bool:
        if request.stream:
            body = b"".join(ok_events(request, end=False))
            kind = "text/event-stream"
        else:
            body = json.dumps(ok_body(request)).encode()
            kind = "application/json"
        await self._send(
            writer,
            head(200, [("content-type", kind), ("content-length", str(len(body) + 500))]) + body,
        )
        return False

    async def _b_chunked_cut(self, request, reader, writer) -> bool:
        if request.stream:
            parts = ok_events(request, end=False)
            kind = "text/event-stream"
        else:
            whole = json.dumps(ok_body(request)).encode()
            parts = [whole[: len(whole) // 2], whole[len(whole) // 2 :]]
            kind = "application/json"
        await self._send(
            writer, head(200, [("content-type", kind), ("Transfer-Encoding", "Chunked")])
        )
        for part in parts:
            await self._send(writer, f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await asyncio.sleep(0.05)
        return False  # no terminating 0-chunk: the transfer is cut short

    async def _b_crlf_model(self, request, reader, writer) -> bool:
        model = "gpt-4o\r\nx-injected: yes\r\n\r\nHTTP/1.1 200 OK"
        return await self._answer_with(request, writer, model=model)

    async def _b_usage_lots(self, request, reader, writer) -> bool:
        return await self._answer_with(request, writer, usage="lots")

    async def _b_negative_usage(self, request, reader, writer) -> bool:
        if request.kind == "responses":
            usage = {
                "input_tokens": -1_000_000,
                "output_tokens": -2_000_000,
                "total_tokens": -3_000_000,
            }
        else:
            usage = {
                "prompt_tokens": -1_000_000,
                "completion_tokens": -2_000_000,
                "total_tokens": -3_000_000,
            }
        return await self._answer_with(request, writer, usage=usage)

    async def _answer_with(
        self, request: Request, writer, *, model: str = "gpt-4o", usage: Any = None
    ) -> bool:
        if request.stream and request.kind in ("chat", "responses"):
            body = b"".join(ok_events(request, model, usage))
            await self._send(
                writer,
                head(
                    200, [("content-type", "text/event-stream"), ("content-length", str(len(body)))]
                )
                + body,
            )
        else:
            await self._json(writer, 200, ok_body(request, model, usage))
        return True

    async def _b_retry_after_inf(self, request, reader, writer) -> bool:
        body = {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        await self._json(writer, 429, body, [("retry-after", "inf"), ("retry-after-ms", "inf")])
        return True

    async def _b_status_999(self, request, reader, writer) -> bool:
        await self._json(writer, "999 Strange", {"error": {"message": "what status is this"}})
        return True

    async def _b_json_list(self, request, reader, writer) -> bool:
        if request.stream:
            body = b"data: [1, 2, 3]\n\n" + b"".join(ok_events(request))
            await self._send(
                writer,
                head(
                    200, [("content-type", "text/event-stream"), ("content-length", str(len(body)))]
                )
                + body,
            )
        else:
            await self._json(writer, 200, [1, 2, 3])
        return True

    async def _b_json_list_mid(self, request, reader, writer) -> bool:
        if not request.stream:
            return await self._b_json_list(request, reader, writer)
        events = ok_events(request, end=False)
        body = (
            b"".join(events[:2])
            + b"data: [1, 2, 3]\n\n"
            + b"".join(events[2:])
            + b"data: [DONE]\n\n"
        )
        await self._send(
            writer,
            head(200, [("content-type", "text/event-stream"), ("content-length", str(len(body)))])
            + body,
        )
        return True

    async def _b_no_terminator(self, request, reader, writer) -> bool:
        events = ok_events(request, end=False)
        await self._send(
            writer,
            head(200, [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]),
        )
        for event in events:
            await self._send(writer, f"{len(event):x}\r\n".encode() + event + b"\r\n")
        await self._send(writer, b"0\r\n\r\n")  # a clean end of the transfer, not of the answer
        return True

    async def _echo(self, request: Request, writer, status: int) -> bool:
        echoed = request.head.decode("latin-1")
        sent_body = request.body[:200].decode("latin-1")
        body = {
            "error": {
                "message": f"Invalid request. You sent: {echoed} with body {sent_body}",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
        await self._json(writer, status, body)
        return True

    async def _b_echo_key(self, request, reader, writer) -> bool:
        return await self._echo(request, writer, 400)

    async def _b_echo_key_401(self, request, reader, writer) -> bool:
        return await self._echo(request, writer, 401)

    async def _b_echo_key_500(self, request, reader, writer) -> bool:
        return await self._echo(request, writer, 500)

    async def _b_huge_headers(self, request, reader, writer) -> bool:
        await self._send(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
        line = b"x-junk-" + b"j" * 8000 + b": " + b"v" * 8000 + b"\r\n"
        sent = 0
        while sent < self.max_bytes:
            await self._send(writer, line * 8)
            sent += len(line) * 8
        return False


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, path, _ = ([*lines[0].split(" ", 2), "", ""])[:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    return Request(method, path, headers, body, raw)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile.upstream", description=__doc__)
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--behaviour", default="ok", choices=BEHAVIOURS)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    upstream = HostileUpstream(args.behaviour, port=args.port)
    upstream.start()
    print(f"listening on {upstream.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        upstream.stop()


if __name__ == "__main__":
    main()
