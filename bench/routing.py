"""What a routing decision costs: classify + build the request + route, at 20 candidates.

    python -m bench.routing

Snapshots are built the way the daemon builds them (Fleet.snapshot() per request is included
in the "decide" row). Target: under 0.5 ms per decision at 20 candidates.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from omen.policy import Policy, route_request
from omen.routing import EndpointView, ProviderInfo, Router, Rule, Weights, classify

SHORT = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Summarise this week's sales call notes."}],
}
CODE = {
    "model": "auto",
    "messages": [
        {"role": "system", "content": "You are a coding assistant."},
        {
            "role": "user",
            "content": "Why does this raise?\n```python\n"
            + "def f(x):\n    return x['a'] + 1\n" * 40
            + "```\nTraceback (most recent call last):\n",
        },
    ],
}


def fleet(
    providers: int, models_per_provider: int, endpoints_per_provider: int
) -> tuple[list[ProviderInfo], list[EndpointView], dict[str, tuple[str, ...]]]:
    infos, views, models = [], [], {}
    for p in range(providers):
        local = p == 0
        name = "ollama" if local else f"cloud{p}"
        names = tuple(f"model-{p}-{m}" for m in range(models_per_provider))
        infos.append(
            ProviderInfo(
                name,
                "ollama" if local else "openai",
                local,
                names,
                quality=0.6 if local else 0.8 + p / 100,
                input_cost_per_token=0 if local else p * 1e-6,
                output_cost_per_token=0 if local else p * 4e-6,
            )
        )
        models[name] = names
        for e in range(endpoints_per_provider):
            views.append(
                EndpointView(
                    name,
                    f"{name}-{e}",
                    f"http://{name}-{e}",
                    local,
                    True,
                    False,
                    False,
                    e % 3,
                    100.0 + 10 * e,
                    None,
                    frozenset({names[0]}),
                )
            )
    return infos, views, models


def decide(
    router: Router,
    policy: Policy,
    body: dict[str, Any],
    views: list[EndpointView],
    models: dict[str, tuple[str, ...]],
) -> object:
    return router.route(route_request(policy, body, "app", 1024), views, models)


def timed(fn: Callable[[], object], rounds: int = 5000) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main() -> None:
    print(f"{'scenario':<44} {'candidates':>10} {'p50 µs':>8} {'p99 µs':>8}")
    for label, shape in (
        ("4 providers × 5 models, 1 endpoint each", (4, 5, 1)),
        ("1 Ollama × 2 models × 10 endpoints", (1, 2, 10)),
        ("5 providers × 4 models, 4 endpoints each", (5, 4, 4)),
    ):
        infos, views, models = fleet(*shape)
        router = Router(infos)
        for strategy in ("balanced", "cost-optimized", "latency-first"):
            policy = Policy(strategy, True, 0.7, Weights(), {"code": Rule("cloud1")}, None)
            for body_name, body in (("short", SHORT), ("code", CODE)):
                request = route_request(policy, body, "app", 1024)
                count = len(router.route(request, views, models).candidates)
                route_p50, route_p99 = timed(partial(router.route, request, views, models))
                decide_p50, decide_p99 = timed(partial(decide, router, policy, body, views, models))
                title = f"{label[:24]} {strategy}"
                print(
                    f"{title:<44} {count:>10} {route_p50:>8.0f} {route_p99:>8.0f}"
                    f"   route only ({body_name})"
                )
                print(
                    f"{'':<44} {'':>10} {decide_p50:>8.0f} {decide_p99:>8.0f}"
                    f"   classify + route ({body_name})"
                )
    for name, body in (("short", SHORT), ("code, 1.8 KB", CODE)):
        p50, p99 = timed(partial(classify, body))
        print(f"{'classify() ' + name:<44} {'':>10} {p50:>8.0f} {p99:>8.0f}")


if __name__ == "__main__":
    main()
