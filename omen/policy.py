"""From config and a request body to what routing needs: the container's policy and the ask.

A container's defaults (strategy, prefer_local, quality threshold, weights, intent rules over
the global ones) are resolved once per container; the request's `metadata` (priority,
prefer_local, intent) adjusts them per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from omen.config import OmenConfig, ProviderConfig
from omen.config.model import CACHE_SHARES
from omen.routing import ModelOverride, ProviderInfo, RouteRequest, Rule, Weights, classify
from omen.routing.custom import CustomIntents
from omen.routing.intent import IntentResult, has_images

PRIORITY_STRATEGY = {
    "low-latency": "latency-first",
    "low-cost": "cost-optimized",
    "quality": "quality-first",
}


@dataclass(frozen=True, slots=True)
class Policy:
    strategy: str
    prefer_local: bool
    quality_threshold: float
    weights: Weights
    rules: dict[str, Rule]
    allowed_providers: tuple[str, ...] | None
    custom: CustomIntents | None = None  # the operator's own intents (global)
    difficulty_weight: float = 0.0


def provider_info(pconf: ProviderConfig) -> ProviderInfo:
    read_share, write_share = CACHE_SHARES.get(pconf.type, (1.0, 1.0))

    def per_token(per_1k: float | None) -> float | None:
        return None if per_1k is None else per_1k / 1000

    def cache_price(
        per_1k: float | None, input_per_token: float | None, share: float
    ) -> float | None:
        # A model priced on its own caches at its own price's share, not the provider's.
        if per_1k is not None:
            return per_1k / 1000
        return None if input_per_token is None else input_per_token * share

    overrides = {}
    for model, info in pconf.model_info.items():
        input_cost = per_token(info.cost_per_1k_input_tokens)
        overrides[model] = ModelOverride(
            vision=info.vision,
            tools=info.tools,
            context_window=info.context_window,
            quality=info.quality,
            input_cost_per_token=input_cost,
            output_cost_per_token=per_token(info.cost_per_1k_output_tokens),
            cache_read_cost_per_token=cache_price(
                info.cost_per_1k_cache_read_tokens, input_cost, read_share
            ),
            cache_write_cost_per_token=cache_price(
                info.cost_per_1k_cache_write_tokens, input_cost, write_share
            ),
        )
    return ProviderInfo(
        name=pconf.name,
        type=pconf.type,
        local=pconf.is_local,
        models=tuple(pconf.models),
        load_balancing=pconf.load_balancing,
        quality=pconf.quality,
        input_cost_per_token=pconf.input_cost_per_token(),
        output_cost_per_token=pconf.output_cost_per_token(),
        latency_target_ms=pconf.latency_target_ms,
        overrides=overrides,
        cache_read_cost_per_token=pconf.cache_cost_per_token()[0],
        cache_write_cost_per_token=pconf.cache_cost_per_token()[1],
    )


class Policies:
    def __init__(self, config: OmenConfig) -> None:
        self.config = config
        self._cache: dict[str, Policy] = {}
        custom = CustomIntents(
            {
                name: (intent.examples, intent.keywords)
                for name, intent in config.routing.intents.items()
            }
        )
        self.custom = custom if custom else None

    def for_container(self, name: str) -> Policy:
        policy = self._cache.get(name)
        if policy is None:
            policy = self._cache[name] = self._build(name)
        return policy

    def _build(self, name: str) -> Policy:
        routing = self.config.routing
        container = self.config.containers.get(name)
        rules = {
            intent: Rule(rule.provider, rule.model, "global", rule.strict)
            for intent, rule in routing.intent_rules.items()
        }
        if container is None:
            return Policy(
                routing.default_strategy,
                routing.prefer_local,
                routing.quality_threshold,
                Weights(routing.cost_weight, routing.latency_weight, routing.quality_weight),
                rules,
                None,
                self.custom,
                routing.difficulty_weight,
            )
        for intent, rule in container.routing.intents.items():
            rules[intent] = Rule(rule.provider, rule.model, "container", rule.strict)

        def pick(own: Any, default: Any) -> Any:
            return default if own is None else own

        return Policy(
            pick(container.router_strategy, routing.default_strategy),
            pick(container.prefer_local, routing.prefer_local),
            pick(container.quality_threshold, routing.quality_threshold),
            Weights(
                pick(container.cost_weight, routing.cost_weight),
                pick(container.latency_weight, routing.latency_weight),
                pick(container.quality_weight, routing.quality_weight),
            ),
            rules,
            tuple(container.allowed_providers) if container.allowed_providers is not None else None,
            self.custom,
            routing.difficulty_weight,
        )


def estimate_prompt_tokens(messages: list[Any]) -> int:
    """About four characters a token, plus a little per message; images count as ~800."""
    chars = 0
    images = 0
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict):
                    if part.get("type") == "text":
                        chars += len(part.get("text") or "")
                    elif part.get("type") in ("image_url", "image", "input_image"):
                        images += 1
    return chars // 4 + 4 * len(messages) + 800 * images


def estimate_tool_tokens(tools: Any) -> int:
    """Tool definitions count against the context too (a coding agent sends ~24 of them)."""
    if not isinstance(tools, list) or not tools:
        return 0
    return len(orjson.dumps(tools)) // 4


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
            return ""
    return ""


def intent_of(policy: Policy, body: dict[str, Any]) -> IntentResult:
    """The classifier's intent, unless the operator's own intents claim the prompt (the
    client's `metadata.intent` and the request's structure still come first)."""
    intent = classify(body)
    if policy.custom is not None and intent.source not in ("metadata", "structure"):
        custom = policy.custom.match(last_user_text(body.get("messages") or []))
        if custom is not None:
            return custom
    return intent


def route_request(
    policy: Policy, body: dict[str, Any], container: str, default_max_tokens: int
) -> RouteRequest:
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    strategy = PRIORITY_STRATEGY.get(str(metadata.get("priority")), policy.strategy)
    prefer_local = metadata.get("prefer_local")
    messages = body.get("messages") or []
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or default_max_tokens
    intent = intent_of(policy, body)
    return RouteRequest(
        model=body["model"],
        container=container,
        intent=intent,
        allowed_providers=policy.allowed_providers,
        prefer_local=prefer_local if isinstance(prefer_local, bool) else policy.prefer_local,
        strategy=strategy,
        quality_threshold=policy.quality_threshold,
        weights=policy.weights,
        rules=policy.rules,
        needs_vision=has_images(messages),
        needs_tools=bool(body.get("tools") or body.get("functions")),
        est_prompt_tokens=estimate_prompt_tokens(messages)
        + estimate_tool_tokens(body.get("tools")),
        max_output_tokens=int(max_tokens),
        stream=bool(body.get("stream")),
        difficulty=None if intent.difficulty_label == "unknown" else intent.difficulty,
        difficulty_weight=policy.difficulty_weight,
    )
