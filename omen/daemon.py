"""The running daemon's parts and their lifetime: store writer, fleet, gateway, keys.

Every piece of state has one owner, and `Daemon` is the owner of the owners: built from a
loaded config, started by the app's lifespan, stopped on SIGTERM/SIGINT (uvicorn turns both
into a lifespan shutdown), which flushes everything queued for the store.
"""

from __future__ import annotations

import asyncio
import logging
import time

from omen.auth import KeyRing
from omen.config import LoadedConfig, OmenConfig
from omen.fleet import Fleet
from omen.gateway import Gateway
from omen.limits.base import LimitBackend
from omen.limits.control import UsageControl
from omen.limits.memory import MemoryLimits
from store import StoreReader, StoreWriter

log = logging.getLogger("omen.daemon")

_PRUNE_EVERY_S = 600.0


def limits_backend(config: OmenConfig) -> LimitBackend:
    if config.server.redis_url:
        from omen.limits.redis_backend import RedisLimits

        backend: LimitBackend = RedisLimits(config.server.redis_url)
        return backend
    return MemoryLimits()


class Daemon:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        server = self.config.server
        self.writer = StoreWriter(server.database, flush_interval=server.writer_flush_interval)
        self.fleet = Fleet(self.config, self.writer)
        self.usage = UsageControl(self.config, limits_backend(self.config), self.writer)
        self.gateway = Gateway(self.config, self.fleet, self.writer, self.usage)
        self.keys = KeyRing(self.config)
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.writer.start()
        self._restore()
        # One probe round before serving, so /ready and `auto` know what is up.
        await self.fleet.probe_all()
        self.fleet.start()
        self._tasks.append(asyncio.create_task(self._prune_loop()))
        for name, why in self.fleet.unusable.items():
            log.warning("provider %s is not usable: %s", name, why, extra={"provider": name})
        log.info(
            "omen ready",
            extra={
                "providers": sorted(self.fleet.provider_configs),
                "endpoints": len(self.fleet.endpoints),
                "database": str(self.config.server.database),
            },
        )

    def _restore(self) -> None:
        """Drains, budget overrides and (in-process) usage counters persist across restarts."""
        self.writer.flush()
        reader = StoreReader(self.config.server.database)
        try:
            for (provider, endpoint), row in reader.drains().items():
                if row.drained:
                    self.fleet.set_drained(provider, endpoint, True, row.reason)
            self.usage.restore(reader)
        finally:
            reader.close()

    async def _prune_loop(self) -> None:
        server = self.config.server
        while True:
            self.writer.prune(server.keep_request_bodies, server.keep_samples)
            await asyncio.sleep(_PRUNE_EVERY_S)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gateway.wait_idle(timeout=10)
        await self.fleet.aclose()
        await self.usage.aclose()
        # The writer thread commits what is queued; this is the flush on SIGTERM/SIGINT.
        await asyncio.to_thread(self.writer.close)
        log.info("omen stopped; store flushed")
