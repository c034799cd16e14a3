"""Raw ASGI plumbing shared by the fakes: read a body, send a whole response, stream one,
and drop a connection on purpose. No framework, so a fake serves thousands of requests/s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from tests.fakes.state import FakeState, RecordedRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
NDJSON = b"application/x-ndjson"


class DropConnection(Exception):
    """Raised after the response has started so the server closes the socket mid-body.

    ``tests.fakes.server`` keeps uvicorn from logging it as an application error.
    """


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def parse_json(body: bytes) -> Any:
    """The parsed body, or ``None`` when it is empty or not JSON."""
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def header(scope: Scope, name: bytes) -> str | None:
    """One request header by lower-case name, without building a dict."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query_params(scope: Scope) -> dict[str, str]:
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))


def remember(fake: FakeState, scope: Scope, parsed: Any) -> None:
    if not fake.record:
        return
    fake.remember(
        RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=query_params(scope),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            json=parsed,
        )
    )


def encode_headers(headers: dict[str, str]) -> Headers:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: Headers | None = None,
) -> None:
    headers: Headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
    ]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, extra: Headers | None = None) -> None:
    await send_body(send, status, orjson.dumps(payload), JSON, extra)


async def send_text(send: Send, status: int, text: str, extra: Headers | None = None) -> None:
    content_type = b"text/html; charset=utf-8" if text.lstrip().startswith("<") else b"text/plain"
    await send_body(send, status, text.encode(), content_type, extra)


async def start_stream(send: Send, content_type: bytes, extra: Headers | None = None) -> None:
    headers: Headers = [(b"content-type", content_type), (b"cache-control", b"no-cache")]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def stream_part(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def end_stream(send: Send) -> None:
    await send({"type": "http.response.body", "body": b""})


async def send_partial_then_drop(send: Send, body: bytes, content_type: bytes = JSON) -> None:
    """Promise the whole ``body`` by content-length, send half of it, then drop the socket."""
    headers: Headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
    raise DropConnection


async def serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
