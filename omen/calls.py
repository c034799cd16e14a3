"""What one request carries through the gateway: its context, its attempts, its answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from omen.auth import Principal
from omen.formats.base import ChunkEncoder
from omen.ids import new_request_id
from omen.limits.control import Admission
from omen.providers import JSON, Usage
from omen.routing import Candidate, RouteDecision, RouteRequest

# Omen's own routing hints in `metadata` (SPEC §4): never sent upstream.
ROUTING_HINTS = frozenset(
    {"container_id", "intent", "priority", "prefer_local", "budget_remaining"}
)


@dataclass(slots=True)
class CallContext:
    """What is known about one request before it is routed."""

    principal: Principal
    container: str
    kind: str  # the inbound wire: "chat" | "messages" | "responses" | "embeddings"
    body: JSON  # OpenAI chat (or embeddings) shape: what routing, limits and adapters see
    stream: bool = False
    native: JSON | None = None  # the client's body in its own format, for passthrough
    client_headers: dict[str, str] = field(default_factory=dict)  # anthropic-beta, -version
    dropped: list[str] = field(default_factory=list)  # request fields chat cannot carry
    session: str | None = None
    encoder: ChunkEncoder | None = None  # the client's stream format
    request_id: str = field(default_factory=new_request_id)
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    trace_id: str | None = None
    route: RouteRequest | None = None
    admission: Admission | None = None
    replay_of: str | None = None
    recorded: bool = False  # its one row is written (or queued): never a second

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


@dataclass(slots=True)
class Attempt:
    candidate: Candidate
    status: int
    error: str | None
    ms: float

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.candidate.provider,
            "endpoint": self.candidate.endpoint,
            "model": self.candidate.model,
            "status": self.status,
            "error": self.error,
            "ms": round(self.ms, 2),
        }


@dataclass(slots=True)
class Answer:
    """A successful non-streaming call; `native` when `body` is already in the client's format."""

    candidate: Candidate
    decision: RouteDecision
    usage: Usage
    cost: float
    body: JSON
    raw: bytes | None
    native: bool = False
