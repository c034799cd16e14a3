"""What a valid Omen configuration is: one pydantic model per TOML table, with its defaults."""

import difflib
import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from omen.config.units import Duration, Money, Size

ProviderType = Literal["ollama", "openai", "anthropic", "gemini", "xai", "azure", "bedrock"]
PROVIDER_TYPES: tuple[str, ...] = get_args(ProviderType)
Strategy = Literal["cost-optimized", "latency-first", "balanced"]
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# base_url as each provider's official SDK spells it; azure has no default (it is per resource).
DEFAULT_BASE_URLS: dict[str, str] = {
    "ollama": "http://localhost:11434",
    "openai": "https://api.openai.com/v1",
    "xai": "https://api.x.ai/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "bedrock": "https://bedrock-runtime.{region}.amazonaws.com",
}

_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
DAY = 86400.0


class Section(BaseModel):
    """A TOML table: unknown keys are errors, because a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid")


def split_bind(bind: str) -> tuple[str, int]:
    """(host, port) from "host:port" or "[ipv6]:port"; the host comes back without brackets."""
    if bind.startswith("["):
        host, sep, port = bind[1:].partition("]:")
        if not sep:
            raise ValueError("write an IPv6 address in brackets with a port, e.g. [::1]:8080")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port = bind.rpartition(":")
        if not sep:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        if ":" in host:
            raise ValueError("write an IPv6 address in brackets, e.g. [::1]:8080")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name or address")
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{port!r} is not a port (0-65535)")
    return host, int(port)


def check_http_url(url: str) -> str:
    """The url without a trailing slash, after checking it is http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


class ServerConfig(Section):
    bind: str = "127.0.0.1:8080"
    # A SQLite file (a Path), or the PostgreSQL database a fleet of instances shares (a
    # postgresql:// URL, kept as the string it is).
    database: Path | str = Path("omen.db")
    # This instance's name on every row it writes and in the fleet's console (a fleet needs
    # one name per instance); default: the host name.
    instance: str = Field(default_factory=socket.gethostname, min_length=1, max_length=128)
    # How often each instance of a fleet (a PostgreSQL store) takes the drains and budget
    # overrides made through the others.
    fleet_refresh: Duration = Field(default=2.0, gt=0)
    redis_url: str = ""
    # Every Redis key Omen writes starts with this: instances sharing limits and sessions use
    # one prefix; two fleets (or two test runs) on one Redis use two.
    redis_prefix: str = Field(default="omen", min_length=1, max_length=64, pattern=r"^[\w.:-]+$")
    redis_fail_open: bool = False
    keep_request_bodies: Duration = 7 * DAY
    keep_samples: Duration = 7 * DAY
    max_body_size: Size = Field(default=32 * 1024 * 1024, gt=0)
    log_format: Literal["json", "text"] = "text"
    log_level: str = "info"
    writer_flush_interval: Duration = Field(default=0.1, gt=0)
    # When the store cannot write: refuse new requests (503) until it can, or serve them and
    # keep their rows in a spill file (bounded; past it, refuse), replayed once it can.
    on_store_failure: Literal["refuse", "spill"] = "refuse"
    spill_path: Path | None = None  # default: next to the database; relative: to its folder
    spill_max_size: Size = Field(default=256 * 1024 * 1024, gt=0)
    time_zone: str = "UTC"
    default_max_tokens: int = Field(default=1024, ge=1)

    @field_validator("instance", mode="before")
    @classmethod
    def _instance_defaults_to_host(cls, value: object) -> object:
        return socket.gethostname() if value == "" else value  # SPEC: "" means the host name

    @field_validator("database", mode="before")
    @classmethod
    def _database_is_path_or_url(cls, value: object) -> object:
        if isinstance(value, str) and "://" in value:
            if not value.startswith(("postgresql://", "postgres://")):
                raise ValueError(
                    f"{value.split('://')[0]}:// is not a store; use a SQLite path or a "
                    "postgresql:// URL"
                )
            return value
        return Path(value) if isinstance(value, str) else value

    @field_validator("bind")
    @classmethod
    def _bind_is_host_port(cls, value: str) -> str:
        split_bind(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = {"warn": "warning"}.get(value.lower(), value.lower())
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (write e.g. UTC, Europe/Berlin)"
            ) from None
        return value

    @property
    def host(self) -> str:
        return split_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return split_bind(self.bind)[1]


class ApiKeyConfig(Section):
    key: SecretStr | None  # None when its env: variable is unset; such a key admits nobody
    scope: Literal["admin", "user"] = "user"
    name: str | None = None
    container: str | None = None


def check_trusted_url(url: str, what: str) -> str:
    """The url without a trailing slash, after checking it is https (http only on loopback):
    what it answers decides who may act as an operator."""
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an https:// URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{what} must be https:// (http:// only on loopback, for tests)")
    return url.rstrip("/")


class OidcConfig(Section):
    """[auth.oidc]: operators sign in with their identity provider; its access tokens (JWTs)
    are accepted on the admin API, with a role from the token's groups."""

    issuer: str  # exactly the `iss` of its tokens; discovery at {issuer}/.well-known/...
    client_id: str = ""  # the public client `omen login` signs in with
    audience: str = ""  # the `aud` access tokens must carry; default: client_id
    scopes: list[str] = []  # asked for by `omen login` besides openid, profile, email
    groups_claim: str = "groups"  # a claim name, or a dotted path (realm_access.roles)
    admin_groups: list[str] = []  # may drain, change budgets, replay, manage keys
    viewer_groups: list[str] = []  # GET /admin/* only
    leeway: Duration = Field(default=60.0, ge=0, le=600)  # clock skew allowed on exp/nbf/iat
    jwks_cache: Duration = Field(default=3600.0, gt=0)  # how long the issuer's keys are trusted
    # An unknown key id asks the issuer again at most this often (key rotation vs a flood).
    jwks_refetch_interval: Duration = Field(default=30.0, ge=0)
    timeout: Duration = Field(default=5.0, gt=0)  # a discovery or JWKS fetch

    @field_validator("issuer")
    @classmethod
    def _trusted_issuer(cls, value: str) -> str:
        check_trusted_url(value, "the issuer")
        return value  # as written: tokens' `iss` must match it exactly, trailing slash and all

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> "OidcConfig":
        if not self.audience:
            self.audience = self.client_id
        if not self.audience:
            raise ValueError("set audience (the `aud` of access tokens) or client_id")
        if not self.groups_claim:
            raise ValueError("groups_claim must not be empty")
        if not (self.admin_groups or self.viewer_groups):
            raise ValueError("admin_groups and viewer_groups are both empty: nobody could sign in")
        return self


class GitHubConfig(Section):
    """[auth.github]: operators sign in with GitHub (OAuth device flow); a GitHub token is
    accepted on the admin API with a role from the user's teams in `org`."""

    org: str = Field(min_length=1, max_length=100)
    client_id: str = ""  # the OAuth app `omen login` signs in with (device flow enabled)
    admin_teams: list[str] = []  # team slugs
    viewer_teams: list[str] = []
    api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    cache_ttl: Duration = Field(default=300.0, gt=0)  # how long a token's verdict is kept
    timeout: Duration = Field(default=5.0, gt=0)

    @field_validator("api_url")
    @classmethod
    def _trusted_api(cls, value: str) -> str:
        return check_trusted_url(value, "api_url")

    @model_validator(mode="after")
    def _someone_can_sign_in(self) -> "GitHubConfig":
        if not (self.admin_teams or self.viewer_teams):
            raise ValueError("admin_teams and viewer_teams are both empty: nobody could sign in")
        return self


class AuthConfig(Section):
    api_keys: list[ApiKeyConfig] = []
    oidc: OidcConfig | None = None
    github: GitHubConfig | None = None


class IntentRule(Section):
    provider: str
    model: str | None = None
    strict: bool = False  # only this provider, never the others (a rule is a preference)

    @model_validator(mode="before")
    @classmethod
    def _accept_provider_name(cls, data: Any) -> Any:
        # The Boltfile writes `intents.code = "ollama"`; the omen.toml form is a table.
        return {"provider": data} if isinstance(data, str) else data


_INTENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
STRUCTURAL_INTENTS = ("vision", "agent")  # decided by the request's shape, not its words


class CustomIntent(Section):
    """An intent the operator teaches by example (`[routing.intents.refactor]`): a prompt
    that names one of the keywords, or reads like one of the examples, has this intent."""

    examples: list[str] = []
    keywords: list[str] = []

    @model_validator(mode="after")
    def _something_to_learn(self) -> "CustomIntent":
        self.examples = [e.strip() for e in self.examples if e.strip()]
        self.keywords = [k.strip().lower() for k in self.keywords if k.strip()]
        if not self.examples and not self.keywords:
            raise ValueError("give at least one of examples or keywords")
        return self


class RoutingConfig(Section):
    default_strategy: Strategy = "balanced"
    prefer_local: bool = True
    quality_threshold: float = Field(default=0.8, ge=0, le=1)
    cost_weight: float = Field(default=0.3, ge=0)
    latency_weight: float = Field(default=0.4, ge=0)
    quality_weight: float = Field(default=0.3, ge=0)
    intent_rules: dict[str, IntentRule] = {}
    max_attempts: int = Field(default=3, ge=1)
    failover_timeout: Duration = Field(default=30.0, gt=0)
    cooldown: Duration = 30.0
    # How long an agent session keeps its model and endpoint after its last request; "0" off.
    session_ttl: Duration = Field(default=7200.0, ge=0)
    # Custom intents taught by examples/keywords; route them with intent_rules like any other.
    intents: dict[str, CustomIntent] = {}
    # How far a prompt's difficulty moves the quality an option must reach (0: off).
    difficulty_weight: float = Field(default=0.2, ge=0, le=0.5)
    # Learning from outcomes: reorder options within the quality threshold by what happened
    # after earlier decisions (errors, latency, escalations, feedback); `explore` is the share
    # of requests that try another option meeting the threshold.
    adaptive: bool = False
    explore: float = Field(default=0.05, ge=0, le=0.5)

    @field_validator("intents")
    @classmethod
    def _intent_names(cls, value: dict[str, CustomIntent]) -> dict[str, CustomIntent]:
        for name in value:
            if not _INTENT_NAME.match(name):
                raise ValueError(f"intent name {name!r}: lower-case letters, digits, - and _")
            if name in STRUCTURAL_INTENTS:
                raise ValueError(f"intent {name!r} is decided by the request's shape")
        return value


class EndpointConfig(Section):
    url: str
    name: str = ""  # defaults to the url's host:port; drain and the console name endpoints by it
    gpu_metrics_url: str | None = None
    # Hybrid mode: only this container's requests go here (a box beside it); None: everyone's.
    container: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_url(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data

    @field_validator("url", "gpu_metrics_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @model_validator(mode="after")
    def _name_from_url(self) -> "EndpointConfig":
        if not self.name:
            parts = urlsplit(self.url)
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            self.name = f"{host}:{parts.port}" if parts.port else host
        return self


CACHE_SHARES = {
    "anthropic": (0.1, 1.25),
    "bedrock": (0.1, 1.25),
    "openai": (0.5, 1.0),
    "azure": (0.5, 1.0),
    "xai": (0.5, 1.0),
    "gemini": (0.25, 1.0),
    "ollama": (1.0, 1.0),
}


class ModelInfoConfig(Section):
    """What Omen should know about one model beyond its provider's defaults (all optional)."""

    vision: bool | None = None
    tools: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    quality: float | None = Field(default=None, ge=0, le=1)
    cost_per_1k_input_tokens: Money | None = None
    cost_per_1k_output_tokens: Money | None = None
    cost_per_1k_cache_read_tokens: Money | None = None
    cost_per_1k_cache_write_tokens: Money | None = None


# What each provider's own API serves besides what its adapter translates to. Azure and
# OpenAI-compatible servers differ by deployment, so Responses there is opted into.
DEFAULT_PASSTHROUGH: dict[str, frozenset[str]] = {
    "openai": frozenset({"chat", "responses"}),
    "xai": frozenset({"chat", "responses"}),
    "azure": frozenset({"chat"}),
    "anthropic": frozenset({"messages"}),
    "bedrock": frozenset({"messages"}),  # Claude models, through InvokeModel
}


class ProviderConfig(Section):
    name: str
    type: ProviderType
    enabled: bool = True
    api_key: SecretStr | None = None
    base_url: str | None = None
    endpoints: list[EndpointConfig] = []
    models: list[str] = []  # empty: discovered at runtime (Ollama /api/tags)
    embedding_models: list[str] = []
    load_balancing: Literal["round-robin", "least-loaded", "random"] = "least-loaded"
    health_check_interval: Duration = Field(default=30.0, gt=0)
    timeout: Duration = Field(default=60.0, gt=0)  # a whole non-streamed call
    connect_timeout: Duration = Field(default=5.0, gt=0)
    # Streams: to the first event (unset: `timeout`), the longest silence after it, in all.
    first_byte_timeout: Duration | None = Field(default=None, gt=0)
    idle_timeout: Duration = Field(default=60.0, gt=0)
    max_stream_duration: Duration = Field(default=600.0, gt=0)
    max_response_size: Size = Field(default=64 * 1024 * 1024, gt=0)  # a body, or a whole stream
    max_connections: int = Field(default=256, gt=0)  # pooled connections per endpoint
    # TLS to the upstream: PEM files. ca_bundle replaces the default trust store; client_cert
    # holds the certificate (and its key, unless client_key names another file).
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    cost_per_token: Money | None = None
    cost_per_1k_tokens: Money | None = None
    cost_per_1k_input_tokens: Money | None = None
    cost_per_1k_output_tokens: Money | None = None
    # Prompt caching: reads and writes of cached input. Unset: a share of the input price
    # typical of the provider (Anthropic/Bedrock 10% / 125%, OpenAI-format 50% / 100%,
    # Gemini 25% / 100%, Ollama free).
    cost_per_1k_cache_read_tokens: Money | None = None
    cost_per_1k_cache_write_tokens: Money | None = None
    rate_limit: float | None = Field(default=None, gt=0)
    latency_target_ms: float | None = Field(default=None, ge=0)
    quality: float = Field(default=0.9, ge=0, le=1)
    api_version: str = "2024-10-21"
    deployments: dict[str, str] = {}
    region: str | None = None
    model_info: dict[str, ModelInfoConfig] = {}
    # Inbound formats forwarded to this upstream unchanged (model aside) instead of being
    # translated. Unset: what the provider's own API serves (see `passthrough_formats`).
    passthrough: list[Literal["chat", "messages", "responses"]] | None = None

    @property
    def passthrough_formats(self) -> frozenset[str]:
        if self.passthrough is not None:
            return frozenset(self.passthrough)
        return DEFAULT_PASSTHROUGH.get(self.type, frozenset())

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_name(cls, data: Any) -> Any:
        # [providers.anthropic] needs no `type`; a local model is rated lower by default.
        if isinstance(data, dict):
            data = dict(data)
            if "type" not in data and data.get("name") in PROVIDER_TYPES:
                data["type"] = data["name"]
            if "quality" not in data and data.get("type") == "ollama":
                data["quality"] = 0.6
        return data

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)

    @model_validator(mode="after")
    def _default_urls(self) -> "ProviderConfig":
        if self.base_url is None:
            if self.endpoints:
                self.base_url = self.endpoints[0].url
            elif self.type == "bedrock":
                if self.region:
                    self.base_url = DEFAULT_BASE_URLS["bedrock"].format(region=self.region)
            else:
                self.base_url = DEFAULT_BASE_URLS.get(self.type)
        if not self.endpoints and self.base_url is not None:
            self.endpoints = [EndpointConfig(url=self.base_url)]
        return self

    @property
    def is_local(self) -> bool:
        return self.type == "ollama"

    def input_cost_per_token(self) -> float:
        return self._cost_per_token(self.cost_per_1k_input_tokens)

    def output_cost_per_token(self) -> float:
        return self._cost_per_token(self.cost_per_1k_output_tokens)

    def cache_cost_per_token(self) -> tuple[float, float]:
        """(cache read, cache write) USD per token."""
        read_share, write_share = CACHE_SHARES.get(self.type, (1.0, 1.0))
        per_in = self.input_cost_per_token()
        read = self.cost_per_1k_cache_read_tokens
        write = self.cost_per_1k_cache_write_tokens
        return (
            per_in * read_share if read is None else read / 1000,
            per_in * write_share if write is None else write / 1000,
        )

    def _cost_per_token(self, specific_per_1k: float | None) -> float:
        if specific_per_1k is not None:
            return specific_per_1k / 1000
        if self.cost_per_1k_tokens is not None:
            return self.cost_per_1k_tokens / 1000
        return self.cost_per_token or 0.0


class QuotaConfig(Section):
    max_requests_per_hour: int | None = Field(default=None, ge=0)
    max_requests_per_day: int | None = Field(default=None, ge=0)
    max_tokens_per_day: int | None = Field(default=None, ge=0)
    max_cost_per_day: Money | None = None


class BudgetConfig(Section):
    daily: Money | None = None
    weekly: Money | None = None
    monthly: Money | None = None
    alert_at_percent: float | None = Field(default=None, ge=0, le=100)
    alert_webhook: str | None = None
    on_exceed: Literal["deny", "warn", "ignore"] = "deny"

    @field_validator("alert_webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class RateLimitConfig(Section):
    requests_per_second: float | None = Field(default=None, gt=0)
    burst: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class ContainerRouting(Section):
    intents: dict[str, IntentRule] = {}


class ContainerConfig(Section):
    """One tenant; the keys are those of a Boltfile's [services.NAME.omen]."""

    name: str
    api_key: SecretStr | None = None
    enabled: bool = True
    router_strategy: Strategy | None = None
    prefer_local: bool | None = None
    allowed_providers: list[str] | None = None
    quality_threshold: float | None = Field(default=None, ge=0, le=1)
    # The seed's strategy examples set these per container; None means the [routing] value.
    cost_weight: float | None = Field(default=None, ge=0)
    latency_weight: float | None = Field(default=None, ge=0)
    quality_weight: float | None = Field(default=None, ge=0)
    latency_target_ms: float | None = Field(default=None, ge=0)
    # Hybrid mode (the seed's Boltfile key): an Ollama only this container uses. It joins
    # [providers.ollama] as the endpoint `local-NAME`, reserved for this container.
    local_endpoint: str | None = None
    quotas: QuotaConfig = QuotaConfig()
    budget: BudgetConfig = BudgetConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    routing: ContainerRouting = ContainerRouting()

    @field_validator("local_endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


LOCAL_PROVIDER = "ollama"  # the provider a container's local_endpoint joins


def local_endpoint_name(container: str) -> str:
    """The endpoint name of a container's local_endpoint: what drains and the console use."""
    return f"local-{container}"


def _default_providers() -> dict[str, ProviderConfig]:
    # With nothing configured, Omen serves whatever a local Ollama has.
    return {"ollama": ProviderConfig(name="ollama", type="ollama")}


class OmenConfig(Section):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    routing: RoutingConfig = RoutingConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)
    containers: dict[str, ContainerConfig] = {}

    @model_validator(mode="before")
    @classmethod
    def _names_from_table_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for section in ("providers", "containers"):
            tables = data.get(section)
            if isinstance(tables, dict):
                data[section] = {
                    key: {**table, "name": key} if isinstance(table, dict) else table
                    for key, table in tables.items()
                }
        return data

    @model_validator(mode="after")
    def _local_endpoints_join_ollama(self) -> "OmenConfig":
        """Each container's local_endpoint becomes an endpoint of the Ollama provider reserved
        for it, so probes, model discovery, GPU readings and drains treat it like any box."""
        for name, container in self.containers.items():
            if container.local_endpoint is None or not container.enabled:
                continue
            endpoint = EndpointConfig(
                url=container.local_endpoint, name=local_endpoint_name(name), container=name
            )
            provider = self.providers.get(LOCAL_PROVIDER)
            if provider is None:  # a config without shared Ollama boxes: only reserved ones
                self.providers[LOCAL_PROVIDER] = ProviderConfig(
                    name=LOCAL_PROVIDER, type="ollama", endpoints=[endpoint]
                )
            elif provider.type == "ollama":
                provider.endpoints.append(endpoint)
        return self


@dataclass
class Problem:
    """One thing wrong with a configuration, located by its dotted TOML path."""

    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds every error (and warning) found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def cross_check(
    config: OmenConfig,
    provider_names: Collection[str] | None = None,
    container_names: Collection[str] | None = None,
) -> list[Problem]:
    """Problems that no single table shows: references between tables, and keys used twice.

    The names default to the config's own; the loader passes the names written in the file so a
    provider whose table had errors still counts as defined.
    """
    providers = set(config.providers if provider_names is None else provider_names)
    containers = set(config.containers if container_names is None else container_names)
    problems: list[Problem] = []

    def error(path: str, message: str) -> None:
        problems.append(Problem(path, message))

    def warn(path: str, message: str) -> None:
        problems.append(Problem(path, message, "warning"))

    def check_rule(path: str, rule: IntentRule, allowed: list[str] | None = None) -> None:
        if rule.provider not in providers:
            error(f"{path}.provider", _undefined("provider", rule.provider, providers))
            return
        if allowed is not None and rule.provider not in allowed:
            error(
                f"{path}.provider",
                f"{rule.provider!r} is not in this container's allowed_providers",
            )
        provider = config.providers.get(rule.provider)
        if provider is None:
            return
        if not provider.enabled:
            warn(f"{path}.provider", f"provider {rule.provider!r} is disabled")
        if rule.model and provider.models and rule.model not in provider.models:
            warn(f"{path}.model", f"not in providers.{rule.provider}.models; requested anyway")

    routing = config.routing
    if routing.cost_weight == routing.latency_weight == routing.quality_weight == 0:
        error("routing", "cost_weight, latency_weight and quality_weight are all 0")
    for intent, rule in routing.intent_rules.items():
        check_rule(f"routing.intent_rules.{intent}", rule)

    for name, provider in config.providers.items():
        path = f"providers.{name}"
        if provider.type == "azure" and provider.base_url is None:
            error(f"{path}.base_url", "azure needs the resource's base_url")
        if provider.type == "bedrock" and provider.region is None:
            warn(f"{path}.region", "not set and neither is $AWS_REGION; provider unusable")
        seen: dict[str, int] = {}
        for index, endpoint in enumerate(provider.endpoints):
            where = _endpoint_path(config, name, index, endpoint)
            if endpoint.name in seen:
                other = f"{path}.endpoints.{seen[endpoint.name]}"
                error(where, f"same endpoint name as {other}")
            seen.setdefault(endpoint.name, index)
            if endpoint.container is not None and endpoint.container not in containers:
                error(f"{where}.container", _undefined("container", endpoint.container, containers))

    # Keys are compared by value, and named by where they were written, never by what they are.
    key_owner: dict[str, str] = {}
    for index, api_key in enumerate(config.auth.api_keys):
        path = f"auth.api_keys.{index}"
        if api_key.container is not None and api_key.container not in containers:
            error(f"{path}.container", _undefined("container", api_key.container, containers))
        if api_key.key is not None:
            value = api_key.key.get_secret_value()
            if value in key_owner:
                error(f"{path}.key", f"same key as {key_owner[value]}")
            key_owner.setdefault(value, f"{path}.key")

    for name, container in config.containers.items():
        path = f"containers.{name}"
        if container.api_key is not None:
            value = container.api_key.get_secret_value()
            if value in key_owner:
                error(f"{path}.api_key", f"same key as {key_owner[value]}")
            key_owner.setdefault(value, f"{path}.api_key")
        for index, provider_name in enumerate(container.allowed_providers or []):
            allowed = config.providers.get(provider_name)
            if provider_name not in providers:
                message = _undefined("provider", provider_name, providers)
                error(f"{path}.allowed_providers.{index}", message)
            elif allowed is not None and not allowed.enabled:
                warn(f"{path}.allowed_providers.{index}", f"provider {provider_name!r} is disabled")
        for intent, rule in container.routing.intents.items():
            check_rule(f"{path}.routing.intents.{intent}", rule, container.allowed_providers)
        weights = (container.cost_weight, container.latency_weight, container.quality_weight)
        if weights == (0, 0, 0):
            error(path, "cost_weight, latency_weight and quality_weight are all 0")
        if container.local_endpoint is not None and container.enabled:
            problems.extend(_check_local_endpoint(config, name, container))

    has_keys = any(k.key for k in config.auth.api_keys)
    has_keys = has_keys or any(c.api_key for c in config.containers.values())
    if not has_keys and not _is_loopback(config.server.host):
        warn("server.bind", "no API key is configured; without one Omen serves only on loopback")
    return problems


def _endpoint_path(config: OmenConfig, provider: str, index: int, endpoint: EndpointConfig) -> str:
    """Where an endpoint was written: a container's local_endpoint, or the provider's list."""
    owner = config.containers.get(endpoint.container or "")
    if (
        provider == LOCAL_PROVIDER
        and owner is not None
        and endpoint.name == local_endpoint_name(owner.name)
        and endpoint.url == owner.local_endpoint
    ):
        return f"containers.{owner.name}.local_endpoint"
    return f"providers.{provider}.endpoints.{index}"


def _check_local_endpoint(
    config: OmenConfig, name: str, container: ContainerConfig
) -> list[Problem]:
    """A local_endpoint that would never be routed to, or that is not private at all."""
    where = f"containers.{name}.local_endpoint"
    provider = config.providers[LOCAL_PROVIDER]  # the config validator made sure of it
    if provider.type != "ollama":
        message = f"joins providers.{LOCAL_PROVIDER}, which is of type {provider.type!r} here"
        return [Problem(where, message + "; name that table otherwise")]
    unused = "so this endpoint is not used"
    if not provider.enabled:
        return [Problem(where, f"provider {LOCAL_PROVIDER!r} is disabled, {unused}", "warning")]
    allowed = container.allowed_providers
    if allowed is not None and LOCAL_PROVIDER not in allowed:
        message = f"{LOCAL_PROVIDER!r} is not in this container's allowed_providers, {unused}"
        return [Problem(where, message, "warning")]
    for index, endpoint in enumerate(provider.endpoints):
        if endpoint.container is None and endpoint.url == container.local_endpoint:
            message = (
                f"the same URL as providers.{LOCAL_PROVIDER}.endpoints.{index}, "
                "which every container uses: this box is not reserved"
            )
            return [Problem(where, message, "warning")]
    return []


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _undefined(kind: str, name: str, defined: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(defined), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"no {kind} named {name!r} is defined{hint}"
