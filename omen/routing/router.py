"""Where a request goes: the options it may use, the rule or strategy ordering them, the endpoint.

1. Options: for `auto`, every chat model of every provider the container may use; for an
   explicit model, the providers that serve it (`provider/model` pins one). `auto` options
   that cannot serve the request (images without vision, tools without tool calling, a
   prompt longer than the context) or that have no healthy endpoint are excluded, each with
   its reason.
2. Order: the container's intent rule, else the global one, puts its provider first; the
   strategy orders the rest (and the rule's own models).
3. Endpoints: within a provider, by its `load_balancing`, an endpoint that already has the
   model loaded first, unavailable ones last; drained endpoints never appear. With
   prefer_local the container's own box (hybrid mode) comes before the shared ones; a box
   reserved for another container never appears at all, not even for failover.
The decision keeps all of it, and `reason` says it in one line.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from omen.routing.adaptive import adapt
from omen.routing.snapshot import (
    Candidate,
    EndpointView,
    ModelSpec,
    NoRoute,
    ProviderInfo,
    RouteDecision,
    RouteRequest,
    Rule,
    model_names,
    same_model,
)
from omen.routing.strategies import Option, rank

_ASSUMED_LATENCY_MS = {True: 500.0, False: 1500.0}  # local, cloud: before anything is observed
_MAX_CANDIDATES = 8

_ANSWER_ROOM = 4096


class Router:
    def __init__(self, providers: Sequence[ProviderInfo]) -> None:
        self.providers = {p.name: p for p in providers}
        self._round_robin: dict[str, itertools.count[int]] = {}
        self._random = random.Random()
        self._specs: dict[tuple[str, str], ModelSpec] = {}

    def _spec(self, provider: ProviderInfo, model: str) -> ModelSpec:
        spec = self._specs.get((provider.name, model))
        if spec is None:
            spec = self._specs[(provider.name, model)] = provider.spec(model)
        return spec

    def spec(self, provider: str, model: str) -> ModelSpec:
        """Price, quality and capabilities of one model (cached)."""
        return self._spec(self.providers[provider], model)

    # --- 1. options ----------------------------------------------------------------------

    def _allowed(self, request: RouteRequest) -> list[ProviderInfo]:
        allowed = [
            p
            for p in self.providers.values()
            if request.allowed_providers is None or p.name in request.allowed_providers
        ]
        if request.prefer_local:
            allowed.sort(key=lambda p: not p.local)  # stable: config order within each group
        return allowed

    def _pool(
        self, request: RouteRequest, models: dict[str, tuple[str, ...]]
    ) -> list[tuple[ProviderInfo, str]]:
        allowed = self._allowed(request)
        if request.model == "auto":
            return [(p, m) for p in allowed for m in models.get(p.name, ())]
        prefix, _, rest = request.model.partition("/")
        if rest and prefix in self.providers:
            if request.allowed_providers is not None and prefix not in request.allowed_providers:
                raise NoRoute(
                    403,
                    f"container {request.container!r} may not use provider {prefix!r}",
                    "provider_not_allowed",
                )
            return [(self.providers[prefix], rest)]
        names = model_names(request.model)
        pool = [
            (p, next(n for n in names if n in models.get(p.name, ())))
            for p in allowed
            if any(n in models.get(p.name, ()) for n in names)
        ]
        if not pool:
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
        return [(p, request.model) for p, _ in pool]

    def _options(
        self,
        request: RouteRequest,
        pool: list[tuple[ProviderInfo, str]],
        by_provider: dict[str, list[EndpointView]],
        excluded: list[dict[str, str]],
    ) -> tuple[list[Option], list[Option]]:
        """(viable options, last-resort options whose endpoints are all unavailable)."""
        viable: list[Option] = []
        last_resort: list[Option] = []
        explicit = request.model != "auto"
        # Agents ask for large max_tokens (Claude Code: 32,000) that answers rarely use: a
        # model is too small when the prompt plus a modest answer does not fit.
        need = request.est_prompt_tokens + min(request.max_output_tokens, _ANSWER_ROOM)
        for provider, model in pool:
            spec = self._spec(provider, model)
            caps = spec.capabilities
            why = ""
            if not explicit:  # an explicit model is the client's call, not ours
                if request.needs_vision and not caps.vision:
                    why = "cannot see images"
                elif request.needs_tools and not caps.tools:
                    why = "cannot call tools"
                elif need > caps.context_window:
                    why = f"context {caps.context_window} < {need} tokens"
            endpoints = [e for e in by_provider.get(provider.name, ()) if e.serves(model)]
            if not why and not endpoints:
                why = "no endpoint has it (drained or not pulled)"
            if why:
                excluded.append({"provider": provider.name, "model": model, "why": why})
                continue
            available = [e for e in endpoints if e.available]
            observed = [
                (e.ttft_ms if request.stream and e.ttft_ms is not None else e.latency_ms)
                for e in available
            ]
            known = [ms for ms in observed if ms is not None]
            latency = (
                min(known)
                if known
                else (provider.latency_target_ms or _ASSUMED_LATENCY_MS[provider.local])
            )
            option = Option(
                provider=provider.name,
                model=model,
                local=provider.local,
                quality=spec.quality,
                est_cost=request.est_prompt_tokens * spec.input_cost_per_token
                + request.max_output_tokens * spec.output_cost_per_token,
                latency_ms=latency,
                latency_known=bool(known),
                own=provider.local and any(e.container is not None for e in available),
            )
            if available:
                viable.append(option)
            else:
                excluded.append(
                    {"provider": provider.name, "model": model, "why": "no healthy endpoint"}
                )
                last_resort.append(option)
        return viable, last_resort

    # --- 3. endpoints --------------------------------------------------------------------

    def _order_endpoints(
        self,
        provider: ProviderInfo,
        model: str,
        endpoints: list[EndpointView],
        turns: dict[str, int],
        prefer_own: bool,
    ) -> list[EndpointView]:
        if provider.load_balancing == "round-robin" and endpoints:
            # One turn of the wheel per request, however many of its models are candidates.
            turn = turns.get(provider.name)
            if turn is None:
                counter = self._round_robin.setdefault(provider.name, itertools.count())
                turn = turns[provider.name] = next(counter)
            start = turn % len(endpoints)
            endpoints = endpoints[start:] + endpoints[:start]
        elif provider.load_balancing == "random":
            endpoints = list(endpoints)
            self._random.shuffle(endpoints)
        else:  # least-loaded: Omen's own in-flight requests per endpoint
            endpoints = sorted(endpoints, key=lambda e: e.in_flight)
        # Stable sorts: the balancing order survives within each group.
        endpoints.sort(key=lambda e: not e.has_loaded(model))
        if prefer_own:  # only the asking container's reserved boxes are left in the list
            endpoints.sort(key=lambda e: e.container is None)
        endpoints.sort(key=lambda e: not e.available)
        return endpoints

    # --- the decision --------------------------------------------------------------------

    def route(
        self,
        request: RouteRequest,
        endpoints: Sequence[EndpointView],
        models: dict[str, tuple[str, ...]],
    ) -> RouteDecision:
        by_provider: dict[str, list[EndpointView]] = {}
        for view in endpoints:
            if not view.drained and view.reachable_by(request.container):
                by_provider.setdefault(view.provider, []).append(view)
        excluded: list[dict[str, str]] = []
        pool = self._pool(request, models)
        viable, last_resort = self._options(request, pool, by_provider, excluded)
        if not viable and not last_resort:
            windows = [
                self._spec(self.providers[e["provider"]], e["model"]).capabilities.context_window
                for e in excluded
                if e["why"].startswith("context ")
            ]
            biggest = max(windows, default=0)
            if windows and len(windows) == len(excluded) and request.est_prompt_tokens > biggest:
                raise NoRoute(
                    400,
                    f"prompt is too long: {request.est_prompt_tokens} tokens > {biggest} maximum",
                    "context_length_exceeded",
                    limit=biggest,
                )
            what = request.model if request.model != "auto" else "this request"
            detail = "; ".join(f"{e['provider']}/{e['model']}: {e['why']}" for e in excluded[:4])
            raise NoRoute(503, f"no provider can serve {what} ({detail})", "no_endpoint_available")

        strategy = request.strategy
        ranked, why = rank(
            viable,
            strategy,
            prefer_local=request.prefer_local,
            quality_threshold=request.quality_threshold,
            weights=request.weights,
            difficulty=request.difficulty if request.model == "auto" else None,
            difficulty_weight=request.difficulty_weight,
        )
        learnt = ""
        if request.outcomes is not None and request.model == "auto":
            ranked, learnt = adapt(
                ranked,
                request.outcomes,
                quality_threshold=request.quality_threshold,
                explore=request.explore,
                draw=request.draws[0],
                pick=request.draws[1],
            )
        if learnt:
            why = f"{why}; {learnt}"
        rule = request.rules.get(request.intent.intent) if request.model == "auto" else None
        rule_note = ""
        if rule is not None:
            matching = rule_matches(ranked, rule)
            label = f"rule {request.intent.intent}={rule.provider}" + (
                f"/{rule.model}" if rule.model else ""
            )
            if rule.strict:  # exclusive: no other provider, not even as a last resort
                ranked = matching
                last_resort = [o for o in last_resort if o.provider == rule.provider]
                label += " (strict)"
                if not ranked and not last_resort:
                    raise NoRoute(
                        503,
                        f"{label}: {rule.provider} has no healthy endpoint with that model",
                        "no_endpoint_available",
                    )
            if matching:
                ranked = matching + [o for o in ranked if o not in matching]
                rule_note = label
            else:
                rule_note = f"{label} unavailable"
        ordered = ranked + last_resort

        candidates: list[Candidate] = []
        turns: dict[str, int] = {}
        for option in ordered:
            if len(candidates) >= _MAX_CANDIDATES:
                break
            provider = self.providers[option.provider]
            views = [e for e in by_provider.get(option.provider, ()) if e.serves(option.model)]
            ordered_views = self._order_endpoints(
                provider, option.model, views, turns, request.prefer_local
            )
            for view in ordered_views:
                note = "model loaded" if view.has_loaded(option.model) else ""
                if not view.available:
                    note = "unhealthy" if not view.healthy else "cooling down"
                candidates.append(
                    Candidate(option.provider, view.endpoint, view.url, option.model, note)
                )
        candidates = candidates[:_MAX_CANDIDATES]
        first = candidates[0]
        winner = ordered[0]
        view = next(e for e in by_provider[first.provider] if e.endpoint == first.endpoint)
        return RouteDecision(
            intent=request.intent,
            strategy=strategy if request.model == "auto" else "explicit",
            candidates=candidates,
            reason=self._reason(request, winner, first, view, rule_note, why, len(candidates)),
            details={
                "intent": {
                    "name": request.intent.intent,
                    "source": request.intent.source,
                    "signals": list(request.intent.signals),
                    "difficulty": request.difficulty,
                },
                "strategy": strategy,
                # What the strategy ranked with, so `omen whatif` can re-run it exactly.
                "prefer_local": request.prefer_local,
                "quality_threshold": request.quality_threshold,
                "rule": rule_note or None,
                "adaptive": learnt or None,
                "options": [o.as_dict() for o in ordered[:10]],
                "excluded": excluded[:10],
                "candidates": [
                    {
                        "provider": c.provider,
                        "endpoint": c.endpoint,
                        "model": c.model,
                        "note": c.note,
                    }
                    for c in candidates
                ],
            },
        )

    def _reason(
        self,
        request: RouteRequest,
        winner: Option,
        first: Candidate,
        view: EndpointView,
        rule_note: str,
        why: str,
        count: int,
    ) -> str:
        parts = [request.intent.explain()]
        if request.model != "auto":
            parts.append(f"model {request.model}")
        elif rule_note and not rule_note.endswith("unavailable"):
            parts.append(rule_note)
        else:
            if rule_note:
                parts.append(rule_note)
            parts.append(f"{request.strategy} ({why})")
        facts = [first.note] if first.note else []
        facts.append(f"{view.in_flight} in flight")
        cost = "$0" if winner.est_cost == 0 else f"est ${winner.est_cost:.4f}"
        line = " → ".join(parts)
        line += f" → {first.provider}/{first.model} @{first.endpoint}: {', '.join(facts)}; {cost}"
        if count > 1:
            line += f" ({count - 1} fallback{'s' if count > 2 else ''})"
        return line


def rule_matches(options: list[Option], rule: Rule) -> list[Option]:
    """The options an intent rule names (its provider, and its model when it names one), in
    their order: what the rule puts first (`omen whatif` asks the same)."""
    return [
        o
        for o in options
        if o.provider == rule.provider and (rule.model is None or same_model(o.model, rule.model))
    ]
