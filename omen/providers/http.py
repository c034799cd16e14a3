"""Upstream HTTP for the adapters, on aiohttp: one pooled session per upstream base URL, every
call bounded in time and bytes, every failure an UpstreamError.

`timeout` bounds a whole non-streamed call (pool wait, connect, send, the whole body). A stream
gets `first_byte_timeout` to its first event, then `idle_timeout` between reads and
`max_stream_duration` in all; they are checked around each read only, so whoever iterates a
stream (the client's request, or the pump after the client hung up) is bounded without being
cancelled in the middle of its own work. Bodies and whole streams stop at `max_response_size`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from omen.config import ProviderConfig
from omen.providers.base import JSON, UpstreamError
from omen.telemetry.trace import upstream_headers

MiB = 1024 * 1024
ERROR_BODY_LIMIT = MiB  # of an error answer, kept for its message: the rest is dropped

ErrorMapper = Callable[[int, bytes, Mapping[str, str]], UpstreamError]


class UpstreamSetupError(ValueError):
    """A provider's HTTP settings cannot be used (a TLS file missing or unreadable)."""


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """One provider's bounds and TLS settings (the `[providers.NAME]` keys of the same names)."""

    timeout: float = 60.0
    connect_timeout: float = 5.0
    first_byte_timeout: float | None = None  # None: `timeout`
    idle_timeout: float = 60.0
    max_stream_duration: float = 600.0
    max_response_size: int = 64 * MiB
    max_connections: int = 256
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @classmethod
    def of(cls, config: ProviderConfig) -> UpstreamSettings:
        return cls(
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            first_byte_timeout=config.first_byte_timeout,
            idle_timeout=config.idle_timeout,
            max_stream_duration=config.max_stream_duration,
            max_response_size=config.max_response_size,
            max_connections=config.max_connections,
            ca_bundle=config.ca_bundle,
            client_cert=config.client_cert,
            client_key=config.client_key,
        )

    @property
    def first_byte(self) -> float:
        return self.first_byte_timeout or self.timeout

    def ssl_context(self) -> ssl.SSLContext:
        """The context https upstreams are verified with (and Omen's certificate, if any)."""
        if self.ca_bundle is None and self.client_cert is None:
            return _default_ssl_context()
        try:
            if self.ca_bundle is not None:
                context = ssl.create_default_context(cafile=str(self.ca_bundle.expanduser()))
            else:
                context = _trusting_system_and_certifi()
            if self.client_cert is not None:
                key = self.client_key.expanduser() if self.client_key else None
                context.load_cert_chain(self.client_cert.expanduser(), key)
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamSetupError(f"TLS settings unusable: {exc}") from exc
        return context


def _trusting_system_and_certifi() -> ssl.SSLContext:
    # The system's store (corporate CAs live there) and certifi's (what httpx trusted, and
    # all a slim container may have).
    context = ssl.create_default_context()
    try:
        import certifi

        context.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    return context


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    return _trusting_system_and_certifi()


class Upstream:
    """One upstream base URL: its pooled session, its bounds, its URLs parsed once."""

    def __init__(self, base_url: str, settings: UpstreamSettings, ssl_context: Any) -> None:
        self.base_url = base_url
        self.settings = settings
        self._base = str(URL(base_url.rstrip("/")))  # encoded once (IDN hosts, spaces)
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], URL] = {}
        # The proxy the environment names for this upstream, read once: aiohttp's trust_env
        # would look it up (and ~/.netrc) in a thread on every request.
        try:
            proxy, proxy_auth = get_env_proxy_for_url(URL(self._base))
        except LookupError:
            proxy, proxy_auth = None, None
        self.proxy: URL | None = proxy
        self.proxy_auth: aiohttp.BasicAuth | None = proxy_auth
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.max_connections,
                ttl_dns_cache=60,
                ssl=ssl_context,
            ),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout),
            # Omen reads bodies in bounded steps and counts what it keeps, so an upstream that
            # compresses anyway is decoded step by step (aiohttp ≥ 3.14) and cut at
            # max_response_size; identity is asked for so streams are never held in a
            # compressor's buffer and nothing is spent inflating.
            headers={"accept-encoding": "identity"},
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),  # one upstream's cookies are nobody's
            # aiohttp's limits on an answer's head, stated: a status or header line over
            # 8190 bytes, or over 128 header fields, is refused (a 502 here).
            max_line_size=8190,
            max_field_size=8190,
            max_headers=128,
        )

    def url(self, path: str, params: dict[str, str] | None) -> URL:
        """The full URL for `path`, built once; the path is sent as the adapter encoded it
        (Bedrock signs those exact bytes)."""
        key = (path, tuple(sorted(params.items())) if params else ())
        url = self._urls.get(key)
        if url is None:
            text = self._base + "/" + path.lstrip("/")
            if params:
                text += "?" + urlencode(params)
            url = URL(text, encoded=True)
            if len(self._urls) > 4096:  # a bound, should models in paths ever be unbounded
                self._urls.clear()
            self._urls[key] = url
        return url

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request and return once the answer's head arrived (1xx skipped).
        On a pooled connection the server had just closed, aiohttp sends an idempotent GET
        or HEAD once more; a POST (which may have been acted on, and billed) fails, a 502
        another candidate may answer, and is never re-sent."""
        return await self.session.request(
            method,
            self.url(path, params),
            data=data,
            headers=headers,
            proxy=self.proxy,
            proxy_auth=self.proxy_auth,
            allow_redirects=False,
        )


class UpstreamClients:
    """Owns one Upstream (pooled session) per base URL, all with the provider's settings."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        # Built now, so a missing CA file stops the provider at start-up, not mid-request.
        self._ssl = settings.ssl_context()
        self._clients: dict[str, Upstream] = {}

    def get(self, base_url: str) -> Upstream:
        client = self._clients.get(base_url)
        if client is None:
            client = Upstream(base_url, self.settings, self._ssl)
            self._clients[base_url] = client
        return client

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.session.close()


def with_trace(headers: dict[str, str]) -> dict[str, str]:
    """The request's W3C trace context travels to the upstream with every call."""
    trace = upstream_headers()
    return {**headers, **trace} if trace else headers


def transport_error(exc: BaseException, where: str) -> UpstreamError:
    """A failure to talk to the upstream at all: connection refused, reset, timeout."""
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are ones too
        return UpstreamError(504, f"{where}: upstream timed out", type_="timeout")
    detail = str(exc) or type(exc).__name__
    return UpstreamError(502, f"{where}: {detail}", type_="upstream_unreachable")


def _too_large(where: str, limit: int, *, mid_stream: bool = False) -> UpstreamError:
    return UpstreamError(
        502,
        f"{where}: answer larger than max_response_size ({limit} bytes)",
        code="response_too_large",
        mid_stream=mid_stream,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from retry-after-ms or retry-after (seconds); a date, a negative or
    non-finite value, or one over a day is no advice."""
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                return None
            if name == "retry-after-ms":
                seconds /= 1000
            if not math.isfinite(seconds) or not 0 <= seconds <= 86400:
                return None
            return seconds
    return None


def loads(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamError(502, f"{where}: upstream sent invalid JSON") from None


async def _read_body(
    response: aiohttp.ClientResponse, limit: int, where: str, *, truncate: bool = False
) -> bytes:
    """The whole body, or a 502 past `limit` bytes (decoded bytes, when it came compressed);
    with `truncate`, the first `limit` bytes instead."""
    length = response.content_length
    compressed = response.headers.get("content-encoding", "identity").lower() != "identity"
    if length is not None and not compressed:
        if length <= limit:
            return await response.read()
        if not truncate:
            raise _too_large(where, limit)
    parts: list[bytes] = []
    size = 0
    content = response.content
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            if not truncate:
                raise _too_large(where, limit)
            parts.append(chunk[: len(chunk) - (size - limit)])
            break
        parts.append(chunk)
    return b"".join(parts)


async def _send(
    client: Upstream,
    method: str,
    path: str,
    data: bytes | None,
    headers: dict[str, str],
    params: dict[str, str] | None,
    where: str,
) -> aiohttp.ClientResponse:
    try:
        return await client.request(
            method, path, data=data, headers=with_trace(headers), params=params
        )
    except ValueError as exc:
        # aiohttp refuses header values with CR/LF (and other malformed requests) before
        # sending; they come from Omen's settings (a key with a trailing newline).
        raise UpstreamError(
            502,
            f"{where}: request not sent, a header or URL is malformed ({type(exc).__name__})",
        ) from exc


async def _refuse(
    response: aiohttp.ClientResponse, where: str, on_error: ErrorMapper
) -> UpstreamError | None:
    """The error an answer's status means (its body read for the message), or None."""
    status = response.status
    if 200 <= status < 400:
        return None
    if not 200 <= status <= 599:
        return UpstreamError(502, f"{where}: upstream answered with HTTP status {status}")
    body = await _read_body(response, ERROR_BODY_LIMIT, where, truncate=True)
    return on_error(status, body, response.headers)


async def fetch(
    client: Upstream,
    method: str,
    path: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str],
    where: str,
    on_error: ErrorMapper,
    params: dict[str, str] | None = None,
) -> tuple[bytes, aiohttp.ClientResponse]:
    """One non-streamed call, whole within `timeout`: the raw body of a 2xx/3xx answer;
    4xx/5xx raise via `on_error`, everything else as an UpstreamError."""
    settings = client.settings
    try:
        async with asyncio.timeout(settings.timeout):
            response = await _send(client, method, path, data, headers, params, where)
            try:
                if (error := await _refuse(response, where, on_error)) is not None:
                    raise error
                body = await _read_body(response, settings.max_response_size, where)
            finally:
                response.release()  # back to the pool when read to the end, else closed
    except TimeoutError as exc:
        raise UpstreamError(
            504,
            f"{where}: no complete answer within {settings.timeout:g}s (timeout)",
            type_="timeout",
        ) from exc
    except aiohttp.ClientError as exc:
        raise transport_error(exc, where) from exc
    return body, response


async def post_json(
    client: Upstream,
    path: str,
    payload: JSON,
    *,
    headers: dict[str, str],
    where: str,
    on_error: ErrorMapper,
    params: dict[str, str] | None = None,
) -> tuple[bytes, aiohttp.ClientResponse]:
    """POST a JSON body and return the raw response bytes; non-2xx raises via `on_error`."""
    return await fetch(
        client,
        "POST",
        path,
        data=orjson.dumps(payload),
        headers=headers,
        where=where,
        on_error=on_error,
        params=params,
    )


async def get_json(
    client: Upstream,
    path: str,
    *,
    headers: dict[str, str],
    where: str,
    on_error: ErrorMapper,
    params: dict[str, str] | None = None,
) -> Any:
    """GET a JSON answer (model lists, probes), parsed; non-2xx raises via `on_error`."""
    raw, _ = await fetch(
        client, "GET", path, headers=headers, where=where, on_error=on_error, params=params
    )
    return loads(raw, where)


class Body(Protocol):
    """A streamed body: its bytes as they arrive."""

    def aiter_raw(self) -> AsyncGenerator[bytes, None]: ...


class UpstreamStream:
    """A streamed answer's body, read under the stream's time and size bounds.

    `started` is set by the readers below once they hand out a first line, event or frame:
    until then `first_byte_timeout` applies and a failure is not mid-stream (another
    candidate may still answer); after it, `idle_timeout` between reads.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        settings: UpstreamSettings,
        where: str,
        opened_at: float,
    ) -> None:
        self.response = response
        self.status = response.status
        self.headers = response.headers
        self.started = False
        self._settings = settings
        self._where = where
        self._first_by = opened_at + settings.first_byte
        self._end_by = opened_at + settings.max_stream_duration

    def _timed_out(self, now: float) -> UpstreamError:
        settings, where = self._settings, self._where
        if now >= self._end_by - 0.001:  # timers may fire a hair early
            why = f"stream ran past max_stream_duration ({settings.max_stream_duration:g}s)"
        elif not self.started:
            why = f"no first event within first_byte_timeout ({settings.first_byte:g}s)"
        else:
            why = f"no data for idle_timeout ({settings.idle_timeout:g}s)"
        return UpstreamError(504, f"{where}: {why}", type_="timeout", mid_stream=self.started)

    async def aiter_raw(self) -> AsyncGenerator[bytes, None]:
        content = self.response.content
        loop = asyncio.get_running_loop()
        limit = self._settings.max_response_size
        idle = self._settings.idle_timeout
        received = 0
        while True:
            try:
                chunk = content.read_nowait()  # what already arrived costs no timer
                if not chunk:
                    if content.at_eof():
                        return
                    now = loop.time()
                    until = min(now + idle if self.started else self._first_by, self._end_by)
                    async with asyncio.timeout_at(until):
                        chunk = await content.readany()
                    if not chunk:
                        return
            except TimeoutError:
                raise self._timed_out(loop.time()) from None
            except aiohttp.ClientError as exc:
                error = transport_error(exc, self._where)
                error.mid_stream = self.started
                raise error from exc
            received += len(chunk)
            if received > limit:
                raise _too_large(self._where, limit, mid_stream=self.started)
            yield chunk


@asynccontextmanager
async def open_stream(
    client: Upstream,
    path: str,
    payload: JSON,
    *,
    headers: dict[str, str],
    where: str,
    on_error: ErrorMapper,
    params: dict[str, str] | None = None,
) -> AsyncIterator[UpstreamStream]:
    """Open a streamed POST; errors before the body starts are raised as UpstreamError."""
    settings = client.settings
    loop = asyncio.get_running_loop()
    opened_at = loop.time()
    until = opened_at + min(settings.first_byte, settings.max_stream_duration)
    try:
        async with asyncio.timeout_at(until):
            response = await _send(
                client, "POST", path, orjson.dumps(payload), headers, params, where
            )
            try:
                error = await _refuse(response, where, on_error)
            except BaseException:
                response.release()
                raise
            if error is not None:
                response.release()
                raise error
    except TimeoutError as exc:
        raise UpstreamError(
            504,
            f"{where}: no answer within first_byte_timeout ({settings.first_byte:g}s)",
            type_="timeout",
        ) from exc
    except aiohttp.ClientError as exc:
        raise transport_error(exc, where) from exc
    try:
        yield UpstreamStream(response, settings, where, opened_at)
    finally:
        response.release()  # back to the pool when read to the end, else closed


def _started(body: Body) -> None:
    if isinstance(body, UpstreamStream):
        body.started = True


async def iter_lines(body: Body, where: str) -> AsyncGenerator[bytes, None]:
    """Split a streamed body into lines (LF or CRLF). A line that never ends costs no more
    than its bytes: pieces wait in a list until a newline arrives."""
    pending: list[bytes] = []
    started = False
    async with aclosing(body.aiter_raw()) as chunks:
        async for chunk in chunks:
            if b"\n" not in chunk:
                pending.append(chunk)
                continue
            if pending:
                pending.append(chunk)
                chunk = b"".join(pending)
                pending.clear()
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if tail:
                pending.append(tail)
            if not started:
                started = True
                _started(body)
            for line in lines:
                yield line.rstrip(b"\r")
    rest = b"".join(pending)
    if rest.strip():
        yield rest.rstrip(b"\r")


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


async def sse_events(body: Body, where: str) -> AsyncGenerator[bytes, None]:
    """Each server-sent event as the bytes that carried it, its blank line included: what a
    passthrough relays to the client unchanged."""
    pending: list[bytes] = []
    tail = b""  # the last bytes waiting, where a separator may have begun
    started = False
    async with aclosing(body.aiter_raw()) as chunks:
        async for chunk in chunks:
            pending.append(chunk)
            if _EVENT_END.search(tail + chunk[:3]) is None and _EVENT_END.search(chunk) is None:
                tail = (tail + chunk)[-3:]
                continue
            buffer = b"".join(pending)
            pending.clear()
            position = 0
            while (end := _EVENT_END.search(buffer, position)) is not None:
                if not started:
                    started = True
                    _started(body)
                yield buffer[position : end.end()]
                position = end.end()
            rest = buffer[position:]
            if rest:
                pending.append(rest)
            tail = rest[-3:]
    rest = b"".join(pending)
    if rest.strip():
        yield rest


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


def truncated(where: str, terminator: str, *, mid_stream: bool) -> UpstreamError:
    """A stream that ended cleanly but without its protocol's last event: never a success."""
    return UpstreamError(
        502,
        f"{where}: stream ended before {terminator} (truncated)",
        code="stream_truncated",
        mid_stream=mid_stream,
    )


def input_tokens(raw: bytes, where: str) -> int:
    """`{"input_tokens": N}`: how Anthropic's count_tokens and OpenAI's input_tokens answer."""
    data = loads(raw, where)
    tokens = data.get("input_tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise UpstreamError(502, f"{where}: the token count answer has no input_tokens")
    return tokens
