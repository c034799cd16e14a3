"""Router.route over pure snapshots: which model, which providers, which endpoints in which
order, and the one-line reason an operator reads. No network anywhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from omen.routing import EndpointView, NoRoute, ProviderInfo, Router, RouteRequest

OLLAMA = ProviderInfo("ollama", "ollama", local=True, models=())
OPENAI = ProviderInfo(
    "openai",
    "openai",
    local=False,
    models=("gpt-4o", "llama3.2"),
    input_cost_per_token=2.5e-6,
    output_cost_per_token=1e-5,
)
XAI = ProviderInfo("xai", "xai", local=False, models=("grok-3",))

MODELS: dict[str, tuple[str, ...]] = {
    "ollama": ("llama3.2", "qwen2.5:7b"),
    "openai": ("gpt-4o", "llama3.2"),
    "xai": ("grok-3",),
}


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


FLEET = [
    endpoint("ollama", "gpu-a"),
    endpoint("openai", "api.openai.com", url="https://api.openai.com/v1"),
    endpoint("xai", "api.x.ai", url="https://api.x.ai/v1"),
]


def ask(model: str, **fields: Any) -> RouteRequest:
    return RouteRequest(model=model, container="app", intent="chat", **fields)


def route(
    model: str,
    endpoints: Sequence[EndpointView] = FLEET,
    *,
    providers: Sequence[ProviderInfo] = (OLLAMA, OPENAI, XAI),
    models: dict[str, tuple[str, ...]] | None = None,
    **fields: Any,
) -> list[tuple[str, str]]:
    decision = Router(providers).route(ask(model, **fields), endpoints, models or MODELS)
    return [(c.provider, c.endpoint) for c in decision.candidates]


# --- which model, which providers --------------------------------------------------------


def test_explicit_model_goes_to_the_providers_that_serve_it_local_first() -> None:
    assert route("llama3.2") == [("ollama", "gpu-a"), ("openai", "api.openai.com")]


def test_without_prefer_local_config_order_decides() -> None:
    providers = (OPENAI, OLLAMA, XAI)

    preferred = route("llama3.2", providers=providers)
    config_order = route("llama3.2", providers=providers, prefer_local=False)

    assert preferred == [("ollama", "gpu-a"), ("openai", "api.openai.com")]
    assert config_order == [("openai", "api.openai.com"), ("ollama", "gpu-a")]


def test_model_served_by_one_provider_has_one_candidate() -> None:
    decision = Router([OLLAMA, OPENAI, XAI]).route(ask("grok-3"), FLEET, MODELS)

    assert [(c.provider, c.model, c.url) for c in decision.candidates] == [
        ("xai", "grok-3", "https://api.x.ai/v1")
    ]
    assert decision.strategy == "explicit"


def test_provider_prefix_pins_the_provider_and_strips_the_prefix() -> None:
    decision = Router([OLLAMA, OPENAI, XAI]).route(ask("openai/llama3.2"), FLEET, MODELS)

    assert [(c.provider, c.model) for c in decision.candidates] == [("openai", "llama3.2")]


def test_slash_in_a_model_name_is_not_a_prefix_unless_it_names_a_provider() -> None:
    models = {**MODELS, "ollama": ("hf.co/bartowski/Llama-3.2-1B",)}

    decision = Router([OLLAMA, OPENAI]).route(ask("hf.co/bartowski/Llama-3.2-1B"), FLEET, models)

    assert [(c.provider, c.model) for c in decision.candidates] == [
        ("ollama", "hf.co/bartowski/Llama-3.2-1B")
    ]


def test_provider_prefix_outside_allowed_providers_is_403() -> None:
    with pytest.raises(NoRoute) as caught:
        route("openai/gpt-4o", allowed_providers=("ollama",))

    assert (caught.value.status, caught.value.code) == (403, "provider_not_allowed")
    assert "'openai'" in caught.value.message


def test_auto_goes_to_the_first_local_model() -> None:
    router = Router([OPENAI, OLLAMA, XAI], strategy="cost-optimized")

    decision = router.route(ask("auto"), FLEET, MODELS)

    assert [(c.provider, c.model) for c in decision.candidates] == [("ollama", "llama3.2")]
    assert decision.strategy == "cost-optimized"
    assert decision.reason.startswith("auto → first local model → ollama/gpu-a")


def test_auto_without_a_local_provider_takes_the_first_available_model() -> None:
    decision = Router([OLLAMA, OPENAI, XAI]).route(
        ask("auto", allowed_providers=("openai", "xai")), FLEET, MODELS
    )

    assert [(c.provider, c.model) for c in decision.candidates] == [("openai", "gpt-4o")]
    assert decision.reason.startswith("auto → first available model")


def test_auto_with_no_models_anywhere_is_503() -> None:
    with pytest.raises(NoRoute) as caught:
        route("auto", models={"ollama": (), "openai": (), "xai": ()})

    assert (caught.value.status, caught.value.code) == (503, "no_model_available")


def test_allowed_providers_narrow_the_candidates() -> None:
    assert route("llama3.2", allowed_providers=("openai",)) == [("openai", "api.openai.com")]


def test_model_only_served_by_forbidden_providers_is_403() -> None:
    with pytest.raises(NoRoute) as caught:
        route("grok-3", allowed_providers=("ollama", "openai"))

    assert (caught.value.status, caught.value.code) == (403, "provider_not_allowed")
    assert "'grok-3'" in caught.value.message and "'app'" in caught.value.message


def test_unknown_model_is_404_model_not_found() -> None:
    with pytest.raises(NoRoute) as caught:
        route("gpt-9")

    assert (caught.value.status, caught.value.code) == (404, "model_not_found")
    assert "gpt-9" in caught.value.message


def test_bare_ollama_name_resolves_to_its_latest_tag() -> None:
    discovered = {"ollama": ("llama3.2:latest",), "openai": (), "xai": ()}

    assert route("llama3.2", models=discovered) == [("ollama", "gpu-a")]


# --- which endpoints, in which order -----------------------------------------------------


def three(provider: ProviderInfo, **per_endpoint: dict[str, Any]) -> list[EndpointView]:
    return [endpoint(provider.name, name, **per_endpoint.get(name, {})) for name in "abc"]


def names(decision_endpoints: list[tuple[str, str]]) -> list[str]:
    return [name for _, name in decision_endpoints]


def test_least_loaded_orders_by_in_flight() -> None:
    fleet = three(OLLAMA, a={"in_flight": 5}, b={"in_flight": 0}, c={"in_flight": 2})

    assert names(route("llama3.2", fleet, providers=[OLLAMA])) == ["b", "c", "a"]


def test_round_robin_rotates_the_first_endpoint_per_request() -> None:
    provider = ProviderInfo("ollama", "ollama", True, (), load_balancing="round-robin")
    router = Router([provider])
    fleet = three(provider)

    firsts = [router.route(ask("llama3.2"), fleet, MODELS).candidates[0].endpoint for _ in range(6)]
    orders = [
        [c.endpoint for c in router.route(ask("llama3.2"), fleet, MODELS).candidates]
        for _ in range(3)
    ]

    assert firsts == ["a", "b", "c", "a", "b", "c"]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_random_balancing_spreads_first_choices_and_keeps_every_endpoint() -> None:
    provider = ProviderInfo("ollama", "ollama", True, (), load_balancing="random")
    router = Router([provider])
    fleet = three(provider)

    decisions = [router.route(ask("llama3.2"), fleet, MODELS) for _ in range(60)]

    firsts = Counter(d.candidates[0].endpoint for d in decisions)
    assert set(firsts) == {"a", "b", "c"}
    assert all(sorted(c.endpoint for c in d.candidates) == ["a", "b", "c"] for d in decisions)


def test_endpoint_with_the_model_loaded_goes_first_even_when_busier() -> None:
    fleet = three(
        OLLAMA,
        a={"in_flight": 0},
        b={"in_flight": 3, "loaded": frozenset({"llama3.2:latest"})},
        c={"in_flight": 1},
    )

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert [c.endpoint for c in decision.candidates] == ["b", "a", "c"]
    assert decision.candidates[0].note == "model loaded"
    assert decision.candidates[1].note == ""


def test_loaded_other_tag_does_not_count() -> None:
    fleet = three(OLLAMA, a={"in_flight": 1}, b={"loaded": frozenset({"llama3.2:1b"})})

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert [c.endpoint for c in decision.candidates] == ["b", "c", "a"]  # plain least-loaded
    assert all(c.note == "" for c in decision.candidates)


def test_unhealthy_and_cooling_endpoints_go_last_with_their_reason() -> None:
    fleet = three(
        OLLAMA,
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


def test_drained_endpoint_gets_no_new_requests() -> None:
    fleet = three(OLLAMA, a={"drained": True}, b={"in_flight": 4})

    assert names(route("llama3.2", fleet, providers=[OLLAMA])) == ["c", "b"]


def test_every_endpoint_drained_is_503() -> None:
    fleet = three(OLLAMA, a={"drained": True}, b={"drained": True}, c={"drained": True})

    with pytest.raises(NoRoute) as caught:
        route("llama3.2", fleet, providers=[OLLAMA])

    assert (caught.value.status, caught.value.code) == (503, "no_endpoint_available")


def test_endpoint_whose_discovered_models_lack_the_model_is_skipped() -> None:
    fleet = three(
        OLLAMA,
        a={"models": frozenset({"qwen2.5:7b"})},
        b={"models": frozenset({"llama3.2:latest"})},
        c={"models": None},  # not discovered yet: trusted
    )

    assert names(route("llama3.2", fleet, providers=[OLLAMA])) == ["b", "c"]


def test_only_endpoints_of_the_chosen_providers_are_candidates() -> None:
    fleet = [*FLEET, endpoint("ollama", "gpu-b", in_flight=1)]

    assert route("gpt-4o", fleet) == [("openai", "api.openai.com")]


# --- the reason --------------------------------------------------------------------------


def test_reason_names_model_endpoint_load_and_free_price() -> None:
    fleet = [endpoint("ollama", "gpu-a", in_flight=2)]

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert decision.reason == "model llama3.2 → ollama/gpu-a: 2 in flight; $0"
    assert "\n" not in decision.reason


def test_reason_says_model_loaded_and_counts_fallbacks() -> None:
    fleet = three(OLLAMA, b={"loaded": frozenset({"llama3.2:latest"})})

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert decision.reason == (
        "model llama3.2 → ollama/b: model loaded, 0 in flight; $0 (2 fallbacks)"
    )


def test_reason_gives_the_price_per_1k_tokens() -> None:
    decision = Router([OPENAI]).route(ask("gpt-4o"), FLEET, MODELS)

    assert decision.reason == (
        "model gpt-4o → openai/api.openai.com: 0 in flight; $0.0025/$0.01 per 1k"
    )


def test_reason_counts_a_single_fallback_in_the_singular() -> None:
    decision = Router([OLLAMA, OPENAI]).route(ask("llama3.2"), FLEET, MODELS)

    assert decision.reason == "model llama3.2 → ollama/gpu-a: 0 in flight; $0 (1 fallback)"


def test_reason_says_unhealthy_when_only_unhealthy_endpoints_remain() -> None:
    fleet = [endpoint("ollama", "gpu-a", healthy=False)]

    decision = Router([OLLAMA]).route(ask("llama3.2"), fleet, MODELS)

    assert "ollama/gpu-a: unhealthy" in decision.reason


def test_details_list_every_candidate() -> None:
    decision = Router([OLLAMA, OPENAI, XAI]).route(ask("llama3.2"), FLEET, MODELS)

    assert decision.details["candidates"] == [
        {"provider": "ollama", "endpoint": "gpu-a", "model": "llama3.2", "note": ""},
        {"provider": "openai", "endpoint": "api.openai.com", "model": "llama3.2", "note": ""},
    ]
    assert decision.intent == "chat"
