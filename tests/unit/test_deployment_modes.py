"""The seed's other two deployment modes, short of the network: hybrid (`local_endpoint`, a box
only one container is routed to) in the config, the fleet's model tables and the router; and
per-container (`OMEN_PROVIDERS` with `OMEN_OLLAMA_ENDPOINT`, no config file) in the loader."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from omen.config import LoadedConfig, OmenConfig, Problem, check_config
from omen.fleet import Fleet
from omen.policy import Policies, provider_info, route_request
from omen.routing import EndpointView, IntentResult, NoRoute, ProviderInfo, Router, RouteRequest

SHARED = "http://ollama:11434"
APP_BOX = "http://app-gpu:11434"


def check(
    tmp_path: Path, text: str | None, env: dict[str, str] | None = None
) -> tuple[list[Problem], LoadedConfig | None]:
    """`omen config check` on this text (None: no config file at all)."""
    if text is None:
        return check_config(None, env or {})
    path = tmp_path / "omen.toml"
    path.write_text(text)
    return check_config(path, env or {})


def loaded(tmp_path: Path, text: str | None, env: dict[str, str] | None = None) -> OmenConfig:
    problems, result = check(tmp_path, text, env)
    assert result is not None, problems
    return result.config


def errors(problems: list[Problem]) -> dict[str, str]:
    return {p.path: p.message for p in problems if p.severity == "error"}


def warnings(problems: list[Problem]) -> dict[str, str]:
    return {p.path: p.message for p in problems if p.severity == "warning"}


def endpoints(config: OmenConfig, provider: str = "ollama") -> list[tuple[str, str, str | None]]:
    return [(e.name, e.url, e.container) for e in config.providers[provider].endpoints]


# --- hybrid mode: the config ------------------------------------------------------------------


def test_a_local_endpoint_joins_the_ollama_provider_reserved_for_its_container(
    tmp_path: Path,
) -> None:
    config = loaded(
        tmp_path,
        f"""
[providers.ollama]
endpoints = ["{SHARED}"]
[containers.app]
local_endpoint = "{APP_BOX}/"
[containers.other]
""",
    )

    assert config.containers["app"].local_endpoint == APP_BOX
    assert endpoints(config) == [
        ("ollama:11434", SHARED, None),
        ("local-app", APP_BOX, "app"),
    ]


def test_without_an_ollama_provider_one_is_made_with_only_the_reserved_box(
    tmp_path: Path,
) -> None:
    config = loaded(
        tmp_path,
        f"""
[providers.openai]
api_key = "sk-test"
[containers.app]
local_endpoint = "{APP_BOX}"
""",
    )

    assert endpoints(config) == [("local-app", APP_BOX, "app")]  # no default localhost box
    assert config.providers["ollama"].is_local


def test_without_any_provider_the_default_local_ollama_stays_shared(tmp_path: Path) -> None:
    config = loaded(tmp_path, f'[containers.app]\nlocal_endpoint = "{APP_BOX}"\n')

    assert endpoints(config) == [
        ("localhost:11434", "http://localhost:11434", None),
        ("local-app", APP_BOX, "app"),
    ]


def test_a_disabled_container_reserves_no_box(tmp_path: Path) -> None:
    config = loaded(tmp_path, f'[containers.app]\nenabled = false\nlocal_endpoint = "{APP_BOX}"\n')

    assert [name for name, _, _ in endpoints(config)] == ["localhost:11434"]


@pytest.mark.parametrize("url", ["ftp://app-gpu:11434", "app-gpu:11434", "http://"])
def test_a_local_endpoint_must_be_an_http_url(tmp_path: Path, url: str) -> None:
    problems, result = check(tmp_path, f'[containers.app]\nlocal_endpoint = "{url}"\n')

    assert result is None
    assert errors(problems) == {
        "containers.app.local_endpoint": f"{url!r} is not an http:// or https:// URL"
    }


def test_a_local_endpoint_is_no_longer_dropped_as_a_bolt_setting(tmp_path: Path) -> None:
    problems, _ = check(
        tmp_path,
        f'[containers.app]\nendpoint = "http://shared-omen:8080"\nlocal_endpoint = "{APP_BOX}"\n',
    )

    assert list(warnings(problems)) == ["containers.app.endpoint"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f'[providers.ollama]\nenabled = false\n[containers.app]\nlocal_endpoint = "{APP_BOX}"',
            "provider 'ollama' is disabled, so this endpoint is not used",
        ),
        (
            '[providers.openai]\napi_key = "k"\n[containers.app]\n'
            f'allowed_providers = ["openai"]\nlocal_endpoint = "{APP_BOX}"',
            "'ollama' is not in this container's allowed_providers, so this endpoint is not used",
        ),
        (
            f'[providers.ollama]\nendpoints = ["{APP_BOX}"]\n'
            f'[containers.app]\nlocal_endpoint = "{APP_BOX}"',
            "the same URL as providers.ollama.endpoints.0, which every container uses: "
            "this box is not reserved",
        ),
    ],
    ids=["ollama-disabled", "not-allowed", "also-shared"],
)
def test_a_local_endpoint_that_would_not_be_private_or_used_is_a_warning(
    tmp_path: Path, text: str, message: str
) -> None:
    problems, result = check(tmp_path, text)

    assert result is not None
    assert warnings(problems) == {"containers.app.local_endpoint": message}


def test_a_local_endpoint_needs_providers_ollama_to_be_an_ollama(tmp_path: Path) -> None:
    text = (
        '[providers.ollama]\ntype = "openai"\napi_key = "k"\n'
        f'[containers.app]\nlocal_endpoint = "{APP_BOX}"\n'
    )

    problems, result = check(tmp_path, text)

    assert result is None
    assert errors(problems) == {
        "containers.app.local_endpoint": "joins providers.ollama, which is of type 'openai' "
        "here; name that table otherwise"
    }


def test_a_clash_with_the_reserved_name_is_reported_at_the_local_endpoint(tmp_path: Path) -> None:
    text = (
        f'[providers.ollama]\nendpoints = [{{ url = "{SHARED}", name = "local-app" }}]\n'
        f'[containers.app]\nlocal_endpoint = "{APP_BOX}"\n'
    )

    problems, _ = check(tmp_path, text)

    assert errors(problems) == {
        "containers.app.local_endpoint": "same endpoint name as providers.ollama.endpoints.0"
    }


def test_an_endpoint_reserved_by_name_must_name_a_container(tmp_path: Path) -> None:
    text = f"""
[providers.ollama]
endpoints = [{{ url = "{APP_BOX}", name = "app-gpu", container = "ap" }}]
[containers.app]
"""

    problems, _ = check(tmp_path, text)

    assert errors(problems) == {
        "providers.ollama.endpoints.0.container": "no container named 'ap' is defined; "
        "did you mean 'app'?"
    }


# --- per-container mode: the environment alone -----------------------------------------------


def test_the_seeds_per_container_environment_needs_no_config_file(tmp_path: Path) -> None:
    env = {"OMEN_PROVIDERS": "ollama", "OMEN_OLLAMA_ENDPOINT": SHARED}

    problems, result = check(tmp_path, None, env)

    assert problems == [] and result is not None
    config = result.config
    assert {name: p.enabled for name, p in config.providers.items()} == {"ollama": True}
    assert endpoints(config) == [("ollama:11434", SHARED, None)]


def test_omen_providers_enables_exactly_those_named(tmp_path: Path) -> None:
    text = f"""
[providers.ollama]
enabled = false
endpoints = ["{SHARED}"]
[providers.openai]
api_key = "sk-test"
[providers.gemini]
api_key = "g-test"
"""

    config = loaded(tmp_path, text, {"OMEN_PROVIDERS": " ollama , gemini,"})

    assert {name: p.enabled for name, p in config.providers.items()} == {
        "ollama": True,
        "openai": False,
        "gemini": True,
    }


def test_omen_providers_adds_a_provider_type_the_file_leaves_out(tmp_path: Path) -> None:
    env = {"OMEN_PROVIDERS": "anthropic", "OMEN_ANTHROPIC_API_KEY": "sk-ant-test"}

    config = loaded(tmp_path, None, env)

    anthropic = config.providers["anthropic"]
    assert anthropic.enabled and anthropic.api_key is not None
    assert anthropic.api_key.get_secret_value() == "sk-ant-test"
    assert config.providers["ollama"].enabled is False  # the built-in default is not named


def test_an_unknown_name_in_omen_providers_lists_the_known_ones(tmp_path: Path) -> None:
    text = '[providers.lab]\ntype = "ollama"\n'

    problems, result = check(tmp_path, text, {"OMEN_PROVIDERS": "olama"})

    assert result is None
    assert errors(problems) == {
        "providers": "unknown provider 'olama' in $OMEN_PROVIDERS (known: anthropic, azure, "
        "bedrock, gemini, lab, ollama, openai, xai)"
    }


def test_omen_providers_naming_nothing_is_an_error(tmp_path: Path) -> None:
    problems, result = check(tmp_path, None, {"OMEN_PROVIDERS": " , "})

    assert result is None
    assert errors(problems) == {"providers": "$OMEN_PROVIDERS is set but names no provider"}


# --- hybrid mode: what the fleet offers each container --------------------------------------


def test_a_model_only_on_one_containers_box_is_offered_to_that_container_alone() -> None:
    config = OmenConfig.model_validate(
        {
            "providers": {"ollama": {"endpoints": [SHARED]}},
            "containers": {"app": {"local_endpoint": APP_BOX}, "other": {}},
        }
    )
    fleet = Fleet(config)
    fleet.endpoints[("ollama", "ollama:11434")].models = frozenset({"llama3.1:8b"})
    fleet.endpoints[("ollama", "local-app")].models = frozenset({"llama3.1:8b", "qwen2.5:7b"})

    assert fleet.chat_models("other") == {"ollama": ("llama3.1:8b",)}
    assert fleet.chat_models("app") == {"ollama": ("llama3.1:8b", "qwen2.5:7b")}
    assert fleet.chat_models() == {"ollama": ("llama3.1:8b", "qwen2.5:7b")}  # the whole fleet
    views = {view.endpoint: view.container for view in fleet.snapshot()}
    assert views == {"ollama:11434": None, "local-app": "app"}


# --- hybrid mode: routing ---------------------------------------------------------------------

GENERAL = IntentResult("general", "default")
OLLAMA = ProviderInfo("ollama", "ollama", True, ())
OPENAI = ProviderInfo(
    "openai", "openai", False, ("gpt-4o",), quality=0.9, output_cost_per_token=0.00001
)
MODELS = {"ollama": ("llama3.1:8b",), "openai": ("gpt-4o",)}


def box(name: str, container: str | None = None, **fields: Any) -> EndpointView:
    values: dict[str, Any] = {
        "url": f"http://{name}:11434",
        "local": True,
        "healthy": True,
        "drained": False,
        "cooling": False,
        "in_flight": 0,
        "latency_ms": 10.0,
        "models": None,
        "container": container,
    }
    values.update(fields)
    return EndpointView(provider="ollama", endpoint=name, **values)


def cloud() -> EndpointView:
    return replace(box("api.openai.com"), provider="openai", local=False)


def ask(container: str, model: str = "auto", **fields: Any) -> RouteRequest:
    values: dict[str, Any] = {"prefer_local": True, "quality_threshold": 0.5}
    values.update(fields)
    return RouteRequest(model=model, container=container, intent=GENERAL, **values)


def tried(router: Router, request: RouteRequest, fleet: list[EndpointView]) -> list[str]:
    return [c.endpoint for c in router.route(request, fleet, MODELS).candidates]


FLEET = [box("shared"), box("local-app", "app"), box("local-other", "other"), cloud()]


@pytest.mark.parametrize("model", ["auto", "llama3.1:8b", "ollama/llama3.1:8b"])
def test_another_containers_box_is_never_a_candidate(model: str) -> None:
    router = Router([OLLAMA, OPENAI])

    assert "local-app" not in tried(router, ask("other", model), FLEET)
    assert tried(router, ask("plain", model), FLEET)[0] == "shared"
    assert "local-app" not in tried(router, ask("plain", model), FLEET)
    assert "local-other" not in tried(router, ask("plain", model), FLEET)


def test_another_containers_box_is_no_last_resort_either() -> None:
    down = [box("shared", healthy=False), box("local-app", "app")]

    candidates = tried(Router([OLLAMA]), ask("plain", "llama3.1:8b"), down)

    assert candidates == ["shared"]  # tried though unhealthy, never the reserved box


def test_with_every_shared_box_drained_another_container_gets_no_route() -> None:
    fleet = [box("shared", drained=True), box("local-app", "app")]

    with pytest.raises(NoRoute) as refused:
        Router([OLLAMA]).route(ask("plain", "llama3.1:8b"), fleet, MODELS)

    assert refused.value.status == 503


@pytest.mark.parametrize("strategy", ["balanced", "cost-optimized", "latency-first"])
def test_with_prefer_local_the_own_box_comes_before_shared_boxes_and_the_cloud(
    strategy: str,
) -> None:
    # The shared box is idle and the own box busy: least-loaded alone would pick the shared one.
    fleet = [box("shared"), box("local-app", "app", in_flight=4), cloud()]

    candidates = tried(Router([OLLAMA, OPENAI]), ask("app", strategy=strategy), fleet)

    assert candidates == ["local-app", "shared", "api.openai.com"]


def test_without_prefer_local_the_own_box_is_one_of_the_pool() -> None:
    fleet = [box("shared"), box("local-app", "app", in_flight=4)]

    candidates = tried(Router([OLLAMA]), ask("app", "llama3.1:8b", prefer_local=False), fleet)

    assert candidates == ["shared", "local-app"]  # least-loaded decides


@pytest.mark.parametrize("strategy", ["balanced", "cost-optimized", "latency-first"])
def test_a_model_on_the_own_box_outranks_a_shared_boxes_model(strategy: str) -> None:
    # Both free and local; the shared box's model would win on latency, the own box's on place.
    fleet = [
        box("shared", models=frozenset({"llama3.1:8b"}), latency_ms=5.0),
        box("local-app", "app", models=frozenset({"qwen2.5:7b"}), latency_ms=50.0),
    ]
    models = {"ollama": ("llama3.1:8b", "qwen2.5:7b")}

    decision = Router([OLLAMA]).route(ask("app", strategy=strategy), fleet, models)

    assert [(c.endpoint, c.model) for c in decision.candidates] == [
        ("local-app", "qwen2.5:7b"),
        ("shared", "llama3.1:8b"),
    ]
    assert [o["own"] for o in decision.details["options"]] == [True, False]  # type: ignore[index]


def test_the_containers_prefer_local_and_the_requests_metadata_decide() -> None:
    config = OmenConfig.model_validate(
        {
            "routing": {"prefer_local": False, "quality_threshold": 0.5},
            "providers": {"ollama": {"endpoints": [SHARED], "models": ["llama3.1:8b"]}},
            "containers": {"app": {"local_endpoint": APP_BOX}},
        }
    )
    policy = Policies(config).for_container("app")
    router = Router([provider_info(p) for p in config.providers.values()])
    fleet = [box("ollama:11434"), box("local-app", "app", in_flight=4)]
    messages = [{"role": "user", "content": "hello"}]

    def first(metadata: dict[str, object]) -> str:
        body = {"model": "auto", "messages": messages, "metadata": metadata}
        request = route_request(policy, body, "app", 256)
        return router.route(request, fleet, {"ollama": ("llama3.1:8b",)}).candidates[0].endpoint

    assert first({}) == "ollama:11434"
    assert first({"prefer_local": True}) == "local-app"
