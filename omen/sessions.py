"""Agent sessions: which pin a conversation has, kept for `routing.session_ttl` after its last turn.

In memory (bounded, oldest first out) for one instance; in Redis when `server.redis_url` is set,
so every instance of a fleet sends a session's turns to the same model and endpoint. A Redis
that cannot be reached costs the session its pin, never the request.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from omen.routing.session import Pin

log = logging.getLogger("omen.sessions")

# Where agents name their conversation, in the order SPEC §9 gives.
SESSION_HEADERS = ("x-omen-session", "x-claude-code-session-id", "session-id")
_LEGACY_USER_ID = re.compile(r"_session_([0-9A-Za-z-]{8,64})$")
_MAX_ID = 200
_MAX_MEMORY = 100_000


def session_id(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """The session a request belongs to, if its client names one."""
    for name in SESSION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:_MAX_ID]
    key = body.get("prompt_cache_key")
    if isinstance(key, str) and key:
        return key[:_MAX_ID]
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        # Claude Code: a JSON string holding session_id; older versions: "…_session_<uuid>".
        if user_id.startswith("{"):
            try:
                parsed = orjson.loads(user_id)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict) and isinstance(parsed.get("session_id"), str):
                return str(parsed["session_id"])[:_MAX_ID] or None
        match = _LEGACY_USER_ID.search(user_id)
        if match:
            return match.group(1)
    return None


class SessionStore:
    """Pins by (container, session id)."""

    def __init__(self, ttl: float, redis_url: str = "", prefix: str = "omen") -> None:
        self.ttl = ttl
        self.prefix = prefix
        self._memory: OrderedDict[str, tuple[Pin, float]] = OrderedDict()
        self._redis: Any = None
        if redis_url and ttl > 0:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(
                redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
            )

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def _key(self, container: str, session: str) -> str:
        return f"{self.prefix}:session:{container}:{session}"

    async def get(self, container: str, session: str) -> Pin | None:
        key = self._key(container, session)
        if self._redis is not None:
            try:
                raw = await self._redis.get(key)
            except Exception as exc:  # an unreachable Redis costs the pin, not the request
                log.warning("session store unreachable: %s", exc)
                raw = None
            return _pin(raw) if raw else None
        entry = self._memory.get(key)
        if entry is None:
            return None
        pin, expires = entry
        if expires < time.monotonic():
            del self._memory[key]
            return None
        return pin

    async def put(self, container: str, session: str, pin: Pin) -> None:
        key = self._key(container, session)
        if self._redis is not None:
            value = orjson.dumps([pin.provider, pin.model, pin.endpoint, pin.quality])
            try:
                await self._redis.set(key, value, ex=max(1, int(self.ttl)))
            except Exception as exc:
                log.warning("session store unreachable: %s", exc)
            return
        self._memory[key] = (pin, time.monotonic() + self.ttl)
        self._memory.move_to_end(key)
        while len(self._memory) > _MAX_MEMORY:
            self._memory.popitem(last=False)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _pin(raw: bytes) -> Pin | None:
    try:
        provider, model, endpoint, quality = orjson.loads(raw)
        return Pin(str(provider), str(model), str(endpoint), float(quality))
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
