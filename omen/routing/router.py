"""Model resolution and endpoint ordering.

An explicit model goes to the providers that serve it (local first when preferred); `auto`
goes to the first local model. Within a provider, endpoints are ordered by its
`load_balancing`, an endpoint that already has the model loaded first, and unavailable
ones last (tried only when nothing else is left). Drained endpoints never appear.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from omen.routing.snapshot import (
    Candidate,
    EndpointView,
    NoRoute,
    ProviderInfo,
    RouteDecision,
    RouteRequest,
    model_names,
)


class Router:
    def __init__(self, providers: Sequence[ProviderInfo], *, strategy: str = "balanced") -> None:
        self.providers = {p.name: p for p in providers}
        self.strategy = strategy
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._random = random.Random()

    def _resolve(
        self, request: RouteRequest, models: dict[str, tuple[str, ...]]
    ) -> tuple[str, list[ProviderInfo], str]:
        """(model, providers that may serve it in preference order, how it was chosen)."""
        allowed = [
            p
            for p in self.providers.values()
            if request.allowed_providers is None or p.name in request.allowed_providers
        ]
        if request.prefer_local:
            allowed.sort(key=lambda p: not p.local)  # stable: config order within each group
        if request.model == "auto":
            for provider in allowed:
                if models.get(provider.name):
                    model = models[provider.name][0]
                    where = "first local model" if provider.local else "first available model"
                    return model, [provider], f"auto → {where}"
            raise NoRoute(503, "no provider has a model to serve `auto`", "no_model_available")
        prefix, _, rest = request.model.partition("/")
        if rest and prefix in self.providers:
            if request.allowed_providers is not None and prefix not in request.allowed_providers:
                raise NoRoute(
                    403,
                    f"container {request.container!r} may not use provider {prefix!r}",
                    "provider_not_allowed",
                )
            return rest, [self.providers[prefix]], f"model {request.model}"
        names = model_names(request.model)
        serving = [p for p in allowed if any(n in models.get(p.name, ()) for n in names)]
        if not serving:
            if any(n in models.get(p, ()) for p in self.providers for n in names):
                raise NoRoute(
                    403,
                    f"model {request.model!r} is only served by providers container "
                    f"{request.container!r} may not use",
                    "provider_not_allowed",
                )
            raise NoRoute(
                404,
                f"The model `{request.model}` does not exist or is not served by any "
                "configured provider (see GET /v1/models)",
                "model_not_found",
            )
        return request.model, serving, f"model {request.model}"

    def _order_endpoints(
        self, provider: ProviderInfo, model: str, endpoints: list[EndpointView]
    ) -> list[EndpointView]:
        if provider.load_balancing == "round-robin" and endpoints:
            counter = self._round_robin.setdefault(provider.name, itertools.count())
            start = next(counter) % len(endpoints)
            endpoints = endpoints[start:] + endpoints[:start]
        elif provider.load_balancing == "random":
            endpoints = list(endpoints)
            self._random.shuffle(endpoints)
        else:  # least-loaded
            endpoints = sorted(endpoints, key=lambda e: e.in_flight)
        # Stable sorts: the balancing order survives within each group.
        endpoints.sort(key=lambda e: not e.has_loaded(model))
        endpoints.sort(key=lambda e: not e.available)
        return endpoints

    def route(
        self,
        request: RouteRequest,
        endpoints: Sequence[EndpointView],
        models: dict[str, tuple[str, ...]],
    ) -> RouteDecision:
        model, providers, how = self._resolve(request, models)
        candidates: list[Candidate] = []
        for provider in providers:
            usable = [
                e
                for e in endpoints
                if e.provider == provider.name and not e.drained and e.serves(model)
            ]
            for view in self._order_endpoints(provider, model, usable):
                note = "model loaded" if view.has_loaded(model) else ""
                if not view.available:
                    note = "unhealthy" if not view.healthy else "cooling down"
                candidates.append(Candidate(provider.name, view.endpoint, view.url, model, note))
        if not candidates:
            raise NoRoute(
                503,
                f"every endpoint that serves {model!r} is drained or unknown",
                "no_endpoint_available",
            )
        first = candidates[0]
        view = next(
            e for e in endpoints if (e.provider, e.endpoint) == (first.provider, first.endpoint)
        )
        facts = [first.note] if first.note else []
        facts.append(f"{view.in_flight} in flight")
        price = self.providers[first.provider]
        cost = (
            "$0"
            if price.input_cost_per_token == price.output_cost_per_token == 0
            else (
                f"${price.input_cost_per_token * 1000:g}"
                f"/${price.output_cost_per_token * 1000:g} per 1k"
            )
        )
        reason = f"{how} → {first.provider}/{first.endpoint}: {', '.join(facts)}; {cost}"
        if len(candidates) > 1:
            reason += f" ({len(candidates) - 1} fallback{'s' if len(candidates) > 2 else ''})"
        return RouteDecision(
            intent=request.intent,
            strategy="explicit" if request.model != "auto" else self.strategy,
            candidates=candidates,
            reason=reason,
            details={
                "candidates": [
                    {
                        "provider": c.provider,
                        "endpoint": c.endpoint,
                        "model": c.model,
                        "note": c.note,
                    }
                    for c in candidates
                ]
            },
        )
