"""Provider adapters: OpenAI-shaped requests to each wire format and back, and transport."""

from __future__ import annotations

from omen.config import ProviderConfig
from omen.providers.base import (
    JSON,
    RETRYABLE_STATUSES,
    ChatResponse,
    EmbeddingResponse,
    Probe,
    Provider,
    UpstreamError,
    Usage,
)
from omen.providers.ollama import OllamaProvider
from omen.providers.openai_format import OpenAIProvider

__all__ = [
    "JSON",
    "RETRYABLE_STATUSES",
    "ChatResponse",
    "EmbeddingResponse",
    "OllamaProvider",
    "OpenAIProvider",
    "Probe",
    "Provider",
    "UnsupportedProvider",
    "UpstreamError",
    "Usage",
    "build_provider",
]


class UnsupportedProvider(Exception):
    """A provider type whose adapter is not built into this version."""


def build_provider(config: ProviderConfig) -> Provider:
    """The adapter for one `[providers.NAME]` table."""
    api_key = config.api_key.get_secret_value() if config.api_key else None
    if config.type == "ollama":
        return OllamaProvider(
            config.name, timeout=config.timeout, connect_timeout=config.connect_timeout
        )
    if config.type in ("openai", "xai", "azure"):
        return OpenAIProvider(
            config.name,
            flavour=config.type,
            api_key=api_key,
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            api_version=config.api_version,
            deployments=dict(config.deployments),
        )
    raise UnsupportedProvider(f"provider type {config.type!r} has no adapter yet")
