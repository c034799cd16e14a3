"""The running daemon's parts and their lifetime: store writer, fleet, gateway, keys.

Every piece of state has one owner, and `Daemon` is the owner of the owners: built from a
loaded config, started by the app's lifespan, stopped on SIGTERM/SIGINT (uvicorn turns both
into a lifespan shutdown), which flushes everything queued for the store.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Coroutine
from pathlib import Path

from omen.auth import KeyRing
from omen.config import ConfigError, LoadedConfig, OmenConfig, load_config
from omen.fleet import Fleet
from omen.gateway import Gateway
from omen.key_sync import KeySync
from omen.limits.base import LimitBackend
from omen.limits.control import UsageControl
from omen.limits.memory import MemoryLimits
from omen.operators import SignIn
from omen.outcomes import OutcomeBook
from omen.shared_state import SharedState
from omen.telemetry.metrics import Metrics
from omen.telemetry.otel import Tracing
from omen_store import AuditRecord, StoreReader, StoreWriter, display_store

log = logging.getLogger("omen.daemon")

_PRUNE_EVERY_S = 600.0
_RESTORE_WAIT_S = 120.0  # a full spill file replays in well under this
_SIGN_IN_GRACE_S = 30.0  # longer than a sign-in check's HTTP timeouts


def limits_backend(config: OmenConfig) -> LimitBackend:
    if config.server.redis_url:
        from omen.limits.redis_backend import RedisLimits

        backend: LimitBackend = RedisLimits(
            config.server.redis_url, prefix=config.server.redis_prefix
        )
        return backend
    return MemoryLimits()


def spill_path(database: Path | str, configured: Path | None) -> Path | None:
    """The spill file: as configured (relative to a SQLite file's folder), else the store's
    default (next to a SQLite file; in the instance's state folder for PostgreSQL)."""
    if configured is None:
        return None
    if configured.is_absolute() or not isinstance(database, Path):
        return configured
    return database.parent / configured


class Daemon:
    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        self.config = loaded.config
        server = self.config.server
        self.writer = StoreWriter(
            server.database,
            instance=server.instance,
            flush_interval=server.writer_flush_interval,
            on_failure=server.on_store_failure,
            spill_path=spill_path(server.database, server.spill_path),
            spill_max_size=server.spill_max_size,
        )
        self.fleet = Fleet(self.config, self.writer)
        self.usage = UsageControl(self.config, limits_backend(self.config), self.writer)
        self.metrics = Metrics(set(self.config.containers), set(self.fleet.provider_configs), set())
        self.tracing = Tracing.from_environment()
        self.outcomes = OutcomeBook()
        self.gateway = Gateway(
            self.config,
            self.fleet,
            self.writer,
            self.usage,
            self.metrics,
            self.tracing,
            self.outcomes,
        )
        self.keys = KeyRing(self.config)  # the config's keys, then the store's (_restore)
        self.key_sync = KeySync(
            self.keys, server.database, server.redis_url, server.redis_prefix, server.instance
        )
        self.sign_in = SignIn(self.config.auth)  # operators' OIDC / GitHub tokens, admin API only
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        # A fleet on one PostgreSQL store shares drains and budget overrides through it.
        self.shared: SharedState | None = None
        if isinstance(server.database, str):
            self.shared = SharedState(server.database, server.instance)
        self._reloads: set[asyncio.Task[bool]] = set()

    async def start(self) -> None:
        self.writer.start()
        self.sign_in.start()  # the issuer's keys are fetched while the rest starts
        self._restore()
        # One probe round before serving, so /ready and `auto` know what is up.
        await self.fleet.probe_all()
        self._known_models()
        self.fleet.on_models_changed = self._known_models
        self.fleet.start()
        self._tasks.append(asyncio.create_task(self._prune_loop()))
        if self.shared is not None:
            refresh = self.config.server.fleet_refresh
            self._tasks.append(
                asyncio.create_task(
                    self.shared.run(
                        refresh, lambda: self.fleet, self.usage, self.key_sync.apply_rows
                    )
                )
            )
        if self.config.server.redis_url:
            self._tasks.append(asyncio.create_task(self.key_sync.follow_redis()))
        self.install_reload()
        for name, why in self.fleet.unusable.items():
            log.warning("provider %s is not usable: %s", name, why, extra={"provider": name})
        log.info(
            "omen ready",
            extra={
                "providers": sorted(self.fleet.provider_configs),
                "endpoints": len(self.fleet.endpoints),
                "database": display_store(self.config.server.database),
                "instance": self.config.server.instance,
            },
        )

    def _restore(self) -> None:
        """Drains, budget overrides and (in-process) usage counters persist across restarts."""
        # A spill file a previous run left is replayed first, so that the usage counts it.
        if not self.writer.flush(timeout=_RESTORE_WAIT_S):
            log.warning("store: not everything queued is in the database yet; restoring anyway")
        reader = StoreReader(self.config.server.database)
        try:
            for (provider, endpoint), row in reader.drains().items():
                if row.drained:
                    self.fleet.set_drained(provider, endpoint, True, row.reason)
                if self.shared is not None:
                    self.shared.seen_drain(provider, endpoint, row.ts)
            if self.shared is not None:
                for name, override in reader.budget_overrides().items():
                    self.shared.seen_override(name, override.ts)
            self.usage.restore(reader)
            self.outcomes.load(reader.outcomes())
            self.key_sync.apply_rows(reader.api_keys())  # keys made through the admin API
        finally:
            reader.close()

    def _known_models(self) -> None:
        """Metric labels may name any model Omen serves, and nothing else."""
        models: set[str] = set()
        for table in (self.fleet.chat_models(), self.fleet.embedding_models()):
            for names in table.values():
                models.update(names)
        self.metrics.models = models

    def store_problem(self) -> str | None:
        """The store's trouble in one line for /ready; None while it writes."""
        writer = self.writer
        failure = writer.failure
        if failure is None:
            return None
        if writer.refusing:
            return f"cannot write: {failure}; new requests are refused"
        return f"cannot write: {failure}; requests are kept in {writer.spill.path}"

    def store_refusal(self) -> str | None:
        """Why new requests must be refused because the store cannot record them (None when
        they may be served: it writes, or spills). Read on every request: no I/O."""
        writer = self.writer
        return writer.failure if writer.refusing else None

    async def refresh_gauges(self) -> None:
        """Point-in-time gauges, set when scraped: endpoint health, limit usage, the store."""
        self.metrics.set_store(self.writer.stats())
        now = time.monotonic()
        for state in self.fleet.endpoints.values():
            self.metrics.set_health(state.provider, state.name, state.status(now) == "healthy")
        for name, spec in self.usage.specs.items():
            if not spec.limited:
                continue
            try:
                used = await self.usage.usage(name)
            except Exception:  # Redis down: the gauges keep their last values
                log.warning("limit usage unavailable for metrics", extra={"container": name})
                continue
            for limit_name, limit, value in (
                ("max_requests_per_hour", spec.max_requests_per_hour, used.requests_hour),
                ("max_requests_per_day", spec.max_requests_per_day, used.requests_day),
                ("max_tokens_per_day", spec.max_tokens_per_day, used.tokens_day),
                ("max_cost_per_day", spec.max_cost_per_day, used.cost_day),
                ("tokens_per_minute", spec.tokens_per_minute, used.tokens_minute),
                ("budget_daily", spec.budget_daily, used.cost_day),
                ("budget_weekly", spec.budget_weekly, used.cost_week),
                ("budget_monthly", spec.budget_monthly, used.cost_month),
            ):
                if limit is not None:
                    self.metrics.set_quota(name, limit_name, float(limit), float(value))

    async def _prune_loop(self) -> None:
        server = self.config.server
        while True:
            self.writer.prune(server.keep_request_bodies, server.keep_samples)
            await asyncio.sleep(_PRUNE_EVERY_S)

    # --- reload (SIGHUP) --------------------------------------------------------------------

    def install_reload(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, lambda: self._track(self.reload()))
        except (NotImplementedError, RuntimeError):  # not the main thread (tests, demo)
            log.info("SIGHUP reload unavailable in this thread")

    def _track(self, coroutine: Coroutine[object, object, bool]) -> None:
        task: asyncio.Task[bool] = asyncio.ensure_future(coroutine)
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> bool:
        """Swap in a new config without dropping in-flight requests or losing counters.

        Endpoints that are still configured keep their state (health, drains, latency,
        in-flight); counters live in the limits backend, which stays; budget overrides stay.
        An invalid config is refused and the running one keeps serving.
        """
        before = self._summary()
        try:
            loaded = await asyncio.to_thread(load_config, self.loaded.path)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems if p.severity == "error"]
            log.error(
                "config reload refused; still running the old config: %s", "; ".join(problems)
            )
            self._audit_reload(before, None, "refused: " + "; ".join(problems)[:2000])
            return False
        config = loaded.config
        for setting in (
            "bind",
            "database",
            "instance",
            "fleet_refresh",
            "redis_url",
            "writer_flush_interval",
            "on_store_failure",
            "spill_path",
            "spill_max_size",
        ):
            if getattr(config.server, setting) != getattr(self.config.server, setting):
                log.warning("server.%s changed: it takes effect on restart", setting)
        fleet = Fleet(config, self.writer)
        for key, state in fleet.endpoints.items():
            old = self.fleet.endpoints.get(key)
            if old is not None and old.url == state.url:
                fleet.endpoints[key] = old
        old_fleet, old_gateway = self.fleet, self.gateway
        self.usage.reconfigure(config)
        self.metrics.containers = set(config.containers) | {"default"}
        self.metrics.providers = set(fleet.provider_configs)
        self.loaded, self.config = loaded, config
        self.fleet = fleet
        self.gateway = Gateway(
            config, fleet, self.writer, self.usage, self.metrics, self.tracing, self.outcomes
        )
        self.keys.reconfigure(config)  # keys made through the admin API stay
        if (config.auth.oidc, config.auth.github) != (
            self.sign_in.auth.oidc,
            self.sign_in.auth.github,
        ):
            old_sign_in, self.sign_in = self.sign_in, SignIn(config.auth)
            self.sign_in.start()
            self._track(self._retire_sign_in(old_sign_in))
        self._known_models()
        fleet.on_models_changed = self._known_models
        fleet.start()
        self._track(self._retire(old_fleet, old_gateway))
        self._audit_reload(before, self._summary(), None)
        log.info("config reloaded", extra=self._summary())
        return True

    async def _retire(self, fleet: Fleet, gateway: Gateway) -> bool:
        """Let requests on the old parts finish, then close their connections."""
        await gateway.wait_idle(timeout=120)
        await fleet.aclose()
        return True

    async def _retire_sign_in(self, sign_in: SignIn) -> bool:
        """Let sign-in checks already asking the old issuer finish, then close its client."""
        await asyncio.sleep(_SIGN_IN_GRACE_S)
        await sign_in.aclose()
        return True

    def _summary(self) -> dict[str, object]:
        return {
            "path": str(self.loaded.path) if self.loaded.path else None,
            "providers": sorted(self.fleet.provider_configs),
            "endpoints": len(self.fleet.endpoints),
            "containers": sorted(self.config.containers),
        }

    def _audit_reload(
        self, before: dict[str, object], after: dict[str, object] | None, detail: str | None
    ) -> None:
        self.writer.record_audit(
            AuditRecord(
                ts=time.time(),
                actor="sighup",
                action="reload",
                target=str(self.loaded.path or "defaults"),
                before=before,
                after=after,
                detail=detail,
            )
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gateway.wait_idle(timeout=10)
        await self.fleet.aclose()
        await self.usage.aclose()
        await self.sign_in.aclose()
        await self.key_sync.aclose()
        # The writer thread commits what is queued; this is the flush on SIGTERM/SIGINT.
        await asyncio.to_thread(self.writer.close)
        if self.shared is not None:
            self.shared.close()
        log.info("omen stopped; store flushed")
