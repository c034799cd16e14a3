"""A session keeps its model: pure rules over a fresh decision and the session's pin.

Per-request routing inside one agent conversation throws away the provider's prompt cache and
the GPU box's loaded model, and changes the model's voice mid-task. So a session is routed once
and pinned; later turns go to the pin first. It moves only up — to a stronger model when a turn
needs one (an intent rule, a bigger context) — or away from an endpoint that is failing or
drained; never down to a weaker model while one at least as strong can serve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omen.routing.snapshot import Candidate, RouteDecision


@dataclass(frozen=True, slots=True)
class Pin:
    """Where a session's turns go."""

    provider: str
    model: str
    endpoint: str
    quality: float


@dataclass(frozen=True, slots=True)
class SessionMove:
    action: str  # "new" | "kept" | "upgraded" | "moved" | "rerouted"
    detail: str


def keep_session(
    decision: RouteDecision, pin: Pin | None, quality: Callable[[Candidate], float]
) -> SessionMove:
    """Reorder `decision.candidates` (in place) for the session pinned at `pin`."""
    if pin is None:
        return SessionMove("new", "first turn: routed afresh")
    candidates = decision.candidates
    first = candidates[0]
    same = [c for c in candidates if c.provider == pin.provider and c.model == pin.model]
    if not (first.provider == pin.provider and first.model == pin.model):
        stronger = quality(first)
        if stronger > pin.quality:
            decision.candidates = [c for c in candidates if quality(c) >= pin.quality]
            return SessionMove(
                "upgraded",
                f"{pin.provider}/{pin.model} → {first.provider}/{first.model} "
                f"(quality {pin.quality:.2f} → {stronger:.2f})",
            )
    at_least = [c for c in candidates if c not in same and quality(c) >= pin.quality]
    if same:
        same.sort(key=lambda c: c.endpoint != pin.endpoint)  # the warm endpoint first
        decision.candidates = same + at_least
        if same[0].endpoint == pin.endpoint:
            return SessionMove("kept", f"{pin.provider}/{pin.model} @{pin.endpoint}")
        return SessionMove(
            "moved", f"@{pin.endpoint} unavailable → {same[0].provider} @{same[0].endpoint}"
        )
    if at_least:
        decision.candidates = at_least
        return SessionMove(
            "moved",
            f"{pin.provider}/{pin.model} unavailable → {at_least[0].provider}/{at_least[0].model}",
        )
    return SessionMove(
        "rerouted",
        f"{pin.provider}/{pin.model} unavailable and nothing as strong: routed afresh",
    )


def relabel(decision: RouteDecision, move: SessionMove) -> None:
    """Say in the decision's reason line where the session sent the request."""
    first = decision.candidates[0]
    decision.reason = (
        f"session {move.action} → {first.provider}/{first.model} @{first.endpoint} "
        f"({move.detail}) | {decision.reason}"
        if move.action != "new"
        else decision.reason
    )
