"""From config and a request body to a RouteRequest: the container's settings over [routing],
its intent rules over the global ones, and what the request's metadata and shape adjust."""

from __future__ import annotations

from typing import Any

import pytest

from omen.config import OmenConfig
from omen.policy import Policies, Policy, estimate_prompt_tokens, provider_info, route_request
from omen.routing import Rule, Weights


def config(**containers: dict[str, Any]) -> OmenConfig:
    return OmenConfig.model_validate(
        {
            "routing": {
                "default_strategy": "balanced",
                "prefer_local": True,
                "quality_threshold": 0.7,
                "cost_weight": 0.2,
                "latency_weight": 0.5,
                "quality_weight": 0.3,
                "intent_rules": {
                    "code": "ollama",
                    "math": {"provider": "openai", "model": "gpt-4o"},
                },
            },
            "providers": {
                "ollama": {},
                "openai": {
                    "models": ["gpt-4o", "gpt-4o-mini"],
                    "cost_per_1k_input_tokens": 0.0025,
                    "cost_per_1k_output_tokens": 0.01,
                    "latency_target_ms": 800,
                    "model_info": {
                        "gpt-4o-mini": {
                            "quality": 0.8,
                            "tools": False,
                            "context_window": 64000,
                            "cost_per_1k_input_tokens": 0.00015,
                        }
                    },
                },
            },
            "containers": containers,
        }
    )


# --- the container's policy ----------------------------------------------------------------


def test_container_without_settings_inherits_routing() -> None:
    policy = Policies(config(app={})).for_container("app")

    assert policy == Policy(
        strategy="balanced",
        prefer_local=True,
        quality_threshold=0.7,
        weights=Weights(cost=0.2, latency=0.5, quality=0.3),
        rules={
            "code": Rule("ollama", None, "global"),
            "math": Rule("openai", "gpt-4o", "global"),
        },
        allowed_providers=None,
        custom=None,  # no [routing.intents]
        difficulty_weight=0.2,  # routing.difficulty_weight's default
    )


def test_container_settings_win_over_routing() -> None:
    app = {
        "router_strategy": "cost-optimized",
        "prefer_local": False,
        "quality_threshold": 0.9,
        "latency_weight": 0.1,
        "allowed_providers": ["openai"],
    }

    policy = Policies(config(app=app)).for_container("app")

    assert policy.strategy == "cost-optimized"
    assert policy.prefer_local is False
    assert policy.quality_threshold == 0.9
    # only the weight the container sets changes; the others are [routing]'s
    assert policy.weights == Weights(cost=0.2, latency=0.1, quality=0.3)
    assert policy.allowed_providers == ("openai",)


def test_container_rules_win_over_global_rules_for_the_same_intent() -> None:
    app = {"routing": {"intents": {"code": {"provider": "openai", "model": "gpt-4o-mini"}}}}

    policy = Policies(config(app=app)).for_container("app")

    assert policy.rules == {
        "code": Rule("openai", "gpt-4o-mini", "container"),
        "math": Rule("openai", "gpt-4o", "global"),
    }


def test_container_rule_written_as_a_provider_name() -> None:
    app = {"routing": {"intents": {"reasoning": "openai"}}}

    policy = Policies(config(app=app)).for_container("app")

    assert policy.rules["reasoning"] == Rule("openai", None, "container")
    assert policy.rules["code"] == Rule("ollama", None, "global")


def test_one_containers_rules_do_not_leak_into_another() -> None:
    policies = Policies(
        config(app={"routing": {"intents": {"code": "openai"}}}, worker={"prefer_local": False})
    )

    assert policies.for_container("app").rules["code"].provider == "openai"
    assert policies.for_container("worker").rules["code"] == Rule("ollama", None, "global")


def test_unknown_container_gets_the_global_policy() -> None:
    policy = Policies(config(app={"allowed_providers": ["openai"]})).for_container("stranger")

    assert (policy.strategy, policy.prefer_local, policy.quality_threshold) == (
        "balanced",
        True,
        0.7,
    )
    assert policy.allowed_providers is None
    assert set(policy.rules) == {"code", "math"}


def test_empty_allowed_providers_means_none_allowed() -> None:
    policy = Policies(config(app={"allowed_providers": []})).for_container("app")

    assert policy.allowed_providers == ()


def test_policies_are_resolved_once_per_container() -> None:
    policies = Policies(config(app={}))

    assert policies.for_container("app") is policies.for_container("app")


# --- provider info -------------------------------------------------------------------------


def test_provider_info_prices_per_token_and_model_info_overrides() -> None:
    info = provider_info(config().providers["openai"])

    assert (info.local, info.quality, info.latency_target_ms) == (False, 0.9, 800)
    assert info.input_cost_per_token == pytest.approx(2.5e-6)
    assert info.output_cost_per_token == pytest.approx(1e-5)
    mini = info.spec("gpt-4o-mini")
    assert mini.quality == 0.8
    assert mini.input_cost_per_token == pytest.approx(1.5e-7)
    assert mini.output_cost_per_token == pytest.approx(1e-5)  # not overridden: the provider's
    assert (mini.capabilities.vision, mini.capabilities.tools) == (True, False)
    assert mini.capabilities.context_window == 64000
    # Its cache reads cost half of *its* input price (OpenAI's share), not the provider's.
    assert info.cache_read_cost_per_token == pytest.approx(1.25e-6)
    assert mini.cache_read_cost_per_token == pytest.approx(7.5e-8)
    assert mini.cache_write_cost_per_token == pytest.approx(1.5e-7)


def test_ollama_provider_info_is_local_free_and_rated_lower() -> None:
    info = provider_info(config().providers["ollama"])

    assert (info.local, info.quality, info.input_cost_per_token, info.models) == (
        True,
        0.6,
        0.0,
        (),
    )


# --- the request ---------------------------------------------------------------------------

POLICY = Policy(
    strategy="balanced",
    prefer_local=True,
    quality_threshold=0.8,
    weights=Weights(0.3, 0.4, 0.3),
    rules={"code": Rule("ollama")},
    allowed_providers=("ollama", "openai"),
)


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hi there"}], **fields}


def test_request_carries_the_policy() -> None:
    request = route_request(POLICY, body(), "app", 1024)

    assert request.model == "auto"
    assert request.container == "app"
    assert request.strategy == "balanced"
    assert request.prefer_local is True
    assert request.quality_threshold == 0.8
    assert request.weights == Weights(0.3, 0.4, 0.3)
    assert request.rules == {"code": Rule("ollama")}
    assert request.allowed_providers == ("ollama", "openai")
    assert (request.needs_vision, request.needs_tools, request.stream) == (False, False, False)


@pytest.mark.parametrize(
    ("priority", "strategy"),
    [
        ("low-latency", "latency-first"),
        ("low-cost", "cost-optimized"),
        ("quality", "quality-first"),
        ("urgent", "balanced"),  # unknown: the container's strategy
        (None, "balanced"),
    ],
)
def test_metadata_priority_picks_the_strategy(priority: str | None, strategy: str) -> None:
    request = route_request(POLICY, body(metadata={"priority": priority}), "app", 1024)

    assert request.strategy == strategy


def test_no_metadata_keeps_the_containers_strategy() -> None:
    cheap = Policy("cost-optimized", True, 0.8, Weights(), {}, None)

    assert route_request(cheap, body(), "app", 1024).strategy == "cost-optimized"


@pytest.mark.parametrize(
    ("policy_prefers", "metadata", "expected"),
    [
        (True, {"prefer_local": False}, False),
        (False, {"prefer_local": True}, True),
        (True, {}, True),
        (False, {}, False),
        (True, {"prefer_local": "false"}, True),  # not a boolean: ignored
        (False, {"prefer_local": 1}, False),
    ],
)
def test_metadata_prefer_local_overrides_the_container(
    policy_prefers: bool, metadata: dict[str, Any], expected: bool
) -> None:
    policy = Policy("balanced", policy_prefers, 0.8, Weights(), {}, None)

    assert route_request(policy, body(metadata=metadata), "app", 1024).prefer_local is expected


def test_metadata_that_is_not_an_object_is_ignored() -> None:
    request = route_request(POLICY, body(metadata="low-cost"), "app", 1024)

    assert (request.strategy, request.prefer_local) == ("balanced", True)


def test_metadata_intent_reaches_the_request() -> None:
    request = route_request(POLICY, body(metadata={"intent": "Reasoning"}), "app", 1024)

    assert (request.intent.intent, request.intent.source) == ("reasoning", "metadata")


def test_intent_is_classified_from_the_messages() -> None:
    code = {"role": "user", "content": "```go\nfunc main() {}\n```"}

    request = route_request(POLICY, body(messages=[code]), "app", 1024)

    assert request.intent.intent == "code"


def test_images_need_vision() -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]

    request = route_request(POLICY, body(messages=[{"role": "user", "content": content}]), "a", 1)

    assert request.needs_vision is True
    assert request.intent.intent == "vision"


@pytest.mark.parametrize(
    ("fields", "needs_tools"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, True),
        ({"functions": [{"name": "f", "parameters": {}}]}, True),
        ({"tools": []}, False),
        ({}, False),
    ],
)
def test_tool_definitions_need_tools(fields: dict[str, Any], needs_tools: bool) -> None:
    assert route_request(POLICY, body(**fields), "app", 1024).needs_tools is needs_tools


def test_tool_messages_alone_do_not_need_tool_calling() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "tool", "tool_call_id": "c1", "content": "21C"},
    ]

    request = route_request(POLICY, body(messages=messages), "app", 1024)

    assert request.needs_tools is False
    assert request.intent.intent == "agent"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"max_completion_tokens": 100, "max_tokens": 200}, 100),
        ({"max_tokens": 200}, 200),
        ({}, 1024),
        ({"max_completion_tokens": None, "max_tokens": 300}, 300),
    ],
)
def test_max_output_tokens_precedence(fields: dict[str, Any], expected: int) -> None:
    assert route_request(POLICY, body(**fields), "app", 1024).max_output_tokens == expected


def test_stream_flag_is_carried() -> None:
    assert route_request(POLICY, body(stream=True), "app", 1024).stream is True


def test_explicit_model_is_carried_as_written() -> None:
    assert route_request(POLICY, body(model="openai/gpt-4o"), "app", 1).model == "openai/gpt-4o"


# --- token estimate ------------------------------------------------------------------------


def test_token_estimate_is_a_quarter_of_the_characters_plus_four_per_message() -> None:
    messages = [
        {"role": "system", "content": "x" * 400},  # 100
        {"role": "user", "content": "y" * 41},  # 10
    ]

    assert estimate_prompt_tokens(messages) == 100 + 10 + 4 * 2


def test_token_estimate_counts_text_parts_and_about_800_per_image() -> None:
    content = [
        {"type": "text", "text": "z" * 80},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}},
    ]

    assert estimate_prompt_tokens([{"role": "user", "content": content}]) == 20 + 4 + 1600


def test_token_estimate_tolerates_odd_messages() -> None:
    messages: list[Any] = [
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": [{"type": "text", "text": None}, "stray"]},
        "not a message",
    ]

    assert estimate_prompt_tokens(messages) == 4 * 3


def test_request_estimate_includes_images() -> None:
    content = [
        {"type": "text", "text": "a" * 400},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]

    request = route_request(POLICY, body(messages=[{"role": "user", "content": content}]), "a", 1)

    assert request.est_prompt_tokens == 100 + 4 + 800


@pytest.mark.parametrize("part_type", ["image", "input_image"])
def test_token_estimate_counts_every_image_part_that_needs_vision(part_type: str) -> None:
    content = [{"type": part_type, "image_url": {"url": "https://example.com/a.png"}}]

    request = route_request(POLICY, body(messages=[{"role": "user", "content": content}]), "a", 1)

    assert request.needs_vision is True
    assert request.est_prompt_tokens == 4 + 800
