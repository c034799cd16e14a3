"""The configuration contract: SPEC §3, the seed's omen.toml, env: secrets and OMEN_* overrides."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from omen.config import (
    ApiKeyConfig,
    BudgetConfig,
    ConfigError,
    ContainerConfig,
    ContainerRouting,
    EndpointConfig,
    GitHubConfig,
    LoadedConfig,
    ModelInfoConfig,
    OidcConfig,
    OmenConfig,
    Problem,
    ProviderConfig,
    QuotaConfig,
    RateLimitConfig,
    RoutingConfig,
    ServerConfig,
    check_config,
    find_config_path,
    load_config,
    parse_duration,
    parse_money,
    parse_size,
)

REPO = Path(__file__).resolve().parents[2]

# Verbatim from seed/OMEN_BOLT_INTEGRATION.md, "Configuration Mapping".
SEED_OMEN_TOML = """\
# omen.toml
[routing]
default_strategy = "cost-optimized"
prefer_local = true

[routing.intent_rules]
code = { provider = "ollama", model = "deepseek-coder:6.7b" }
reasoning = { provider = "anthropic", model = "claude-sonnet-4" }
vision = { provider = "openai", model = "gpt-4-vision-preview" }

[quotas.container_app]
max_requests_per_hour = 1000
max_tokens_per_day = 500000
budget_daily = 10.00

[providers.ollama]
endpoints = ["http://localhost:11434", "http://ollama-3070:11434"]
cost_per_token = 0.0
latency_target_ms = 100

[providers.anthropic]
api_key = "env:OMEN_ANTHROPIC_API_KEY"
cost_per_1k_tokens = 0.003

[providers.openai]
api_key = "env:OMEN_OPENAI_API_KEY"
cost_per_1k_tokens = 0.001
"""


def write(tmp_path: Path, text: str, name: str = "omen.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def check(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> tuple[list[Problem], LoadedConfig | None]:
    return check_config(write(tmp_path, text), env or {})


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> OmenConfig:
    return load_config(write(tmp_path, text), env or {}).config


def errors(problems: list[Problem]) -> dict[str, str]:
    return {p.path: p.message for p in problems if p.severity == "error"}


def warnings(problems: list[Problem]) -> dict[str, str]:
    return {p.path: p.message for p in problems if p.severity == "warning"}


# --- the seed and the example -------------------------------------------------------------


def test_seed_example_loads_unchanged(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, SEED_OMEN_TOML)

    assert loaded is not None, problems
    assert errors(problems) == {}
    config = loaded.config
    assert config.routing.default_strategy == "cost-optimized"
    assert config.routing.intent_rules["vision"].model == "gpt-4-vision-preview"
    assert [e.url for e in config.providers["ollama"].endpoints] == [
        "http://localhost:11434",
        "http://ollama-3070:11434",
    ]
    app = config.containers["app"]
    assert app.quotas.max_requests_per_hour == 1000
    assert app.quotas.max_tokens_per_day == 500000
    assert app.budget.daily == 10.0
    anthropic = config.providers["anthropic"]
    assert anthropic.input_cost_per_token() == anthropic.output_cost_per_token() == 0.003 / 1000


def test_seed_quota_table_is_the_same_as_the_containers_table(tmp_path: Path) -> None:
    seed = load(tmp_path, "[quotas.container_app]\nmax_tokens_per_day = 5\nbudget_daily = '2.50'\n")
    canonical = load(
        tmp_path,
        "[containers.app.quotas]\nmax_tokens_per_day = 5\n[containers.app.budget]\ndaily = 2.5\n",
    )

    assert seed.containers == canonical.containers


def test_problem_in_seed_quota_table_points_at_what_was_written(tmp_path: Path) -> None:
    problems, _ = check(
        tmp_path, "[quotas.container_app]\nmax_tokens_per_dai = 5\nbudget_daily = 'lots'\n"
    )

    assert errors(problems) == {
        "quotas.container_app.max_tokens_per_dai": "unknown key; did you mean"
        " 'max_tokens_per_day'?",
        "quotas.container_app.budget_daily": "not an amount of money: 'lots' (write e.g. 10.00)",
    }


def test_seed_quota_table_must_be_named_for_a_container(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, "[quotas.app]\nmax_tokens_per_day = 5\n")

    assert "quotas.app" in errors(problems)


def test_example_config_checks_clean_with_no_env(tmp_path: Path) -> None:
    problems, loaded = check_config(REPO / "config.example.toml", {})

    assert errors(problems) == {}
    assert loaded is not None
    assert "containers.app.api_key" in warnings(problems)
    assert set(loaded.config.providers) >= {"ollama", "anthropic", "openai", "azure", "bedrock"}


def test_example_config_names_every_key_the_model_accepts() -> None:
    # The sign-in tables stand in an example of their own (set, they change a keyless daemon).
    shipped = [REPO / "config.example.toml", REPO / "config.signin.example.toml"]
    text = re.sub(r"#.*", "", "\n".join(path.read_text() for path in shipped))
    models: list[type[BaseModel]] = [
        ServerConfig,
        ApiKeyConfig,
        OidcConfig,
        GitHubConfig,
        RoutingConfig,
        ProviderConfig,
        EndpointConfig,
        ContainerConfig,
        QuotaConfig,
        BudgetConfig,
        RateLimitConfig,
        ContainerRouting,
        ModelInfoConfig,
    ]
    missing = []
    for model in models:
        for key in model.model_fields:
            if key == "name" and model in (ProviderConfig, ContainerConfig):
                continue  # the table's own name
            if not re.search(rf"(?m)(\b{key}\s*=|\.{key}[\].]|^\s*{key}\.)", text):
                missing.append(f"{model.__name__}.{key}")
    assert missing == []


def test_example_config_checks_clean_with_every_secret_set() -> None:
    text = (REPO / "config.example.toml").read_text()
    env = {name: f"value-of-{name}" for name in re.findall(r'"env:(\w+)"', text)}

    problems, loaded = check_config(REPO / "config.example.toml", env)

    assert problems == []
    assert loaded is not None


# --- defaults and finding the file --------------------------------------------------------


def test_without_a_file_omen_serves_local_ollama() -> None:
    problems, loaded = check_config(None, {})

    assert problems == [] and loaded is not None
    config = loaded.config
    assert list(config.providers) == ["ollama"]
    ollama = config.providers["ollama"]
    assert ollama.is_local and ollama.models == []
    assert [e.url for e in ollama.endpoints] == ["http://localhost:11434"]
    assert config.containers == {} and config.auth.api_keys == []
    assert config.server.bind == "127.0.0.1:8080"
    assert config.server.max_body_size == 32 * 1024 * 1024
    assert config.server.keep_request_bodies == 7 * 86400


def test_config_is_found_by_flag_then_env_then_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = write(tmp_path, "", "flag.toml")
    from_env = write(tmp_path, "", "env.toml")
    monkeypatch.chdir(tmp_path)

    assert find_config_path(str(flag), {"OMEN_CONFIG": str(from_env)}) == flag
    assert find_config_path(None, {"OMEN_CONFIG": str(from_env)}) == from_env
    assert find_config_path(None, {}) is None
    local = write(tmp_path, "")
    assert find_config_path(None, {}) == local


def test_an_explicit_config_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        find_config_path(str(tmp_path / "nope.toml"), {})
    with pytest.raises(ConfigError, match="OMEN_CONFIG"):
        find_config_path(None, {"OMEN_CONFIG": str(tmp_path / "nope.toml")})


def test_toml_syntax_error_is_one_problem_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nbind = \n")

    problems, loaded = check_config(path, {})

    assert loaded is None
    assert len(problems) == 1
    assert problems[0].path == str(path)
    assert "line 2" in problems[0].message


def test_load_config_raises_with_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nbind = 'nope'\nlog_level = 'loud'\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path, {})

    assert {p.path for p in raised.value.problems} == {"server.bind", "server.log_level"}
    assert "server.bind: must be host:port" in str(raised.value)


def test_problem_prints_as_path_and_message() -> None:
    problem = Problem("providers.anthropic.timeout", "must not be negative")

    assert str(problem) == "providers.anthropic.timeout: must not be negative"
    assert problem.severity == "error"


# --- unknown keys and collecting every problem --------------------------------------------


def test_unknown_key_is_reported_with_its_path(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, "[providers.anthropic]\ntimout = '30s'\n")

    assert loaded is None
    assert errors(problems) == {
        "providers.anthropic.timout": "unknown key; did you mean 'timeout'?"
    }


def test_misspelt_table_is_reported(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, "[provider.ollama]\nmodels = []\n")

    assert errors(problems) == {"provider": "unknown key; did you mean 'providers'?"}


def test_unknown_key_in_a_list_of_tables_names_its_index(tmp_path: Path) -> None:
    text = "[auth]\napi_keys = [{ key = 'a' }, { key = 'b', scop = 'admin' }]\n"

    problems, _ = check(tmp_path, text)

    assert errors(problems) == {"auth.api_keys.1.scop": "unknown key; did you mean 'scope'?"}


def test_problems_list_every_error_at_once(tmp_path: Path) -> None:
    text = """
[server]
keep_samples = "forever"
[routing.intent_rules]
code = "olama"
[providers.ollama]
endpoints = ["http://ok:11434", "ftp://nope"]
timeout = -1
[containers.app]
allowed_providers = ["ollama", "anthropic"]
[containers.app.budget]
on_exceed = "block"
[containers.web]
quality_treshold = 0.5
"""
    problems, loaded = check(tmp_path, text)

    assert loaded is None
    assert set(errors(problems)) == {
        "server.keep_samples",
        "routing.intent_rules.code.provider",
        "providers.ollama.endpoints.1.url",
        "providers.ollama.timeout",
        "containers.app.allowed_providers.1",
        "containers.app.budget.on_exceed",
        "containers.web.quality_treshold",
    }
    found = errors(problems)
    assert found["containers.app.budget.on_exceed"] == (
        "must be 'deny', 'warn' or 'ignore' (got 'block')"
    )
    assert found["routing.intent_rules.code.provider"] == (
        "no provider named 'olama' is defined; did you mean 'ollama'?"
    )
    assert found["providers.ollama.timeout"] == "must not be negative"


def test_wrong_type_says_what_was_written(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, "[providers.ollama]\nmodels = 'llama3'\nendpoints = 5\n")

    assert errors(problems) == {
        "providers.ollama.models": "must be a valid list (got a string)",
        "providers.ollama.endpoints": "must be a valid list (got a number)",
    }


# --- secrets ------------------------------------------------------------------------------


def test_env_secret_is_resolved_and_hidden_in_repr(tmp_path: Path) -> None:
    text = '[providers.anthropic]\napi_key = "env:ANTHROPIC_KEY"\n'

    config = load(tmp_path, text, {"ANTHROPIC_KEY": "sk-ant-very-secret"})

    key = config.providers["anthropic"].api_key
    assert key is not None and key.get_secret_value() == "sk-ant-very-secret"
    for shown in (repr(config), str(config), config.model_dump_json(), str(config.model_dump())):
        assert "sk-ant-very-secret" not in shown


def test_missing_env_secret_is_a_warning_and_the_provider_is_kept(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, '[providers.anthropic]\napi_key = "env:NOT_SET"\n')

    assert loaded is not None
    assert loaded.config.providers["anthropic"].api_key is None
    assert loaded.warnings == problems
    assert warnings(problems) == {
        "providers.anthropic.api_key": "environment variable NOT_SET is not set;"
        " provider has no API key"
    }


def test_empty_env_variable_counts_as_unset(tmp_path: Path) -> None:
    text = "[auth]\napi_keys = [{ key = 'env:ADMIN', scope = 'admin' }]\n"

    problems, loaded = check(tmp_path, text, {"ADMIN": ""})

    assert loaded is not None and loaded.config.auth.api_keys[0].key is None
    assert warnings(problems)["auth.api_keys.0.key"].endswith("key ignored")


def test_unset_env_for_an_ordinary_value_falls_back_to_the_default(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, '[server]\nredis_url = "env:REDIS_URL"\n')

    assert loaded is not None and loaded.config.server.redis_url == ""
    assert "server.redis_url" in warnings(problems)


def test_secret_never_appears_in_a_problem(tmp_path: Path) -> None:
    text = """
[server]
log_level = "env:LEAKED"
[auth]
api_keys = [{ key = "env:SHARED" }]
[containers.app]
api_key = "env:SHARED"
"""
    env = {"LEAKED": "sk-leaked-value", "SHARED": "sk-shared-value"}

    problems, _ = check(tmp_path, text, env)

    assert errors(problems) == {
        "server.log_level": "must be one of debug, info, warning, error, critical",
        "containers.app.api_key": "same key as auth.api_keys.0.key",
    }
    text_of_problems = " ".join(str(p) for p in problems)
    assert "sk-leaked-value" not in text_of_problems and "sk-shared" not in text_of_problems


def test_provider_key_defaults_to_omen_name_api_key(tmp_path: Path) -> None:
    text = "[providers.anthropic]\nmodels = []\n[providers.openai]\nmodels = []\n"

    problems, loaded = check(tmp_path, text, {"OMEN_ANTHROPIC_API_KEY": "sk-from-compose"})

    assert loaded is not None
    key = loaded.config.providers["anthropic"].api_key
    assert key is not None and key.get_secret_value() == "sk-from-compose"
    assert "OMEN_OPENAI_API_KEY" in warnings(problems)["providers.openai.api_key"]


# --- environment overrides ----------------------------------------------------------------


def test_env_overrides_apply_after_the_file(tmp_path: Path) -> None:
    text = "[server]\nbind = '127.0.0.1:1'\nlog_level = 'debug'\n[routing]\nprefer_local = true\n"
    env = {
        "OMEN_BIND": "0.0.0.0:8080",
        "OMEN_DATABASE": "/var/lib/omen/omen.db",
        "OMEN_REDIS_URL": "redis://redis:6379",
        "OMEN_LOG_LEVEL": "warning",
        "OMEN_LOG_FORMAT": "json",
        "OMEN_SERVER__KEEP_REQUEST_BODIES": "1d",
        "OMEN_ROUTING__PREFER_LOCAL": "false",
        "OMEN_ROUTING__INTENT_RULES__CODE": "ollama",
    }

    config = load(tmp_path, text, env)

    server = config.server
    assert (server.host, server.port) == ("0.0.0.0", 8080)
    assert server.database == Path("/var/lib/omen/omen.db")
    assert server.redis_url == "redis://redis:6379"
    assert (server.log_level, server.log_format) == ("warning", "json")
    assert server.keep_request_bodies == 86400
    assert config.routing.prefer_local is False
    assert config.routing.intent_rules["code"].provider == "ollama"


def test_ollama_endpoints_env_creates_the_ollama_provider(tmp_path: Path) -> None:
    text = "[providers.anthropic]\napi_key = 'sk-test'\n"
    env = {"OMEN_OLLAMA_ENDPOINTS": "http://ollama:11434, http://gpu2:11434/"}

    config = load(tmp_path, text, env)

    ollama = config.providers["ollama"]
    assert [e.url for e in ollama.endpoints] == ["http://ollama:11434", "http://gpu2:11434"]
    assert ollama.base_url == "http://ollama:11434"


def test_bad_env_override_names_the_variable(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, "", {"OMEN_SERVER__KEEP_REQUEST_BODIES": "forever"})

    message = errors(problems)["server.keep_request_bodies"]
    assert message.startswith("not a duration: 'forever'")
    assert message.endswith("(from $OMEN_SERVER__KEEP_REQUEST_BODIES)")


def test_unrelated_omen_variables_are_ignored(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, "", {"OMEN_CONFIG": "x", "OMEN_SOMETHING": "y"})

    assert problems == [] and loaded is not None


# --- units --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1.5s", 1.5),
        ("0", 0),
        ("45", 45),
        (45, 45),
        (0.5, 0.5),
    ],
)
def test_durations_are_read_as_seconds(written: object, seconds: float) -> None:
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("written", ["", "5x", "s", "-5s", -1, "1h 30", "30S", True, "nan", [1]])
def test_bad_durations_are_refused(written: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(written)


@pytest.mark.parametrize(
    ("written", "dollars"), [("10.00", 10.0), ("$2.50", 2.5), (10, 10.0), (0.003, 0.003), ("0", 0)]
)
def test_money_is_read_as_dollars(written: object, dollars: float) -> None:
    assert parse_money(written) == dollars


@pytest.mark.parametrize("written", ["-1", -0.01, "ten", "", "NaN", "Infinity", False, "1,000"])
def test_bad_money_is_refused(written: object) -> None:
    with pytest.raises(ValueError):
        parse_money(written)


@pytest.mark.parametrize(
    ("written", "size"),
    [
        ("32MiB", 32 * 1024**2),
        ("10MB", 10_000_000),
        ("512KiB", 512 * 1024),
        ("1GiB", 1024**3),
        ("100B", 100),
        ("1.5KiB", 1536),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_sizes_are_read_as_bytes(written: object, size: int) -> None:
    assert parse_size(written) == size


@pytest.mark.parametrize("written", ["-1", -5, "32MiBs", "lots", "", 1.5, "10 furlongs", True])
def test_bad_sizes_are_refused(written: object) -> None:
    with pytest.raises(ValueError):
        parse_size(written)


def test_units_are_read_inside_the_file(tmp_path: Path) -> None:
    text = """
[server]
keep_request_bodies = "0"
max_body_size = "1MiB"
writer_flush_interval = "250ms"
[providers.anthropic]
api_key = "sk-test"
timeout = "2m"
cost_per_1k_input_tokens = "0.003"
cost_per_1k_output_tokens = 0.015
"""
    config = load(tmp_path, text)

    assert config.server.keep_request_bodies == 0
    assert config.server.max_body_size == 1024 * 1024
    assert config.server.writer_flush_interval == 0.25
    anthropic = config.providers["anthropic"]
    assert anthropic.timeout == 120
    assert anthropic.input_cost_per_token() == pytest.approx(0.000003)
    assert anthropic.output_cost_per_token() == pytest.approx(0.000015)


# --- server -------------------------------------------------------------------------------


def test_ipv6_bind_is_accepted(tmp_path: Path) -> None:
    config = load(tmp_path, '[server]\nbind = "[::1]:9000"\n')

    assert (config.server.host, config.server.port) == ("::1", 9000)


@pytest.mark.parametrize(
    "bind", ["8080", "::1:8080", "localhost:99999", "[::1]", "[nope]:80", "host:", ":80"]
)
def test_bad_bind_is_refused(tmp_path: Path, bind: str) -> None:
    problems, _ = check(tmp_path, f'[server]\nbind = "{bind}"\n')

    assert "server.bind" in errors(problems)


def test_relative_database_is_next_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", '[server]\ndatabase = "data/omen.db"\n')

    config = load_config(path, {}).config

    assert config.server.database == tmp_path / "etc" / "data" / "omen.db"


def test_database_without_a_file_or_from_env_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", "")

    assert load_config(None, {}).config.server.database == tmp_path / "omen.db"
    from_env = load_config(path, {"OMEN_DATABASE": "x.db"}).config.server.database
    assert from_env == tmp_path / "x.db"


def test_time_zone_and_log_level_are_checked(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, '[server]\ntime_zone = "Mars/Olympus"\nlog_level = "WARN"\n')

    assert list(errors(problems)) == ["server.time_zone"]
    config = load(tmp_path, '[server]\ntime_zone = "Europe/Berlin"\nlog_level = "WARN"\n')
    assert config.server.log_level == "warning"


def test_open_bind_without_any_key_is_warned_about(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, '[server]\nbind = "0.0.0.0:8080"\n')

    assert loaded is not None
    assert "server.bind" in warnings(problems)


# --- providers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base_url"),
    [
        ("ollama", "http://localhost:11434"),
        ("openai", "https://api.openai.com/v1"),
        ("xai", "https://api.x.ai/v1"),
        ("anthropic", "https://api.anthropic.com"),
        ("gemini", "https://generativelanguage.googleapis.com"),
    ],
)
def test_provider_type_and_base_url_default_from_the_table_name(
    tmp_path: Path, name: str, base_url: str
) -> None:
    provider = load(tmp_path, f"[providers.{name}]\nmodels = []\n").providers[name]

    assert provider.type == name and provider.name == name
    assert provider.base_url == base_url
    assert [e.url for e in provider.endpoints] == [base_url]
    assert provider.quality == (0.6 if name == "ollama" else 0.9)


def test_other_provider_names_need_a_type(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, "[providers.local2]\nmodels = []\n")

    assert errors(problems)["providers.local2.type"].startswith("required")
    provider = load(tmp_path, '[providers.local2]\ntype = "ollama"\n').providers["local2"]
    assert provider.is_local and provider.quality == 0.6


def test_prices_take_the_most_specific_key() -> None:
    def provider(**prices: float) -> ProviderConfig:
        return ProviderConfig.model_validate({"name": "openai", **prices})

    assert provider().input_cost_per_token() == 0.0
    assert provider(cost_per_token=0.5).output_cost_per_token() == 0.5
    both = provider(cost_per_token=0.5, cost_per_1k_tokens=2)
    assert both.input_cost_per_token() == 0.002
    specific = provider(cost_per_1k_tokens=2, cost_per_1k_input_tokens=1)
    assert (specific.input_cost_per_token(), specific.output_cost_per_token()) == (0.001, 0.002)


def test_endpoints_accept_strings_and_tables(tmp_path: Path) -> None:
    text = """
[providers.ollama]
endpoints = [
  "http://gpu-a:11434/",
  { url = "http://gpu-b:11434", name = "b", gpu_metrics_url = "http://gpu-b:9400/metrics" },
  "http://[fd00::1]:11434",
]
"""
    endpoints = load(tmp_path, text).providers["ollama"].endpoints

    assert [(e.url, e.name) for e in endpoints] == [
        ("http://gpu-a:11434", "gpu-a:11434"),
        ("http://gpu-b:11434", "b"),
        ("http://[fd00::1]:11434", "[fd00::1]:11434"),
    ]
    assert endpoints[1].gpu_metrics_url == "http://gpu-b:9400/metrics"


def test_duplicate_endpoint_names_are_refused(tmp_path: Path) -> None:
    text = '[providers.ollama]\nendpoints = ["http://a:1", { url = "http://b:1", name = "a:1" }]\n'

    problems, _ = check(tmp_path, text)

    assert errors(problems) == {
        "providers.ollama.endpoints.1": "same endpoint name as providers.ollama.endpoints.0"
    }


def test_azure_needs_a_base_url(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, '[providers.azure]\napi_key = "k"\n')

    assert errors(problems) == {"providers.azure.base_url": "azure needs the resource's base_url"}
    text = """
[providers.azure]
api_key = "k"
base_url = "https://res.openai.azure.com/"
deployments = { "gpt-4o" = "prod" }
"""
    azure = load(tmp_path, text).providers["azure"]
    assert azure.base_url == "https://res.openai.azure.com"
    assert azure.api_version == "2024-10-21" and azure.deployments == {"gpt-4o": "prod"}


def test_bedrock_region_comes_from_the_file_or_aws_region(tmp_path: Path) -> None:
    problems, loaded = check(tmp_path, "[providers.bedrock]\nmodels = []\n")
    assert loaded is not None and "providers.bedrock.region" in warnings(problems)

    bedrock = load(tmp_path, "[providers.bedrock]\n", {"AWS_REGION": "eu-west-1"}).providers[
        "bedrock"
    ]
    assert bedrock.region == "eu-west-1"
    assert bedrock.base_url == "https://bedrock-runtime.eu-west-1.amazonaws.com"


def test_provider_name_key_must_match_the_table(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, '[providers.ollama]\nname = "other"\n')

    assert errors(problems) == {
        "providers.ollama.name": "remove this key: the name is the table's name, 'ollama'",
    }


# --- routing ------------------------------------------------------------------------------


def test_intent_rules_accept_a_provider_name_or_a_table(tmp_path: Path) -> None:
    text = '[routing.intent_rules]\ncode = "ollama"\nchat = { provider = "ollama", model = "m" }\n'

    rules = load(tmp_path, text).routing.intent_rules

    assert (rules["code"].provider, rules["code"].model) == ("ollama", None)
    assert (rules["chat"].provider, rules["chat"].model) == ("ollama", "m")


def test_weights_may_not_all_be_zero(tmp_path: Path) -> None:
    text = "[routing]\ncost_weight = 0\nlatency_weight = 0\nquality_weight = 0\n"

    problems, _ = check(tmp_path, text)

    assert list(errors(problems)) == ["routing"]


def test_routing_ranges_are_checked(tmp_path: Path) -> None:
    text = "[routing]\nquality_threshold = 1.5\ncost_weight = -1\nmax_attempts = 0\n"

    problems, _ = check(tmp_path, text)

    assert set(errors(problems)) == {
        "routing.quality_threshold",
        "routing.cost_weight",
        "routing.max_attempts",
    }


def test_intent_rule_model_missing_from_a_listed_provider_is_a_warning(tmp_path: Path) -> None:
    text = (
        '[routing.intent_rules]\ncode = { provider = "ollama", model = "x" }\n'
        '[providers.ollama]\nmodels = ["y"]\n'
    )
    problems, loaded = check(tmp_path, text)

    assert loaded is not None
    assert "routing.intent_rules.code.model" in warnings(problems)


# --- containers ---------------------------------------------------------------------------


def test_boltfile_container_keys_are_accepted(tmp_path: Path) -> None:
    text = """
[containers.game]
enabled = true
router_strategy = "latency-first"
allowed_providers = ["ollama"]
max_requests_per_hour = 5000
budget_limit = "10.00"
endpoint = "http://shared-omen:8080"
latency_target_ms = 100
[containers.game.routing]
intents.game_assist = "ollama"
intents.code = { provider = "ollama", model = "deepseek-coder:6.7b" }
"""
    problems, loaded = check(tmp_path, text)

    assert loaded is not None, problems
    game = loaded.config.containers["game"]
    assert game.quotas.max_requests_per_hour == 5000
    assert game.budget.daily == 10.0
    assert game.router_strategy == "latency-first"
    assert game.routing.intents["code"].model == "deepseek-coder:6.7b"
    assert list(warnings(problems)) == ["containers.game.endpoint"]


def test_budget_limit_does_not_override_budget_daily(tmp_path: Path) -> None:
    text = '[containers.app]\nbudget_limit = "10.00"\n[containers.app.budget]\ndaily = 5\n'

    problems, loaded = check(tmp_path, text)

    assert loaded is not None and loaded.config.containers["app"].budget.daily == 5
    assert "containers.app.budget_limit" in warnings(problems)


def test_bad_budget_limit_is_reported_where_it_was_written(tmp_path: Path) -> None:
    problems, _ = check(tmp_path, '[containers.app]\nbudget_limit = "-3"\n')

    assert errors(problems) == {"containers.app.budget_limit": "must not be negative"}


def test_container_references_must_name_defined_providers(tmp_path: Path) -> None:
    text = """
[containers.app]
allowed_providers = ["ollama", "anthropic"]
[containers.app.routing]
intents.code = "gemini"
[containers.web]
allowed_providers = ["ollama"]
[containers.web.routing]
intents.code = "ollama"
intents.chat = { provider = "openai" }
[providers.ollama]
[providers.openai]
api_key = "sk"
"""
    problems, _ = check(tmp_path, text)

    assert errors(problems) == {
        "containers.app.allowed_providers.1": "no provider named 'anthropic' is defined",
        "containers.app.routing.intents.code.provider": "no provider named 'gemini' is defined",
        "containers.web.routing.intents.chat.provider": (
            "'openai' is not in this container's allowed_providers"
        ),
    }


def test_two_containers_may_not_share_a_key(tmp_path: Path) -> None:
    text = '[containers.a]\napi_key = "env:K"\n[containers.b]\napi_key = "env:K"\n'

    problems, _ = check(tmp_path, text, {"K": "same-key"})

    assert errors(problems) == {"containers.b.api_key": "same key as containers.a.api_key"}


def test_container_key_may_not_be_an_auth_key(tmp_path: Path) -> None:
    text = """
[auth]
api_keys = [{ key = "env:A", scope = "admin" }, { key = "env:A" }]
[containers.app]
api_key = "env:A"
"""
    problems, _ = check(tmp_path, text, {"A": "one-key"})

    assert errors(problems) == {
        "auth.api_keys.1.key": "same key as auth.api_keys.0.key",
        "containers.app.api_key": "same key as auth.api_keys.0.key",
    }


def test_auth_key_container_must_exist(tmp_path: Path) -> None:
    text = '[auth]\napi_keys = [{ key = "k", container = "ap" }]\n[containers.app]\n'

    problems, _ = check(tmp_path, text)

    assert errors(problems) == {
        "auth.api_keys.0.container": "no container named 'ap' is defined; did you mean 'app'?"
    }


def test_container_budget_and_limits_are_checked(tmp_path: Path) -> None:
    text = """
[containers.app.budget]
daily = "10.00"
alert_at_percent = 120
alert_webhook = "not a url"
[containers.app.rate_limit]
requests_per_second = 0
burst = 20
"""
    problems, _ = check(tmp_path, text)

    assert set(errors(problems)) == {
        "containers.app.budget.alert_at_percent",
        "containers.app.budget.alert_webhook",
        "containers.app.rate_limit.requests_per_second",
    }


def test_container_weights_may_not_all_be_zero(tmp_path: Path) -> None:
    text = "[containers.app]\ncost_weight = 0\nlatency_weight = 0\nquality_weight = 0\n"

    problems, _ = check(tmp_path, text)

    assert list(errors(problems)) == ["containers.app"]


def test_defaults_are_not_shared_between_containers() -> None:
    first = ContainerConfig(name="a")
    second = ContainerConfig(name="b")
    first.budget.daily = 1.0

    assert second.budget.daily is None


def test_sign_in_example_checks_clean_and_sets_both_sign_ins(tmp_path: Path) -> None:
    example = (REPO / "config.signin.example.toml").read_text()
    path = tmp_path / "omen.toml"
    path.write_text("[auth]\napi_keys = []\n\n" + example)
    problems, loaded = check_config(path, {})

    assert errors(problems) == {}
    assert loaded is not None
    assert loaded.config.auth.oidc is not None and loaded.config.auth.github is not None


def test_the_readme_example_sets_no_sign_in() -> None:
    # The README's first command runs it: a keyless loopback daemon whose console may act.
    loaded = check_config(REPO / "config.example.toml", {})[1]
    assert loaded is not None
    assert loaded.config.auth.oidc is None and loaded.config.auth.github is None
