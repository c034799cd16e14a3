"""Provider adapters: OpenAI-shaped requests to each wire format and back, and transport."""

from __future__ import annotations

import importlib

from omen.config import ProviderConfig
from omen.providers.base import (
    JSON,
    RETRYABLE_STATUSES,
    ChatResponse,
    EmbeddingResponse,
    NativeCall,
    NativeProvider,
    Probe,
    Provider,
    Relayed,
    UpstreamError,
    Usage,
)
from omen.providers.http import UpstreamSettings, UpstreamSetupError
from omen.providers.ollama import OllamaProvider
from omen.providers.openai_format import OpenAIProvider

__all__ = [
    "JSON",
    "RETRYABLE_STATUSES",
    "ChatResponse",
    "EmbeddingResponse",
    "NativeCall",
    "NativeProvider",
    "OllamaProvider",
    "OpenAIProvider",
    "Probe",
    "Provider",
    "Relayed",
    "UnsupportedProvider",
    "UpstreamError",
    "Usage",
    "build_provider",
]


class UnsupportedProvider(Exception):
    """A provider type whose adapter is not built into this version."""


def build_provider(config: ProviderConfig) -> Provider:
    """The adapter for one `[providers.NAME]` table."""
    try:
        return _build(config)
    except UpstreamSetupError as exc:
        raise UnsupportedProvider(f"provider {config.name!r}: {exc}") from exc


def _build(config: ProviderConfig) -> Provider:
    api_key = config.api_key.get_secret_value() if config.api_key else None
    if config.type == "ollama":
        return OllamaProvider(
            config.name,
            passthrough=config.passthrough_formats,
            upstream=UpstreamSettings.of(config),
        )
    if config.type in ("openai", "xai", "azure"):
        return OpenAIProvider(
            config.name,
            flavour=config.type,
            api_key=api_key,
            api_version=config.api_version,
            deployments=dict(config.deployments),
            passthrough=config.passthrough_formats,
            upstream=UpstreamSettings.of(config),
        )
    adapter = _ADAPTERS.get(config.type)
    if adapter is None:
        raise UnsupportedProvider(f"provider type {config.type!r} has no adapter")
    module, name = adapter
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise UnsupportedProvider(f"provider type {config.type!r}: {exc}") from exc
    provider: Provider = cls(config)
    return provider


# One module per wire format; each adapter class takes its provider's config.
_ADAPTERS = {
    "anthropic": ("omen.providers.anthropic", "AnthropicProvider"),
    "gemini": ("omen.providers.gemini", "GeminiProvider"),
    "bedrock": ("omen.providers.bedrock", "BedrockProvider"),
}
