"""Routing decides where a request goes: pure logic over a snapshot, no network, no disk."""

from omen.routing.router import Router
from omen.routing.snapshot import (
    Candidate,
    EndpointView,
    NoRoute,
    ProviderInfo,
    RouteDecision,
    RouteRequest,
)

__all__ = [
    "Candidate",
    "EndpointView",
    "NoRoute",
    "ProviderInfo",
    "RouteDecision",
    "RouteRequest",
    "Router",
]
