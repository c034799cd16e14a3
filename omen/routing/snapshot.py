"""What routing sees: an immutable picture of endpoints, models and prices, built per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from omen.routing.adaptive import Outcome
from omen.routing.capabilities import Capabilities, infer_capabilities
from omen.routing.intent import IntentResult
from omen.routing.strategies import Weights


def model_names(model: str) -> tuple[str, ...]:
    """Ollama lists `llama3.2` as `llama3.2:latest`: the two names are one model."""
    if model.endswith(":latest"):
        return (model, model[: -len(":latest")])
    return (model,) if ":" in model else (model, f"{model}:latest")


def same_model(a: str, b: str) -> bool:
    return b in model_names(a)


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
    ttft_ms: float | None = None
    container: str | None = None  # hybrid mode: the only container routed here; None: all

    @property
    def available(self) -> bool:
        return self.healthy and not self.drained and not self.cooling

    def reachable_by(self, container: str) -> bool:
        return self.container is None or self.container == container

    def serves(self, model: str) -> bool:
        return self.models is None or any(name in self.models for name in model_names(model))

    def has_loaded(self, model: str) -> bool:
        return any(name in self.loaded for name in model_names(model))


@dataclass(frozen=True, slots=True)
class ModelOverride:
    vision: bool | None = None
    tools: bool | None = None
    context_window: int | None = None
    quality: float | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_cost_per_token: float | None = None
    cache_write_cost_per_token: float | None = None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model as routing sees it: price, quality, capabilities."""

    quality: float
    input_cost_per_token: float
    output_cost_per_token: float
    capabilities: Capabilities
    cache_read_cost_per_token: float = 0.0
    cache_write_cost_per_token: float = 0.0


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
    latency_target_ms: float | None = None
    overrides: dict[str, ModelOverride] = field(default_factory=dict)
    cache_read_cost_per_token: float = 0.0
    cache_write_cost_per_token: float = 0.0

    def spec(self, model: str) -> ModelSpec:
        inferred = infer_capabilities(model)
        o = next(
            (self.overrides[n] for n in model_names(model) if n in self.overrides), ModelOverride()
        )
        caps = Capabilities(
            vision=inferred.vision if o.vision is None else o.vision,
            tools=inferred.tools if o.tools is None else o.tools,
            context_window=inferred.context_window
            if o.context_window is None
            else o.context_window,
        )
        return ModelSpec(
            quality=self.quality if o.quality is None else o.quality,
            input_cost_per_token=self.input_cost_per_token
            if o.input_cost_per_token is None
            else o.input_cost_per_token,
            output_cost_per_token=self.output_cost_per_token
            if o.output_cost_per_token is None
            else o.output_cost_per_token,
            capabilities=caps,
            cache_read_cost_per_token=self.cache_read_cost_per_token
            if o.cache_read_cost_per_token is None
            else o.cache_read_cost_per_token,
            cache_write_cost_per_token=self.cache_write_cost_per_token
            if o.cache_write_cost_per_token is None
            else o.cache_write_cost_per_token,
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """An intent rule: send this intent to `provider` (and `model`, when given)."""

    provider: str
    model: str | None = None
    origin: str = "global"  # "container" | "global"
    strict: bool = False  # exclusive: no other provider is a fallback


@dataclass(frozen=True, slots=True)
class RouteRequest:
    model: str
    container: str
    intent: IntentResult
    allowed_providers: tuple[str, ...] | None = None
    prefer_local: bool = True
    strategy: str = "balanced"
    quality_threshold: float = 0.8
    weights: Weights = field(default_factory=Weights)
    rules: dict[str, Rule] = field(default_factory=dict)
    needs_vision: bool = False
    needs_tools: bool = False
    est_prompt_tokens: int = 0
    max_output_tokens: int = 256
    stream: bool = False
    # 0 easy .. 1 hard (the intent model's estimate; None: not known) and how far it moves
    # the quality an option must reach (routing.difficulty_weight).
    difficulty: float | None = None
    difficulty_weight: float = 0.0
    # routing.adaptive: what happened after earlier decisions of this container and intent,
    # by (provider, model); the exploring share; two uniform draws in [0, 1) for it.
    outcomes: Mapping[tuple[str, str], Outcome] | None = None
    explore: float = 0.0
    draws: tuple[float, float] = (1.0, 0.0)


@dataclass(frozen=True, slots=True)
class Candidate:
    provider: str
    endpoint: str
    url: str
    model: str
    note: str = ""


@dataclass(slots=True)
class RouteDecision:
    intent: IntentResult
    strategy: str
    candidates: list[Candidate]
    reason: str
    details: dict[str, object] = field(default_factory=dict)


class NoRoute(Exception):
    """No candidate can serve the request; `status` is what the client gets."""

    def __init__(self, status: int, message: str, code: str, limit: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.limit = limit  # the largest context window, when the prompt fits none
