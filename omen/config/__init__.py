"""Omen's configuration: the TOML file, OMEN_* overrides and env: secrets, checked as one model."""

from omen.config.load import LoadedConfig, check_config, find_config_path, load_config
from omen.config.model import (
    ApiKeyConfig,
    AuthConfig,
    BudgetConfig,
    ConfigError,
    ContainerConfig,
    ContainerRouting,
    EndpointConfig,
    IntentRule,
    ModelInfoConfig,
    OmenConfig,
    Problem,
    ProviderConfig,
    QuotaConfig,
    RateLimitConfig,
    RoutingConfig,
    ServerConfig,
)
from omen.config.units import parse_duration, parse_money, parse_size

__all__ = [
    "ApiKeyConfig",
    "AuthConfig",
    "BudgetConfig",
    "ConfigError",
    "ContainerConfig",
    "ContainerRouting",
    "EndpointConfig",
    "IntentRule",
    "LoadedConfig",
    "ModelInfoConfig",
    "OmenConfig",
    "Problem",
    "ProviderConfig",
    "QuotaConfig",
    "RateLimitConfig",
    "RoutingConfig",
    "ServerConfig",
    "check_config",
    "find_config_path",
    "load_config",
    "parse_duration",
    "parse_money",
    "parse_size",
]
