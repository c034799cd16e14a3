"""Keyless mode's guard: with no key configured Omen serves only its own machine, so a web page
in the operator's browser must not be able to use it (cross-site POSTs, DNS rebinding).

Only loopback Host names, no foreign Origin, and JSON bodies on writes: a browser cannot send
`application/json` cross-site without a preflight Omen never answers, and a rebound name
arrives with its own Host. Everything else is a 403 in OpenAI's shape.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from omen.errors import ApiError
from omen.http.errors import error_response

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _host_name(value: str) -> str:
    """`127.0.0.1:8080` → `127.0.0.1`, `[::1]:8080` → `[::1]`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _loopback(host: str) -> bool:
    """A loopback name or address — `127.0.0.1.evil.example` is neither."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(scope: Scope) -> str | None:
    """Why a keyless request is refused, or None."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
    if not _loopback(_host_name(headers.get("host", ""))):
        return "with no API key configured Omen answers only to a loopback Host"
    origin = headers.get("origin")
    if origin and origin != "null" and not _loopback((urlsplit(origin).hostname or "").lower()):
        return "cross-site requests are refused when no API key is configured"
    if origin == "null":
        return "cross-site requests are refused when no API key is configured"
    if scope.get("method") in _WRITES:
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return "with no API key configured, requests must send content-type application/json"
    return None


class LoopbackGuard:
    """ASGI middleware; `keyless()` is asked per request, so a reload that adds keys counts."""

    def __init__(self, app: ASGIApp, keyless: Callable[[], bool]) -> None:
        self.app = app
        self.keyless = keyless

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.keyless():
            why = refusal(scope)
            if why is not None:
                await error_response(ApiError(403, why, code="keyless_guard"))(scope, receive, send)
                return
        await self.app(scope, receive, send)
