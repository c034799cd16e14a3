"""What routing sees: an immutable picture of endpoints and prices, built per request."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EndpointView:
    provider: str
    endpoint: str
    url: str
    local: bool
    healthy: bool
    drained: bool
    cooling: bool
    in_flight: int
    latency_ms: float | None
    models: frozenset[str] | None  # None: not discovered, trust the provider's model list
    loaded: frozenset[str] = frozenset()

    @property
    def available(self) -> bool:
        return self.healthy and not self.drained and not self.cooling

    def serves(self, model: str) -> bool:
        return self.models is None or any(name in self.models for name in model_names(model))

    def has_loaded(self, model: str) -> bool:
        return any(name in self.loaded for name in model_names(model))


def model_names(model: str) -> tuple[str, ...]:
    """Ollama lists `llama3.2` as `llama3.2:latest`; a bare name means that tag."""
    return (model,) if ":" in model else (model, f"{model}:latest")


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    type: str
    local: bool
    models: tuple[str, ...]
    load_balancing: str = "least-loaded"
    quality: float = 0.9
    input_cost_per_token: float = 0.0
    output_cost_per_token: float = 0.0


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model: str
    container: str
    intent: str
    allowed_providers: tuple[str, ...] | None = None
    prefer_local: bool = True


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: str
    endpoint: str
    url: str
    model: str
    note: str = ""


@dataclass(slots=True)
class RouteDecision:
    intent: str
    strategy: str
    candidates: list[Candidate]
    reason: str
    details: dict[str, object] = field(default_factory=dict)


class NoRoute(Exception):
    """No candidate can serve the request; `status` is what the client gets."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
