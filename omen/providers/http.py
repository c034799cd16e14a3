"""Shared by the adapters: one pooled httpx client per upstream, errors as UpstreamError."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any, cast

import httpx
import orjson

from omen.providers.base import JSON, UpstreamError
from omen.providers.transport import FastTransport
from omen.telemetry.trace import upstream_headers

ErrorMapper = Callable[[int, bytes, httpx.Headers], UpstreamError]


class UpstreamClients:
    """Owns one httpx client per upstream base URL, with the provider's timeouts."""

    def __init__(self, *, timeout: float, connect_timeout: float) -> None:
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout, pool=timeout)
        self._clients: dict[str, httpx.AsyncClient] = {}

    def get(self, base_url: str) -> httpx.AsyncClient:
        client = self._clients.get(base_url)
        if client is None:
            client = httpx.AsyncClient(
                base_url=base_url, timeout=self._timeout, transport=FastTransport()
            )
            self._clients[base_url] = client
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


_URLS: dict[tuple[str, str, tuple[tuple[str, str], ...]], httpx.URL] = {}


def absolute_url(
    client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None
) -> httpx.URL:
    """The full URL for `path` on this client, parsed once: httpx would re-parse and merge
    it on every request, which costs more than the rest of building the request."""
    key = (str(client.base_url), path, tuple(sorted((params or {}).items())))
    url = _URLS.get(key)
    if url is None:
        url = client.base_url.join(path.lstrip("/"))
        if params:
            url = url.copy_merge_params(params)
        if len(_URLS) > 4096:  # a bound, should models in paths ever be unbounded
            _URLS.clear()
        _URLS[key] = url
    return url


def with_trace(headers: dict[str, str]) -> dict[str, str]:
    """The request's W3C trace context travels to the upstream with every call."""
    trace = upstream_headers()
    return {**headers, **trace} if trace else headers


def transport_error(exc: httpx.HTTPError, where: str) -> UpstreamError:
    """A failure to talk to the upstream at all: connection refused, reset, timeout."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamError(504, f"{where}: upstream timed out ({exc})", type_="timeout")
    return UpstreamError(502, f"{where}: {exc or type(exc).__name__}", type_="upstream_unreachable")


def parse_retry_after(headers: httpx.Headers) -> float | None:
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds / 1000 if name == "retry-after-ms" else seconds
    return None


def loads(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(502, f"{where}: upstream sent invalid JSON") from None


async def post_json(
    client: httpx.AsyncClient,
    path: str,
    payload: JSON,
    *,
    headers: dict[str, str],
    where: str,
    on_error: ErrorMapper,
    params: dict[str, str] | None = None,
) -> tuple[bytes, httpx.Response]:
    """POST a JSON body and return the raw response bytes; non-2xx raises via `on_error`."""
    try:
        response = await client.post(
            absolute_url(client, path, params),
            content=orjson.dumps(payload),
            headers=with_trace(headers),
        )
    except httpx.HTTPError as exc:
        raise transport_error(exc, where) from exc
    if response.status_code >= 400:
        raise on_error(response.status_code, response.content, response.headers)
    return response.content, response


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    path: str,
    payload: JSON,
    *,
    headers: dict[str, str],
    where: str,
    on_error: ErrorMapper,
    params: dict[str, str] | None = None,
) -> AsyncIterator[httpx.Response]:
    """Open a streamed POST; errors before the body starts are raised as UpstreamError."""
    request = client.build_request(
        "POST",
        absolute_url(client, path, params),
        content=orjson.dumps(payload),
        headers=with_trace(headers),
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc, where) from exc
    try:
        if response.status_code >= 400:
            try:
                body = await response.aread()
            except httpx.HTTPError:
                body = b""
            raise on_error(response.status_code, body, response.headers)
        yield response
    finally:
        await response.aclose()


async def iter_lines(response: httpx.Response, where: str) -> AsyncGenerator[bytes, None]:
    """Split a streamed body into lines (LF or CRLF), raising mid-stream failures clearly."""
    buffer = b""
    try:
        raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        async with aclosing(raw) as chunks:
            async for chunk in chunks:
                buffer += chunk
                while True:
                    cut = buffer.find(b"\n")
                    if cut < 0:
                        break
                    line, buffer = buffer[:cut], buffer[cut + 1 :]
                    yield line.rstrip(b"\r")
    except httpx.HTTPError as exc:
        error = transport_error(exc, where)
        error.mid_stream = True
        raise error from exc
    if buffer.strip():
        yield buffer.rstrip(b"\r")


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


async def sse_events(response: httpx.Response, where: str) -> AsyncGenerator[bytes, None]:
    """Each server-sent event as the bytes that carried it, its blank line included: what a
    passthrough relays to the client unchanged."""
    buffer = b""
    try:
        raw = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        async with aclosing(raw) as chunks:
            async for chunk in chunks:
                buffer += chunk
                while (end := _EVENT_END.search(buffer)) is not None:
                    event, buffer = buffer[: end.end()], buffer[end.end() :]
                    yield event
    except httpx.HTTPError as exc:
        error = transport_error(exc, where)
        error.mid_stream = True
        raise error from exc
    if buffer.strip():
        yield buffer


def sse_json(raw: bytes, where: str) -> JSON:
    """One event's `data:` as JSON (only read: usage, errors, the end); `event:` fills a
    missing `type`; `[DONE]` and comment-only events are `{"type": …}` markers."""
    name: str | None = None
    data: list[bytes] = []
    for line in raw.splitlines():
        if line.startswith(b"event:"):
            name = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
    payload = b"\n".join(data)
    if not payload.strip():
        return {"type": name or ""}
    if payload.strip() == b"[DONE]":
        return {"type": "[DONE]"}
    event = loads(payload, where)
    if not isinstance(event, dict):
        raise UpstreamError(502, f"{where}: stream event is not an object", mid_stream=True)
    if name and "type" not in event:
        event["type"] = name
    return event
