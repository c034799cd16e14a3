"""Routing decides where a request goes: pure logic over a snapshot, no network, no disk."""

from omen.routing.capabilities import Capabilities, infer_capabilities
from omen.routing.intent import INTENTS, IntentResult, classify
from omen.routing.router import Router, rule_matches
from omen.routing.snapshot import (
    Candidate,
    EndpointView,
    ModelOverride,
    ModelSpec,
    NoRoute,
    ProviderInfo,
    RouteDecision,
    RouteRequest,
    Rule,
    model_names,
)
from omen.routing.strategies import STRATEGIES, Option, Weights, rank

__all__ = [
    "INTENTS",
    "STRATEGIES",
    "Candidate",
    "Capabilities",
    "EndpointView",
    "IntentResult",
    "ModelOverride",
    "ModelSpec",
    "NoRoute",
    "Option",
    "ProviderInfo",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "Rule",
    "Weights",
    "classify",
    "infer_capabilities",
    "model_names",
    "rank",
    "rule_matches",
]
