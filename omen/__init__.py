"""Omen: an AI router for containers — OpenAI-compatible gateway, routing, limits and spend."""

__version__ = "0.1.0"
