"""The daemon's live view of every upstream endpoint: health, load, drain state, models.

`Fleet` is the one owner of this state. The gateway reports each call's outcome here, the
prober refreshes it on each provider's `health_check_interval`, the admin API drains and
undrains, and routing reads an immutable snapshot of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from omen.config import OmenConfig, ProviderConfig
from omen.gpu import GpuReading, parse_gpu_metrics
from omen.providers import Probe, Provider, UnsupportedProvider, build_provider
from omen.routing import EndpointView
from omen.secrets import Redactor
from omen_store import GpuSample, HealthSample, StoreWriter

log = logging.getLogger("omen.fleet")

_EWMA = 0.2  # weight of the newest latency observation
_FAILURES_TO_COOL = 3  # consecutive failures before an endpoint cools down
# The circuit breaker: over the last _WINDOW calls, at least _MIN_CALLS of them and an error
# rate of _TRIP_RATE or more opens the circuit (a cooldown). Once it closes again the window
# still remembers, so one more failure re-opens it at once (half-open).
_WINDOW = 20
_MIN_CALLS = 5
_TRIP_RATE = 0.5


@dataclass(slots=True)
class EndpointState:
    provider: str
    name: str
    url: str
    local: bool
    healthy: bool = True
    checked: bool = False
    last_error: str | None = None
    last_probe_ts: float = 0.0
    in_flight: int = 0
    drained: bool = False
    drain_reason: str | None = None
    cooldown_until: float = 0.0
    consecutive_failures: int = 0
    latency_ms: float | None = None  # moving average of real requests, not probes
    ttft_ms: float | None = None
    probe_ms: float | None = None
    requests: int = 0
    errors: int = 0
    models: frozenset[str] | None = None  # discovered (Ollama /api/tags); None = not known yet
    loaded: list[dict[str, object]] = field(default_factory=list)  # Ollama /api/ps
    loaded_names: frozenset[str] = frozenset()
    gpu_metrics_url: str | None = None
    gpu: GpuReading | None = None
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    @property
    def error_rate(self) -> float:
        return self.outcomes.count(False) / len(self.outcomes) if self.outcomes else 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.provider, self.name)

    def cooling(self, now: float) -> bool:
        return self.cooldown_until > now

    def status(self, now: float) -> str:
        if self.drained:
            return "drained"
        if not self.healthy:
            return "unhealthy"
        if self.cooling(now):
            return "cooling"
        return "healthy"

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "provider": self.provider,
            "endpoint": self.name,
            "url": self.url,
            "status": self.status(now),
            "healthy": self.healthy,
            "drained": self.drained,
            "drain_reason": self.drain_reason,
            "cooldown_s": round(max(0.0, self.cooldown_until - now), 1),
            "in_flight": self.in_flight,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 2),
            "probe_ms": None if self.probe_ms is None else round(self.probe_ms, 2),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 3),
            "last_error": self.last_error,
            "loaded_models": [m.get("name") for m in self.loaded],
            "gpu_util_percent": self.gpu.util_percent if self.gpu else None,
            "vram_used_bytes": self.gpu.used_bytes if self.gpu else None,
            "vram_total_bytes": self.gpu.total_bytes if self.gpu else None,
        }


class Fleet:
    """Adapters and endpoint state for every enabled provider."""

    def __init__(self, config: OmenConfig, writer: StoreWriter | None = None) -> None:
        self.config = config
        self.providers: dict[str, Provider] = {}
        self.provider_configs: dict[str, ProviderConfig] = {}
        self.endpoints: dict[tuple[str, str], EndpointState] = {}
        # Hybrid mode: endpoint -> the one container routed there. Kept beside the states, not
        # in them, because a config reload carries the states over while ownership may change.
        self.reserved: dict[tuple[str, str], str] = {}
        self.unusable: dict[str, str] = {}  # provider -> why it cannot be used
        self._writer = writer
        self._tasks: list[asyncio.Task[None]] = []
        # (chat | embeddings, owners of the reserved boxes included) -> provider -> models
        self._model_tables: dict[tuple[str, frozenset[str]], dict[str, tuple[str, ...]]] = {}
        self._http = httpx.AsyncClient(timeout=5.0)
        self.on_models_changed: Callable[[], None] | None = None
        self.cooldown_s = config.routing.cooldown
        self.redact = Redactor.from_config(config)
        for name, pconf in config.providers.items():
            if not pconf.enabled:
                continue
            if pconf.type != "ollama" and pconf.api_key is None and pconf.type != "bedrock":
                self.unusable[name] = "no API key (its env variable is not set)"
                continue
            try:
                self.providers[name] = build_provider(pconf)
            except UnsupportedProvider as exc:
                self.unusable[name] = str(exc)
                continue
            self.provider_configs[name] = pconf
            for endpoint in pconf.endpoints:
                state = EndpointState(
                    name,
                    endpoint.name,
                    endpoint.url,
                    local=pconf.is_local,
                    gpu_metrics_url=endpoint.gpu_metrics_url,
                )
                self.endpoints[state.key] = state
                if endpoint.container is not None:
                    self.reserved[state.key] = endpoint.container

    # --- outcomes reported by the gateway --------------------------------------------

    def begin(self, state: EndpointState) -> None:
        """A request to this endpoint started (least-loaded balancing counts these)."""
        state.in_flight += 1

    def end(self, state: EndpointState) -> None:
        state.in_flight -= 1

    def record_success(
        self, state: EndpointState, latency_ms: float, ttft_ms: float | None
    ) -> None:
        state.requests += 1
        state.consecutive_failures = 0
        state.outcomes.append(True)
        state.healthy = True
        state.latency_ms = (
            latency_ms
            if state.latency_ms is None
            else state.latency_ms + _EWMA * (latency_ms - state.latency_ms)
        )
        if ttft_ms is not None:
            state.ttft_ms = (
                ttft_ms
                if state.ttft_ms is None
                else state.ttft_ms + _EWMA * (ttft_ms - state.ttft_ms)
            )

    def record_failure(self, state: EndpointState, error: str, *, connection: bool) -> None:
        """Passive health: a refused connection cools the endpoint at once, errors after a few."""
        state.requests += 1
        state.errors += 1
        state.consecutive_failures += 1
        state.outcomes.append(False)
        state.last_error = self.redact(error)
        tripped = len(state.outcomes) >= _MIN_CALLS and state.error_rate >= _TRIP_RATE
        if connection or tripped or state.consecutive_failures >= _FAILURES_TO_COOL:
            state.cooldown_until = time.monotonic() + self.cooldown_s
            log.warning(
                "endpoint cooling down",
                extra={"provider": state.provider, "endpoint": state.name, "error": error},
            )

    # --- drains ------------------------------------------------------------------------

    def set_drained(self, provider: str, endpoint: str, drained: bool, reason: str | None) -> bool:
        state = self.endpoints.get((provider, endpoint))
        if state is None:
            return False
        state.drained = drained
        state.drain_reason = reason if drained else None
        return True

    def find(self, provider: str, endpoint: str) -> EndpointState | None:
        state = self.endpoints.get((provider, endpoint))
        if state is None:  # accept the URL as well as the short name
            for candidate in self.endpoints.values():
                if candidate.provider == provider and candidate.url == endpoint.rstrip("/"):
                    return candidate
        return state

    # --- active probes -------------------------------------------------------------------

    async def probe_all(self) -> None:
        await asyncio.gather(*(self._probe(state) for state in self.endpoints.values()))

    async def _probe(self, state: EndpointState) -> None:
        provider = self.providers[state.provider]
        result: Probe = await provider.probe(state.url)
        now = time.time()
        was = state.healthy
        state.checked = True
        state.last_probe_ts = now
        state.healthy = result.healthy
        if result.healthy:
            state.loaded = result.loaded_models
            state.loaded_names = frozenset(str(m.get("name")) for m in result.loaded_models)
            state.probe_ms = result.latency_ms
            if state.local and state.models is None:
                await self._discover_models(provider, state)
        else:
            state.last_error = self.redact(result.error) if result.error else None
        if was != state.healthy:
            log.warning(
                "endpoint %s",
                "recovered" if state.healthy else "unhealthy",
                extra={
                    "provider": state.provider,
                    "endpoint": state.name,
                    "error": state.last_error,
                },
            )
        if state.local and result.healthy:
            await self._sample_gpu(state, now)
        if self._writer is not None:
            self._writer.record_health(
                HealthSample(
                    ts=now,
                    provider=state.provider,
                    endpoint=state.name,
                    healthy=result.healthy,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    in_flight=state.in_flight,
                )
            )

    async def _sample_gpu(self, state: EndpointState, now: float) -> None:
        """Loaded models and VRAM from /api/ps, utilisation from the box's exporter if any."""
        reading = GpuReading(None, None, None)
        if state.gpu_metrics_url:
            try:
                response = await self._http.get(state.gpu_metrics_url)
                response.raise_for_status()
                reading = parse_gpu_metrics(response.text)
            except httpx.HTTPError as exc:
                log.info(
                    "gpu metrics unavailable", extra={"endpoint": state.name, "error": str(exc)}
                )
        state.gpu = reading
        used = reading.used_bytes
        if used is None and state.loaded:
            used = sum(int(m.get("size_vram") or 0) for m in state.loaded)  # type: ignore[call-overload]
        if self._writer is not None:
            self._writer.record_gpu(
                GpuSample(
                    ts=now,
                    provider=state.provider,
                    endpoint=state.name,
                    loaded_models=[
                        {
                            k: m.get(k)
                            for k in ("name", "size", "size_vram", "expires_at", "context_length")
                        }
                        for m in state.loaded
                    ],
                    vram_used_bytes=used,
                    vram_total_bytes=reading.total_bytes,
                    gpu_util_percent=reading.util_percent,
                    in_flight=state.in_flight,
                )
            )

    async def _discover_models(self, provider: Provider, state: EndpointState) -> None:
        try:
            state.models = frozenset(await provider.list_models(state.url))
            self._model_tables.clear()
            if self.on_models_changed is not None:
                self.on_models_changed()
        except Exception as exc:  # discovery is best effort; routing falls back to config
            log.info("model discovery failed", extra={"endpoint": state.url, "error": str(exc)})

    async def _probe_loop(self, provider: str, interval: float) -> None:
        states = [s for s in self.endpoints.values() if s.provider == provider]
        while True:
            await asyncio.sleep(interval)
            await asyncio.gather(*(self._probe(state) for state in states), return_exceptions=True)

    def start(self) -> None:
        for name, pconf in self.provider_configs.items():
            self._tasks.append(
                asyncio.create_task(self._probe_loop(name, pconf.health_check_interval))
            )

    async def aclose(self) -> None:
        """Stop probing and close the adapters' connections (endpoint states are plain data
        and may live on in a reloaded fleet)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(p.aclose() for p in self.providers.values()), return_exceptions=True)
        await self._http.aclose()

    # --- read side ---------------------------------------------------------------------

    def snapshot(self) -> list[EndpointView]:
        now = time.monotonic()
        return [
            EndpointView(
                s.provider,
                s.name,
                s.url,
                s.local,
                s.healthy,
                s.drained,
                s.cooling(now),
                s.in_flight,
                s.latency_ms,
                s.models,
                s.loaded_names,
                container=self.reserved.get(s.key),
            )
            for s in self.endpoints.values()
        ]

    def _models(self, embeddings: bool, boxes: frozenset[str]) -> dict[str, tuple[str, ...]]:
        """The model table over shared endpoints and those reserved for the containers in
        `boxes`."""
        out: dict[str, tuple[str, ...]] = {}
        for name, pconf in self.provider_configs.items():
            seen = list(dict.fromkeys(pconf.embedding_models if embeddings else pconf.models))
            if pconf.is_local:  # an Ollama box serves (and embeds with) what it has pulled
                for state in self.endpoints.values():
                    owner = self.reserved.get(state.key)
                    if (
                        state.provider == name
                        and state.models
                        and (owner is None or owner in boxes)
                    ):
                        seen.extend(m for m in sorted(state.models) if m not in seen)
            if not embeddings:  # an embedding model cannot chat, even when Ollama lists it
                embedders = set(pconf.embedding_models)
                seen = [m for m in seen if m not in embedders and "embed" not in m.lower()]
            out[name] = tuple(seen)
        return out

    def chat_models(self, container: str | None = None) -> dict[str, tuple[str, ...]]:
        """Every model each usable provider serves: configured, plus discovered on Ollama.

        With a container, only what its endpoints have: a model pulled on another
        container's own box is not offered (nor listed) to it. None: the whole fleet's."""
        return self._table("chat", container)

    def embedding_models(self, container: str | None = None) -> dict[str, tuple[str, ...]]:
        return self._table("embeddings", container)

    def _table(self, kind: str, container: str | None) -> dict[str, tuple[str, ...]]:
        # Keyed by the boxes it includes, not by container: every container without a box of
        # its own shares one table, however many names clients send.
        owners = set(self.reserved.values())
        boxes = frozenset(owners if container is None else owners & {container})
        table = self._model_tables.get((kind, boxes))
        if table is None:
            table = self._model_tables[(kind, boxes)] = self._models(kind == "embeddings", boxes)
        return table

    def provider_status(self) -> dict[str, str]:
        now = time.monotonic()
        out: dict[str, str] = {}
        for name in self.provider_configs:
            states = [s.status(now) for s in self.endpoints.values() if s.provider == name]
            usable = sum(1 for s in states if s == "healthy")
            out[name] = "healthy" if usable == len(states) else "degraded" if usable else "down"
        for name in self.unusable:
            out[name] = "unconfigured"
        return out
