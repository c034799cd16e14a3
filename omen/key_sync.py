"""Keys made or revoked through one instance reach every other instance of the fleet.

The store is the authority: every instance re-reads its api_keys table each
`server.fleet_refresh` when the store is a fleet's PostgreSQL (in omen.shared_state's round,
with the drains and budgets; `apply_rows` takes them). With Redis configured, each
creation and revocation is also announced on the channel `{redis_prefix}:keys` (the key id,
digest, container and scope — never the key), and every instance applies it on arrival: a
revocation at once, a creation by reading the store, so that whoever can write to Redis can
take a key away but never grant one. A missed message is caught up by the next refresh.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from omen.auth import KeyRing
from omen_store import ApiKeyRow, StoreError, StoreReader

log = logging.getLogger("omen.keys")

_KEY_ID = re.compile(r"^key_[0-9a-f]{12}$")
_PUBLISH_TIMEOUT_S = 2.0
_RETRY_S = (0.5, 1.0, 2.0, 5.0)  # between attempts to (re)subscribe, then the last again


class KeySync:
    def __init__(
        self, keys: KeyRing, database: Path | str, redis_url: str, prefix: str, instance: str
    ) -> None:
        self.keys = keys
        self.database = database
        self.redis_url = redis_url
        self.channel = f"{prefix}:keys"
        self.instance = instance
        self._origin = uuid.uuid4().hex  # this process: its own announcements are skipped
        self._publisher: aioredis.Redis | None = None
        self._reader: StoreReader | None = None
        self._reading = asyncio.Lock()

    # --- announcing (the admin API) -----------------------------------------------------------

    async def announce(self, event: str, row: ApiKeyRow) -> None:
        """Tell the other instances; a Redis that does not answer is logged, and the store
        refresh carries the change instead."""
        await self._publish(
            {
                "event": event,  # "created" | "revoked"
                "key_id": row.key_id,
                "digest": row.digest,
                "container": row.container,
                "scope": row.scope,
            }
        )

    async def announce_revoked(self, key_id: str) -> None:
        """A revocation the store cannot be read for (all a revocation needs is the id)."""
        await self._publish({"event": "revoked", "key_id": key_id})

    async def _publish(self, fields: dict[str, Any]) -> None:
        if not self.redis_url:
            return
        message = {**fields, "instance": self.instance, "origin": self._origin}
        if self._publisher is None:
            self._publisher = aioredis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=_PUBLISH_TIMEOUT_S,
                socket_timeout=_PUBLISH_TIMEOUT_S,
            )
        try:
            await asyncio.wait_for(
                self._publisher.publish(self.channel, orjson.dumps(message)), _PUBLISH_TIMEOUT_S
            )
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "keys: could not announce %s %s on Redis (%s); other instances take it from "
                "the store",
                fields["key_id"],
                fields["event"],
                type(exc).__name__,
            )

    # --- following --------------------------------------------------------------------------

    async def follow_redis(self) -> None:
        """Apply the other instances' announcements until cancelled, resubscribing after any
        failure (and then reading the store, for what was said meanwhile)."""
        attempt = 0
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=2.0,
                health_check_interval=10,
                client_name=f"omen-keys-{self.instance}",  # who follows, in CLIENT LIST
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if attempt:
                    log.info("keys: following %s on Redis again", self.channel)
                    await self.sync_from_store()
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self.apply(message.get("data"))
            except (RedisError, OSError) as exc:
                if attempt == 0:
                    log.warning("keys: lost the Redis channel %s (%s); retrying", self.channel, exc)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            await asyncio.sleep(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])
            attempt += 1

    async def apply(self, data: Any) -> None:
        """One announcement: a revocation applies at once, a creation once the store has it."""
        try:
            message = orjson.loads(data)
        except (orjson.JSONDecodeError, TypeError):
            return
        if not isinstance(message, dict) or message.get("origin") == self._origin:
            return
        key_id, event = message.get("key_id"), message.get("event")
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            return
        if event == "revoked":
            if self.keys.revoke(key_id):
                log.info("keys: %s revoked via %s", key_id, message.get("instance"))
        elif event == "created" and not self.keys.is_active(key_id):
            await self.sync_from_store()

    async def sync_from_store(self) -> None:
        async with self._reading:  # one read at a time, however many announcements arrive
            try:
                rows = await asyncio.to_thread(self._read)
            except StoreError as exc:
                log.debug("keys: cannot read the store's keys: %s", exc)
                return
            self.apply_rows(rows)

    def apply_rows(self, rows: Iterable[ApiKeyRow]) -> None:
        for change in self.keys.sync(rows):
            log.info("keys: %s", change)

    def _read(self) -> list[ApiKeyRow]:
        if self._reader is None:
            self._reader = StoreReader(self.database)
        try:
            return self._reader.api_keys()
        except StoreError:
            self._close_reader()  # reopened next time: the server may have restarted
            raise

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def aclose(self) -> None:
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
        self._close_reader()
