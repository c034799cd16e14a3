"""Router.route over hand-built snapshots: which options a request may use, how each strategy
orders them, which endpoints get tried in which order, and the reason an operator reads.
No network anywhere; every expected winner below can be worked out by hand."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from omen.config import OmenConfig
from omen.policy import Policies, provider_info, route_request
from omen.routing import (
    EndpointView,
    IntentResult,
    ModelOverride,
    NoRoute,
    ProviderInfo,
    RouteDecision,
    Router,
    RouteRequest,
    Rule,
    Weights,
)

GENERAL = IntentResult("general", "default")
CODE = IntentResult("code", "text", ("code fence", "python"))


def endpoint(provider: str, name: str, **fields: Any) -> EndpointView:
    values: dict[str, Any] = {
        "url": f"http://{name}:11434",
        "local": provider == "ollama",
        "healthy": True,
        "drained": False,
        "cooling": False,
        "in_flight": 0,
        "latency_ms": 10.0,
        "models": None,
    }
    values.update(fields)
    return EndpointView(provider=provider, endpoint=name, **values)


def ask(model: str, intent: IntentResult = GENERAL, **fields: Any) -> RouteRequest:
    return RouteRequest(model=model, container="app", intent=intent, **fields)


def order(decision: RouteDecision) -> list[tuple[str, str]]:
    return [(c.provider, c.model) for c in decision.candidates]


def options(decision: RouteDecision) -> list[dict[str, Any]]:
    listed = decision.details["options"]
    assert isinstance(listed, list)
    return listed


def excluded(decision: RouteDecision) -> dict[tuple[str, str], str]:
    listed = decision.details["excluded"]
    assert isinstance(listed, list)
    return {(e["provider"], e["model"]): e["why"] for e in listed}


# --- strategies over a three-offer snapshot ----------------------------------------------
#
# Each offer is one provider with one model on one endpoint. Requests below ask for 0 prompt
# and 1000 output tokens, and an offer's output price is `cost` per 1000 tokens, so its
# estimated cost is exactly `cost`.


@dataclass(frozen=True)
class Offer:
    name: str
    local: bool
    quality: float
    cost: float
    latency_ms: float | None
    ttft_ms: float | None = None
    latency_target_ms: float | None = None


def decide(offers: Sequence[Offer], **fields: Any) -> RouteDecision:
    providers = [
        ProviderInfo(
            o.name,
            "ollama" if o.local else "openai",
            local=o.local,
            models=(f"{o.name}-model",),
            quality=o.quality,
            output_cost_per_token=o.cost / 1000,
            latency_target_ms=o.latency_target_ms,
        )
        for o in offers
    ]
    views = [
        endpoint(o.name, f"{o.name}-1", local=o.local, latency_ms=o.latency_ms, ttft_ms=o.ttft_ms)
        for o in offers
    ]
    models = {o.name: (f"{o.name}-model",) for o in offers}
    fields = {"est_prompt_tokens": 0, "max_output_tokens": 1000, **fields}
    return Router(providers).route(ask("auto", **fields), views, models)


def winners(decision: RouteDecision) -> list[str]:
    return [c.provider for c in decision.candidates]


LOCAL = Offer("ollama", local=True, quality=0.7, cost=0.0, latency_ms=900.0)
MINI = Offer("mini", local=False, quality=0.82, cost=0.001, latency_ms=400.0)
BIG = Offer("big", local=False, quality=0.95, cost=0.02, latency_ms=1200.0)
TRIO = (LOCAL, MINI, BIG)


@pytest.mark.parametrize(
    ("strategy", "prefer_local", "expected"),
    [
        # quality ≥ 0.8 first, cheapest first; the 0.7 local model is not pulled up by
        # prefer_local because it does not meet the threshold.
        ("cost-optimized", True, ["mini", "big", "ollama"]),
        ("cost-optimized", False, ["mini", "big", "ollama"]),
        # local first when preferred, whatever its quality; else plain latency.
        ("latency-first", True, ["ollama", "mini", "big"]),
        ("latency-first", False, ["mini", "ollama", "big"]),
        # scores: mini 0.2023, ollama 0.39, big 0.715 (see the balanced test below); the local
        # model misses the 0.8 threshold so prefer_local changes nothing.
        ("balanced", True, ["mini", "ollama", "big"]),
        ("balanced", False, ["mini", "ollama", "big"]),
        # best quality regardless of locality.
        ("quality-first", True, ["big", "mini", "ollama"]),
        ("quality-first", False, ["big", "mini", "ollama"]),
    ],
)
def test_each_strategy_orders_the_same_snapshot_its_own_way(
    strategy: str, prefer_local: bool, expected: list[str]
) -> None:
    decision = decide(TRIO, strategy=strategy, prefer_local=prefer_local)

    assert winners(decision) == expected
    assert decision.strategy == strategy
    assert [o["provider"] for o in options(decision)] == expected


def test_balanced_scores_are_the_weighted_sum_of_normalised_components() -> None:
    # max cost 0.02, max latency 1200 ms; weights 0.3 cost, 0.4 latency, 0.3 quality.
    #   ollama: 0.3·0/0.02     + 0.4·900/1200  + 0.3·(1−0.70) = 0     + 0.3    + 0.09  = 0.39
    #   mini:   0.3·0.001/0.02 + 0.4·400/1200  + 0.3·(1−0.82) = 0.015 + 0.1333 + 0.054 = 0.2023
    #   big:    0.3·0.02/0.02  + 0.4·1200/1200 + 0.3·(1−0.95) = 0.3   + 0.4    + 0.015 = 0.715
    decision = decide(TRIO, strategy="balanced", prefer_local=False)

    by_name = {o["provider"]: o for o in options(decision)}
    assert by_name["mini"]["components"] == pytest.approx(
        {"cost": 0.015, "latency": 0.1333, "quality": 0.054}, abs=1e-4
    )
    assert by_name["ollama"]["components"] == pytest.approx(
        {"cost": 0.0, "latency": 0.3, "quality": 0.09}, abs=1e-4
    )
    assert by_name["big"]["components"] == pytest.approx(
        {"cost": 0.3, "latency": 0.4, "quality": 0.015}, abs=1e-4
    )
    assert [by_name[n]["score"] for n in ("mini", "ollama", "big")] == pytest.approx(
        [0.2023, 0.39, 0.715], abs=1e-4
    )
    assert "balanced (lowest weighted score)" in decision.reason


def test_balanced_prefer_local_puts_a_local_model_meeting_the_threshold_first() -> None:
    # With the threshold at 0.6 the 0.7 local model qualifies: it goes first although mini
    # scores lower (0.2023 < 0.39); without prefer_local the score decides.
    preferred = decide(TRIO, strategy="balanced", prefer_local=True, quality_threshold=0.6)
    plain = decide(TRIO, strategy="balanced", prefer_local=False, quality_threshold=0.6)

    assert winners(preferred) == ["ollama", "mini", "big"]
    assert "balanced (local meets quality 0.6)" in preferred.reason
    assert winners(plain) == ["mini", "ollama", "big"]


@pytest.mark.parametrize(
    ("weights", "expected_first"),
    [
        (Weights(cost=1.0, latency=0.0, quality=0.0), "ollama"),  # free
        (Weights(cost=0.0, latency=1.0, quality=0.0), "mini"),  # 400 ms
        (Weights(cost=0.0, latency=0.0, quality=1.0), "big"),  # 0.95
    ],
)
def test_balanced_weights_decide_what_matters(weights: Weights, expected_first: str) -> None:
    decision = decide(TRIO, strategy="balanced", prefer_local=False, weights=weights)

    assert winners(decision)[0] == expected_first


def test_balanced_tie_goes_to_the_local_model() -> None:
    twin_cloud = Offer("cloud", local=False, quality=0.9, cost=0.0, latency_ms=500.0)
    twin_local = Offer("ollama", local=True, quality=0.9, cost=0.0, latency_ms=500.0)

    decision = decide((twin_cloud, twin_local), strategy="balanced", prefer_local=False)

    assert winners(decision) == ["ollama", "cloud"]


def test_cost_optimized_prefer_local_puts_a_qualifying_local_model_first_even_when_dearer() -> None:
    # A local model with a configured price (power, amortised GPUs) above mini's.
    priced_local = Offer("ollama", local=True, quality=0.85, cost=0.002, latency_ms=900.0)
    fleet = (priced_local, MINI, BIG)

    preferred = decide(fleet, strategy="cost-optimized", prefer_local=True)
    plain = decide(fleet, strategy="cost-optimized", prefer_local=False)

    assert winners(preferred) == ["ollama", "mini", "big"]
    assert winners(plain) == ["mini", "ollama", "big"]
    assert "cost-optimized (cheapest with quality ≥ 0.8)" in plain.reason


def test_cost_optimized_when_none_meets_the_threshold_takes_the_best_quality() -> None:
    decision = decide(TRIO, strategy="cost-optimized", quality_threshold=0.99)

    assert winners(decision) == ["big", "mini", "ollama"]
    assert "cost-optimized (none meets quality 0.99: best quality)" in decision.reason


def test_cost_optimized_threshold_moves_the_winner() -> None:
    assert winners(decide(TRIO, strategy="cost-optimized", quality_threshold=0.6))[0] == "ollama"
    assert winners(decide(TRIO, strategy="cost-optimized", quality_threshold=0.8))[0] == "mini"
    assert winners(decide(TRIO, strategy="cost-optimized", quality_threshold=0.9))[0] == "big"


def test_cost_optimized_equal_price_goes_to_the_better_model() -> None:
    good = Offer("good", local=False, quality=0.85, cost=0.001, latency_ms=400.0)
    better = Offer("better", local=False, quality=0.9, cost=0.001, latency_ms=400.0)

    decision = decide((good, better), strategy="cost-optimized")

    assert winners(decision) == ["better", "good"]
    assert options(decision)[0]["components"] == {"cost": 0.001, "quality": 0.9}


def test_latency_first_uses_time_to_first_token_for_streams() -> None:
    # The local box answers whole requests slowly but starts streaming fast.
    local = Offer("ollama", local=True, quality=0.7, cost=0.0, latency_ms=800.0, ttft_ms=150.0)
    cloud = Offer("cloud", local=False, quality=0.9, cost=0.01, latency_ms=300.0, ttft_ms=600.0)

    streamed = decide((local, cloud), strategy="latency-first", prefer_local=False, stream=True)
    whole = decide((local, cloud), strategy="latency-first", prefer_local=False, stream=False)

    assert winners(streamed) == ["ollama", "cloud"]
    assert [o["latency_ms"] for o in options(streamed)] == [150.0, 600.0]
    assert winners(whole) == ["cloud", "ollama"]
    assert [o["latency_ms"] for o in options(whole)] == [300.0, 800.0]


def test_stream_without_an_observed_ttft_falls_back_to_latency() -> None:
    local = Offer("ollama", local=True, quality=0.7, cost=0.0, latency_ms=800.0)
    cloud = Offer("cloud", local=False, quality=0.9, cost=0.01, latency_ms=300.0, ttft_ms=900.0)

    decision = decide((local, cloud), strategy="latency-first", prefer_local=False, stream=True)

    assert winners(decision) == ["ollama", "cloud"]  # 800 (latency) < 900 (ttft)


def test_latency_first_without_observations_uses_the_target_then_the_assumption() -> None:
    # Nothing observed: cloud with a 300 ms target, cloud assumed 1500 ms, local assumed 500 ms.
    targeted = Offer(
        "fast", local=False, quality=0.9, cost=0.01, latency_ms=None, latency_target_ms=300.0
    )
    unknown_cloud = Offer("slow", local=False, quality=0.9, cost=0.01, latency_ms=None)
    unknown_local = Offer("ollama", local=True, quality=0.7, cost=0.0, latency_ms=None)

    decision = decide(
        (unknown_cloud, unknown_local, targeted), strategy="latency-first", prefer_local=False
    )

    assert winners(decision) == ["fast", "ollama", "slow"]
    assert [o["latency_ms"] for o in options(decision)] == [300.0, 500.0, 1500.0]


def test_latency_first_equal_latency_goes_to_the_cheaper() -> None:
    dear = Offer("dear", local=False, quality=0.9, cost=0.02, latency_ms=400.0)
    cheap = Offer("cheap", local=False, quality=0.9, cost=0.001, latency_ms=400.0)

    assert winners(decide((dear, cheap), strategy="latency-first")) == ["cheap", "dear"]


def test_quality_first_equal_quality_goes_to_the_cheaper() -> None:
    dear = Offer("dear", local=False, quality=0.95, cost=0.02, latency_ms=400.0)
    cheap = Offer("cheap", local=False, quality=0.95, cost=0.001, latency_ms=400.0)

    decision = decide((dear, cheap), strategy="quality-first")

    assert winners(decision) == ["cheap", "dear"]
    assert "quality-first (best quality)" in decision.reason


def test_latency_is_the_best_available_endpoint_not_a_cooling_one() -> None:
    provider = ProviderInfo("ollama", "ollama", local=True, models=("m",))
    fleet = [
        endpoint("ollama", "a", latency_ms=900.0),
        endpoint("ollama", "b", latency_ms=700.0),
        endpoint("ollama", "c", latency_ms=50.0, cooling=True),
    ]

    decision = Router([provider]).route(ask("auto"), fleet, {"ollama": ("m",)})

    assert options(decision)[0]["latency_ms"] == 700.0


# --- a realistic fleet: options, capabilities, exclusions ----------------------------------

OLLAMA = ProviderInfo("ollama", "ollama", local=True, models=(), quality=0.6)
OPENAI = ProviderInfo(
    "openai",
    "openai",
    local=False,
    models=("gpt-4o", "gpt-4o-mini"),
    input_cost_per_token=2.5e-6,
    output_cost_per_token=1e-5,
    overrides={
        "gpt-4o-mini": ModelOverride(
            quality=0.8, input_cost_per_token=1.5e-7, output_cost_per_token=6e-7
        )
    },
)
ANTHROPIC = ProviderInfo(
    "anthropic",
    "anthropic",
    local=False,
    models=("claude-sonnet-4",),
    quality=0.95,
    input_cost_per_token=3e-6,
    output_cost_per_token=1.5e-5,
)
XAI = ProviderInfo("xai", "xai", local=False, models=("grok-3",))
PROVIDERS = (OLLAMA, OPENAI, ANTHROPIC, XAI)

MODELS: dict[str, tuple[str, ...]] = {
    "ollama": ("llama3.2:latest", "llava:7b"),
    "openai": ("gpt-4o", "gpt-4o-mini"),
    "anthropic": ("claude-sonnet-4",),
    "xai": ("grok-3",),
}

FLEET = [
    endpoint("ollama", "gpu-a", latency_ms=None),
    endpoint("openai", "api.openai.com", url="https://api.openai.com/v1", latency_ms=None),
    endpoint("anthropic", "api.anthropic.com", latency_ms=None),
    endpoint("xai", "api.x.ai", url="https://api.x.ai/v1", latency_ms=None),
]

# 1000 prompt + 500 output tokens:
#   gpt-4o          1000·2.5e-6 + 500·1e-5   = 0.0075   quality 0.9
#   gpt-4o-mini     1000·1.5e-7 + 500·6e-7   = 0.00045  quality 0.8 (model_info)
#   claude-sonnet-4 1000·3e-6   + 500·1.5e-5 = 0.0105   quality 0.95
#   grok-3          free in this snapshot                quality 0.9
#   ollama models   free                                 quality 0.6
SIZED = {"est_prompt_tokens": 1000, "max_output_tokens": 500}


def route_auto(
    endpoints: Sequence[EndpointView] = FLEET,
    *,
    providers: Sequence[ProviderInfo] = PROVIDERS,
    models: dict[str, tuple[str, ...]] = MODELS,
    intent: IntentResult = GENERAL,
    **fields: Any,
) -> RouteDecision:
    return Router(providers).route(ask("auto", intent, **{**SIZED, **fields}), endpoints, models)


def test_auto_considers_every_model_of_every_provider() -> None:
    decision = route_auto(strategy="quality-first")

    assert {(o["provider"], o["model"]) for o in options(decision)} == {
        ("ollama", "llama3.2:latest"),
        ("ollama", "llava:7b"),
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4"),
        ("xai", "grok-3"),
    }
    assert order(decision)[0] == ("anthropic", "claude-sonnet-4")
    assert decision.details["excluded"] == []


def test_auto_is_the_strategys_pick_not_the_first_local_model() -> None:
    cost = route_auto(providers=(OLLAMA, OPENAI, ANTHROPIC), strategy="cost-optimized")

    # Local models (0.6) miss the 0.8 threshold; the cheapest that meets it is gpt-4o-mini.
    assert order(cost)[0] == ("openai", "gpt-4o-mini")


def test_auto_with_only_cloud_providers_allowed_takes_the_strategys_pick() -> None:
    decision = route_auto(allowed_providers=("openai", "anthropic"), strategy="cost-optimized")

    assert order(decision) == [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4"),
    ]


def test_allowed_providers_limit_auto_options_and_candidates() -> None:
    decision = route_auto(allowed_providers=("ollama", "xai"), strategy="quality-first")

    assert {o["provider"] for o in options(decision)} == {"ollama", "xai"}
    assert {c.provider for c in decision.candidates} == {"ollama", "xai"}
    assert order(decision)[0] == ("xai", "grok-3")


def test_auto_with_no_models_anywhere_is_503() -> None:
    with pytest.raises(NoRoute) as caught:
        route_auto(models={"ollama": (), "openai": (), "anthropic": (), "xai": ()})

    assert (caught.value.status, caught.value.code) == (503, "no_endpoint_available")


def test_auto_with_no_allowed_provider_is_503() -> None:
    with pytest.raises(NoRoute) as caught:
        route_auto(allowed_providers=())

    assert caught.value.status == 503


def test_vision_request_excludes_models_that_cannot_see_images() -> None:
    decision = route_auto(needs_vision=True)

    assert excluded(decision) == {
        ("ollama", "llama3.2:latest"): "cannot see images",
        ("xai", "grok-3"): "cannot see images",
    }
    # balanced + prefer_local, but llava (0.6) misses 0.8; by score, with max cost 0.0105 and
    # max latency 1500 ms: llava 0 + 0.4·500/1500 + 0.3·0.4 = 0.2533 beats gpt-4o-mini
    # 0.3·0.00045/0.0105 + 0.4 + 0.3·0.2 = 0.4729.
    assert order(decision)[0] == ("ollama", "llava:7b")
    assert all(c.model != "llama3.2:latest" for c in decision.candidates)


def test_tools_request_excludes_models_that_cannot_call_tools() -> None:
    decision = route_auto(needs_tools=True)

    assert excluded(decision) == {("ollama", "llava:7b"): "cannot call tools"}
    assert order(decision)[0] == ("ollama", "llama3.2:latest")


def test_vision_with_tools_needs_both() -> None:
    decision = route_auto(
        needs_vision=True, needs_tools=True, allowed_providers=("ollama", "openai")
    )

    assert excluded(decision) == {
        ("ollama", "llama3.2:latest"): "cannot see images",
        ("ollama", "llava:7b"): "cannot call tools",
    }
    # gpt-4o-mini 0.3·0.00045/0.0075 + 0.4 + 0.06 = 0.478 < gpt-4o 0.3 + 0.4 + 0.03 = 0.73
    assert order(decision) == [("openai", "gpt-4o-mini"), ("openai", "gpt-4o")]


def test_no_model_can_see_images_is_503_naming_the_reasons() -> None:
    with pytest.raises(NoRoute) as caught:
        route_auto(needs_vision=True, allowed_providers=("xai",))

    assert (caught.value.status, caught.value.code) == (503, "no_endpoint_available")
    assert "xai/grok-3: cannot see images" in caught.value.message


def test_prompt_longer_than_the_context_window_is_excluded() -> None:
    # llava:7b takes 8192 tokens; 10 000 prompt + 1 000 output does not fit.
    decision = route_auto(est_prompt_tokens=10_000, max_output_tokens=1_000)

    assert excluded(decision) == {("ollama", "llava:7b"): "context 8192 < 11000 tokens"}


def test_explicit_model_skips_capability_checks() -> None:
    # The client asked for this model by name: its call, not ours.
    decision = Router(PROVIDERS).route(
        ask("llava:7b", needs_tools=True, est_prompt_tokens=50_000), FLEET, MODELS
    )

    assert order(decision) == [("ollama", "llava:7b")]
    assert decision.details["excluded"] == []


def test_model_info_overrides_quality_and_price() -> None:
    decision = route_auto(allowed_providers=("openai",))

    by_model = {o["model"]: o for o in options(decision)}
    assert (by_model["gpt-4o-mini"]["quality"], by_model["gpt-4o-mini"]["est_cost"]) == (
        0.8,
        pytest.approx(0.00045),
    )
    assert (by_model["gpt-4o"]["quality"], by_model["gpt-4o"]["est_cost"]) == (
        0.9,
        pytest.approx(0.0075),
    )


def test_model_info_quality_override_changes_the_winner() -> None:
    rated = ProviderInfo(
        "ollama",
        "ollama",
        local=True,
        models=(),
        quality=0.6,
        overrides={"llava:7b": ModelOverride(quality=0.85)},
    )

    decision = route_auto(providers=(rated, OPENAI), strategy="cost-optimized")

    # llava now meets 0.8 and is free: it beats gpt-4o-mini; llama3.2 (0.6) goes last.
    assert order(decision) == [
        ("ollama", "llava:7b"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
        ("ollama", "llama3.2:latest"),
    ]


def test_model_info_overrides_capabilities() -> None:
    tuned = ProviderInfo(
        "ollama",
        "ollama",
        local=True,
        models=(),
        overrides={
            "llama3.2:latest": ModelOverride(vision=True, tools=False),
            "llava:7b": ModelOverride(context_window=4096),
        },
    )
    models = {"ollama": ("llama3.2:latest", "llava:7b", "qwen2.5:7b")}

    seeing = route_auto(providers=[tuned], models=models, needs_vision=True)
    tooling = route_auto(providers=[tuned], models=models, needs_tools=True)
    long = route_auto(providers=[tuned], models=models, est_prompt_tokens=4000)

    assert excluded(seeing) == {("ollama", "qwen2.5:7b"): "cannot see images"}
    assert excluded(tooling) == {
        ("ollama", "llama3.2:latest"): "cannot call tools",
        ("ollama", "llava:7b"): "cannot call tools",
    }
    assert excluded(long) == {("ollama", "llava:7b"): "context 4096 < 4500 tokens"}


def test_unknown_model_is_assumed_to_do_text_and_tools_in_8k() -> None:
    provider = ProviderInfo("acme", "openai", local=False, models=("acme-7b",))
    fleet = [endpoint("acme", "api.acme.test")]

    tools = route_auto(fleet, providers=[provider], models={"acme": ("acme-7b",)}, needs_tools=True)
    with pytest.raises(NoRoute):
        route_auto(fleet, providers=[provider], models={"acme": ("acme-7b",)}, needs_vision=True)
    with pytest.raises(NoRoute) as too_long:
        route_auto(
            fleet, providers=[provider], models={"acme": ("acme-7b",)}, est_prompt_tokens=8000
        )

    assert order(tools) == [("acme", "acme-7b")]
    assert "context 8192 < 8500 tokens" in too_long.value.message


def test_model_info_for_a_bare_ollama_name_applies_to_its_latest_tag() -> None:
    rated = ProviderInfo(
        "ollama",
        "ollama",
        local=True,
        models=(),
        quality=0.6,
        overrides={"llama3.2": ModelOverride(quality=0.95)},
    )

    decision = route_auto(providers=[rated], models={"ollama": ("llama3.2:latest",)})

    assert options(decision)[0]["quality"] == 0.95


# --- explicit models -----------------------------------------------------------------------

LLAMA_TWICE = {**MODELS, "openai": ("gpt-4o", "llama3.2")}
SHARED = [
    endpoint("ollama", "gpu-a"),
    endpoint("openai", "api.openai.com", url="https://api.openai.com/v1"),
    endpoint("xai", "api.x.ai", url="https://api.x.ai/v1"),
]


def test_explicit_model_served_by_several_providers_is_ordered_by_the_strategy() -> None:
    # Config order puts openai first; quality-first prefers its 0.9 over ollama's 0.6, and
    # cost-optimized with a 0.5 threshold prefers free ollama, even without prefer_local.
    router = Router([OPENAI, OLLAMA])

    best = router.route(
        ask("llama3.2", strategy="quality-first", prefer_local=False), SHARED, LLAMA_TWICE
    )
    cheap = router.route(
        ask("llama3.2", strategy="cost-optimized", prefer_local=False, quality_threshold=0.5),
        SHARED,
        LLAMA_TWICE,
    )

    assert [c.provider for c in best.candidates] == ["openai", "ollama"]
    assert [c.provider for c in cheap.candidates] == ["ollama", "openai"]
    assert best.strategy == cheap.strategy == "explicit"


def test_explicit_model_with_prefer_local_goes_local_first() -> None:
    decision = Router([OPENAI, OLLAMA]).route(
        ask("llama3.2", strategy="latency-first"), SHARED, LLAMA_TWICE
    )

    assert [c.provider for c in decision.candidates] == ["ollama", "openai"]


def test_model_served_by_one_provider_has_one_candidate() -> None:
    decision = Router(PROVIDERS).route(ask("grok-3"), SHARED, MODELS)

    assert [(c.provider, c.model, c.url) for c in decision.candidates] == [
        ("xai", "grok-3", "https://api.x.ai/v1")
    ]
    assert decision.strategy == "explicit"


def test_provider_prefix_pins_the_provider_and_strips_the_prefix() -> None:
    decision = Router(PROVIDERS).route(ask("openai/llama3.2"), SHARED, LLAMA_TWICE)

    assert order(decision) == [("openai", "llama3.2")]


def test_slash_in_a_model_name_is_not_a_prefix_unless_it_names_a_provider() -> None:
    models = {**MODELS, "ollama": ("hf.co/bartowski/Llama-3.2-1B",)}

    decision = Router([OLLAMA, OPENAI]).route(ask("hf.co/bartowski/Llama-3.2-1B"), SHARED, models)

    assert order(decision) == [("ollama", "hf.co/bartowski/Llama-3.2-1B")]


def test_provider_prefix_outside_allowed_providers_is_403() -> None:
    with pytest.raises(NoRoute) as caught:
        Router(PROVIDERS).route(ask("openai/gpt-4o", allowed_providers=("ollama",)), SHARED, MODELS)

    assert (caught.value.status, caught.value.code) == (403, "provider_not_allowed")
    assert "'openai'" in caught.value.message


def test_allowed_providers_narrow_an_explicit_models_providers() -> None:
    decision = Router([OLLAMA, OPENAI]).route(
        ask("llama3.2", allowed_providers=("openai",)), SHARED, LLAMA_TWICE
    )

    assert [(c.provider, c.endpoint) for c in decision.candidates] == [("openai", "api.openai.com")]


def test_model_only_served_by_forbidden_providers_is_403() -> None:
    with pytest.raises(NoRoute) as caught:
        Router(PROVIDERS).route(
            ask("grok-3", allowed_providers=("ollama", "openai")), SHARED, MODELS
        )

    assert (caught.value.status, caught.value.code) == (403, "provider_not_allowed")
    assert "'grok-3'" in caught.value.message and "'app'" in caught.value.message


def test_unknown_model_is_404_model_not_found() -> None:
    with pytest.raises(NoRoute) as caught:
        Router(PROVIDERS).route(ask("gpt-9"), SHARED, MODELS)

    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert "gpt-9" in caught.value.message


def test_bare_ollama_name_resolves_to_its_latest_tag() -> None:
    discovered = {"ollama": ("llama3.2:latest",)}

    decision = Router([OLLAMA]).route(ask("llama3.2"), SHARED, discovered)

    assert [(c.provider, c.endpoint) for c in decision.candidates] == [("ollama", "gpu-a")]


# --- health: drained, cooling, unhealthy ---------------------------------------------------


def three(provider: str, **per_endpoint: dict[str, Any]) -> list[EndpointView]:
    return [endpoint(provider, name, **per_endpoint.get(name, {})) for name in "abc"]


def endpoint_names(decision: RouteDecision) -> list[str]:
    return [c.endpoint for c in decision.candidates]


def test_drained_endpoint_gets_no_new_requests() -> None:
    fleet = three("ollama", a={"drained": True}, b={"in_flight": 4})

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert endpoint_names(decision) == ["c", "b"]


def test_every_endpoint_drained_is_503() -> None:
    fleet = three("ollama", a={"drained": True}, b={"drained": True}, c={"drained": True})

    with pytest.raises(NoRoute) as caught:
        Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert (caught.value.status, caught.value.code) == (503, "no_endpoint_available")


def test_a_provider_drained_everywhere_is_excluded_and_never_a_last_resort() -> None:
    fleet = [endpoint("ollama", "gpu-a", drained=True), *FLEET[1:]]

    decision = route_auto(fleet)

    assert excluded(decision) == {
        ("ollama", "llama3.2:latest"): "no endpoint has it (drained or not pulled)",
        ("ollama", "llava:7b"): "no endpoint has it (drained or not pulled)",
    }
    assert all(c.provider != "ollama" for c in decision.candidates)


@pytest.mark.parametrize(("state", "note"), [("cooling", "cooling down"), ("healthy", "unhealthy")])
def test_provider_with_no_available_endpoint_is_a_last_resort_after_every_viable_option(
    state: str, note: str
) -> None:
    sick = {"cooling": True} if state == "cooling" else {"healthy": False}
    fleet = [endpoint("ollama", "gpu-a", latency_ms=None, **sick), *FLEET[1:]]

    # With prefer_local and latency-first the free local models would win if they were up.
    decision = route_auto(fleet, strategy="latency-first", allowed_providers=("ollama", "openai"))

    assert excluded(decision) == {
        ("ollama", "llama3.2:latest"): "no healthy endpoint",
        ("ollama", "llava:7b"): "no healthy endpoint",
    }
    assert [(c.provider, c.note) for c in decision.candidates] == [
        ("openai", ""),
        ("openai", ""),
        ("ollama", note),
        ("ollama", note),
    ]
    assert [o["provider"] for o in options(decision)] == ["openai", "openai", "ollama", "ollama"]


def test_when_nothing_is_healthy_the_last_resorts_are_still_tried() -> None:
    fleet = [endpoint("ollama", "gpu-a", healthy=False)]

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert [(c.endpoint, c.note) for c in decision.candidates] == [("gpu-a", "unhealthy")]
    assert "ollama/llama3.2 @gpu-a: unhealthy, 0 in flight" in decision.reason


def test_unhealthy_and_cooling_endpoints_go_last_with_their_reason() -> None:
    fleet = three(
        "ollama",
        a={"healthy": False, "in_flight": 0},
        b={"cooling": True, "in_flight": 0, "loaded": frozenset({"llama3.2:latest"})},
        c={"in_flight": 9},
    )

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert [(c.endpoint, c.note) for c in decision.candidates] == [
        ("c", ""),
        ("b", "cooling down"),
        ("a", "unhealthy"),
    ]


def test_endpoint_whose_discovered_models_lack_the_model_is_skipped() -> None:
    fleet = three(
        "ollama",
        a={"models": frozenset({"qwen2.5:7b"})},
        b={"models": frozenset({"llama3.2:latest"})},
        c={"models": None},  # not discovered yet: trusted
    )

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert endpoint_names(decision) == ["b", "c"]


def test_only_endpoints_of_the_chosen_providers_are_candidates() -> None:
    fleet = [*SHARED, endpoint("ollama", "gpu-b", in_flight=1)]

    decision = Router(PROVIDERS).route(ask("gpt-4o"), fleet, MODELS)

    assert [(c.provider, c.endpoint) for c in decision.candidates] == [("openai", "api.openai.com")]


# --- intent rules --------------------------------------------------------------------------


def test_intent_rule_puts_its_provider_first_and_the_reason_names_it() -> None:
    decision = route_auto(intent=CODE, rules={"code": Rule("anthropic")})

    assert order(decision)[0] == ("anthropic", "claude-sonnet-4")
    assert decision.details["rule"] == "rule code=anthropic"
    assert decision.reason.startswith(
        "intent=code (code fence, python) → rule code=anthropic → "
        "anthropic/claude-sonnet-4 @api.anthropic.com: 0 in flight; est $0.0105"
    )
    assert "balanced" not in decision.reason


def test_rule_without_a_model_keeps_the_strategy_order_within_its_provider() -> None:
    decision = route_auto(intent=CODE, rules={"code": Rule("openai")}, strategy="cost-optimized")

    assert order(decision)[:2] == [("openai", "gpt-4o-mini"), ("openai", "gpt-4o")]
    # then the strategy's order for the rest: grok-3 (0.9, free), claude, the 0.6 locals
    assert order(decision)[2] == ("xai", "grok-3")


def test_rule_with_a_model_puts_only_that_model_first() -> None:
    decision = route_auto(
        intent=CODE, rules={"code": Rule("openai", "gpt-4o")}, strategy="cost-optimized"
    )

    assert order(decision)[:3] == [
        ("openai", "gpt-4o"),
        ("xai", "grok-3"),
        ("openai", "gpt-4o-mini"),
    ]
    assert decision.details["rule"] == "rule code=openai/gpt-4o"


def test_rule_for_another_intent_does_not_apply() -> None:
    decision = route_auto(rules={"code": Rule("anthropic")}, strategy="cost-optimized")

    assert order(decision)[0] == ("xai", "grok-3")
    assert decision.details["rule"] is None


def test_rule_whose_provider_is_unavailable_falls_back_to_the_strategy() -> None:
    fleet = [*FLEET[:2], endpoint("anthropic", "api.anthropic.com", cooling=True), FLEET[3]]

    decision = route_auto(
        fleet, intent=CODE, rules={"code": Rule("anthropic")}, strategy="cost-optimized"
    )

    assert order(decision)[0] == ("xai", "grok-3")
    assert order(decision)[-1] == ("anthropic", "claude-sonnet-4")  # last resort
    assert decision.details["rule"] == "rule code=anthropic unavailable"
    assert decision.reason.startswith(
        "intent=code (code fence, python) → rule code=anthropic unavailable → "
        "cost-optimized (cheapest with quality ≥ 0.8) → xai/grok-3 @api.x.ai"
    )


def test_rule_whose_provider_is_not_allowed_is_unavailable() -> None:
    decision = route_auto(
        intent=CODE, rules={"code": Rule("anthropic")}, allowed_providers=("ollama", "openai")
    )

    assert all(c.provider != "anthropic" for c in decision.candidates)
    assert decision.details["rule"] == "rule code=anthropic unavailable"


def test_rule_whose_model_cannot_serve_the_request_is_unavailable() -> None:
    decision = route_auto(intent=CODE, rules={"code": Rule("ollama", "llava:7b")}, needs_tools=True)

    assert ("ollama", "llava:7b") not in order(decision)
    assert decision.details["rule"] == "rule code=ollama/llava:7b unavailable"


def test_rules_do_not_apply_to_explicit_models() -> None:
    decision = Router(PROVIDERS).route(
        ask("gpt-4o", CODE, rules={"code": Rule("anthropic")}), FLEET, MODELS
    )

    assert order(decision) == [("openai", "gpt-4o")]
    assert decision.details["rule"] is None
    assert "rule" not in decision.reason


def test_rule_naming_a_bare_ollama_model_matches_its_latest_tag() -> None:
    decision = route_auto(
        intent=CODE, rules={"code": Rule("ollama", "llama3.2")}, strategy="quality-first"
    )

    assert order(decision)[0] == ("ollama", "llama3.2:latest")
    assert decision.details["rule"] == "rule code=ollama/llama3.2"


def container_config() -> OmenConfig:
    return OmenConfig.model_validate(
        {
            "routing": {"intent_rules": {"code": "openai", "math": "ollama"}},
            "providers": {
                "ollama": {},
                "openai": {"models": ["gpt-4o"], "cost_per_1k_tokens": 0.005},
                "anthropic": {"models": ["claude-sonnet-4"], "quality": 0.95},
            },
            "containers": {"app": {"routing": {"intents": {"code": "anthropic"}}}},
        }
    )


CODE_PROMPT = "```python\nprint(1)\n```"
MATH_PROMPT = "Prove that the sum of two even integers is even."


@pytest.mark.parametrize(
    ("container", "prompt", "intent", "expected"),
    [
        ("app", CODE_PROMPT, "code", "anthropic"),  # the container's rule beats the global one
        ("other", CODE_PROMPT, "code", "openai"),  # no container rules: the global one
        ("app", MATH_PROMPT, "math", "ollama"),  # global rules still cover the other intents
        ("app", "hello there", "general", "anthropic"),  # no rule: balanced picks the free 0.95
    ],
)
def test_container_rule_beats_the_global_rule(
    container: str, prompt: str, intent: str, expected: str
) -> None:
    config = container_config()
    policy = Policies(config).for_container(container)
    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    request = route_request(policy, body, container, 256)
    router = Router([provider_info(p) for p in config.providers.values()])
    fleet = [endpoint(name, f"{name}-1") for name in config.providers]
    models = {
        "ollama": ("llama3.2:latest",),
        "openai": ("gpt-4o",),
        "anthropic": ("claude-sonnet-4",),
    }

    decision = router.route(request, fleet, models)

    assert decision.intent.intent == intent
    assert decision.candidates[0].provider == expected
    if intent == "general":
        assert decision.details["rule"] is None
    else:
        assert decision.details["rule"] == f"rule {intent}={expected}"


# --- endpoints within a provider -----------------------------------------------------------


def test_least_loaded_orders_by_in_flight() -> None:
    fleet = three("ollama", a={"in_flight": 5}, b={"in_flight": 0}, c={"in_flight": 2})

    assert endpoint_names(Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)) == [
        "b",
        "c",
        "a",
    ]


def test_round_robin_rotates_the_first_endpoint_per_request() -> None:
    provider = ProviderInfo("ollama", "ollama", True, (), load_balancing="round-robin")
    router = Router([provider])
    fleet = three("ollama")

    firsts = [router.route(ask("llama3.2"), fleet, MODELS).candidates[0].endpoint for _ in range(6)]
    orders = [endpoint_names(router.route(ask("llama3.2"), fleet, MODELS)) for _ in range(3)]

    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_round_robin_rotates_auto_requests_over_a_provider_with_several_models() -> None:
    provider = ProviderInfo("ollama", "ollama", True, (), load_balancing="round-robin")
    router = Router([provider])
    fleet = [endpoint("ollama", "a"), endpoint("ollama", "b")]
    models = {"ollama": ("llama3.2:latest", "qwen2.5:7b")}

    firsts = [router.route(ask("auto"), fleet, models).candidates[0].endpoint for _ in range(4)]

    assert firsts == ["a", "b", "a", "b"]


def test_random_balancing_spreads_first_choices_and_keeps_every_endpoint() -> None:
    provider = ProviderInfo("ollama", "ollama", True, (), load_balancing="random")
    router = Router([provider])
    fleet = three("ollama")

    decisions = [router.route(ask("llama3.2"), fleet, MODELS) for _ in range(60)]

    firsts = Counter(d.candidates[0].endpoint for d in decisions)
    assert set(firsts) == {"a", "b", "c"}
    assert all(sorted(endpoint_names(d)) == ["a", "b", "c"] for d in decisions)


def test_endpoint_with_the_model_loaded_goes_first_even_when_busier() -> None:
    fleet = three(
        "ollama",
        a={"in_flight": 0},
        b={"in_flight": 3, "loaded": frozenset({"llama3.2:latest"})},
        c={"in_flight": 1},
    )

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert endpoint_names(decision) == ["b", "a", "c"]
    assert decision.candidates[0].note == "model loaded"
    assert decision.candidates[1].note == ""


def test_loaded_other_tag_does_not_count() -> None:
    fleet = three("ollama", a={"in_flight": 1}, b={"loaded": frozenset({"llama3.2:1b"})})

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert endpoint_names(decision) == ["b", "c", "a"]  # plain least-loaded
    assert all(c.note == "" for c in decision.candidates)


def test_candidates_are_capped_at_eight() -> None:
    fleet = [endpoint("ollama", f"gpu-{i}", in_flight=i) for i in range(10)]

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert endpoint_names(decision) == [f"gpu-{i}" for i in range(8)]
    assert decision.reason.endswith("(7 fallbacks)")
    listed = decision.details["candidates"]
    assert isinstance(listed, list) and len(listed) == 8


# --- the reason and the details ------------------------------------------------------------


def test_reason_for_an_explicit_model_names_the_model_endpoint_load_and_price() -> None:
    fleet = [endpoint("ollama", "gpu-a", in_flight=2)]

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert decision.reason == (
        "intent=general (no signals) → model llama3.2 → ollama/llama3.2 @gpu-a: 2 in flight; $0"
    )
    assert "\n" not in decision.reason


def test_reason_for_auto_has_intent_strategy_winner_facts_and_cost() -> None:
    fleet = three("ollama", b={"loaded": frozenset({"llama3.2:latest"}), "in_flight": 1})

    decision = Router([OLLAMA]).route(
        ask("auto", CODE, strategy="latency-first", allowed_providers=("ollama",)),
        fleet,
        {"ollama": ("llama3.2:latest",)},
    )

    assert decision.reason == (
        "intent=code (code fence, python) → latency-first (lowest latency, local first) → "
        "ollama/llama3.2:latest @b: model loaded, 1 in flight; $0 (2 fallbacks)"
    )


def test_reason_for_a_rule_matches_the_operator_example() -> None:
    fleet = [endpoint("ollama", "ollama-4090", in_flight=1, loaded=frozenset({"qwen2.5:7b"}))]

    decision = Router([OLLAMA]).route(
        ask("auto", CODE, rules={"code": Rule("ollama")}), fleet, {"ollama": ("qwen2.5:7b",)}
    )

    assert decision.reason == (
        "intent=code (code fence, python) → rule code=ollama → "
        "ollama/qwen2.5:7b @ollama-4090: model loaded, 1 in flight; $0"
    )


def test_reason_gives_the_estimated_cost_and_counts_one_fallback_in_the_singular() -> None:
    decision = decide((MINI, BIG), strategy="cost-optimized")

    assert decision.reason == (
        "intent=general (no signals) → cost-optimized (cheapest with quality ≥ 0.8) → "
        "mini/mini-model @mini-1: 0 in flight; est $0.0010 (1 fallback)"
    )


def test_details_record_intent_strategy_options_exclusions_and_candidates() -> None:
    fleet = [endpoint("ollama", "gpu-a", latency_ms=None, in_flight=3), *FLEET[1:2]]
    intent = IntentResult("code", "text", ("code fence",))

    decision = route_auto(
        fleet,
        providers=(OLLAMA, OPENAI),
        intent=intent,
        needs_tools=True,
        strategy="cost-optimized",
        rules={"math": Rule("openai")},
    )

    details = decision.details
    assert details["intent"] == {
        "name": "code",
        "source": "text",
        "signals": ["code fence"],
        "difficulty": None,  # the request carried no estimate
    }
    assert details["strategy"] == "cost-optimized"
    assert details["rule"] is None
    assert details["excluded"] == [
        {"provider": "ollama", "model": "llava:7b", "why": "cannot call tools"}
    ]
    assert details["options"] == [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "local": False,
            "own": False,
            "quality": 0.8,
            "est_cost": 0.00045,
            "latency_ms": 1500.0,
            "score": 0.0004,  # est_cost rounded to 4 places
            "components": {"cost": 0.0004, "quality": 0.8},
        },
        {
            "provider": "openai",
            "model": "gpt-4o",
            "local": False,
            "own": False,
            "quality": 0.9,
            "est_cost": 0.0075,
            "latency_ms": 1500.0,
            "score": 0.0075,
            "components": {"cost": 0.0075, "quality": 0.9},
        },
        {
            "provider": "ollama",
            "model": "llama3.2:latest",
            "local": True,
            "own": False,
            "quality": 0.6,
            "est_cost": 0.0,
            "latency_ms": 500.0,
            "score": 0.0,
            "components": {"cost": 0.0, "quality": 0.6},
        },
    ]
    assert details["candidates"] == [
        {"provider": "openai", "endpoint": "api.openai.com", "model": "gpt-4o-mini", "note": ""},
        {"provider": "openai", "endpoint": "api.openai.com", "model": "gpt-4o", "note": ""},
        {"provider": "ollama", "endpoint": "gpu-a", "model": "llama3.2:latest", "note": ""},
    ]
    assert decision.intent == intent
    assert decision.strategy == "cost-optimized"


def test_a_strict_rule_never_falls_through_to_another_provider() -> None:
    from omen.routing import Rule

    fleet = [endpoint("ollama", "gpu1", healthy=False), endpoint("openai", "api.openai.com")]
    loose = route_auto(fleet, rules={"general": Rule("ollama")})
    assert loose.candidates[0].provider == "openai"  # a preference, not a wall
    with pytest.raises(NoRoute) as refused:
        route_auto(
            [endpoint("openai", "api.openai.com")], rules={"general": Rule("ollama", strict=True)}
        )
    assert "strict" in refused.value.message
