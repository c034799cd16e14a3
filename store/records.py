"""What the daemon hands the store writer: one dataclass per kind of fact it records.

Records are plain slotted dataclasses (not frozen: a frozen 29-field dataclass costs ~2 µs
more to build on the request path). Once a record is passed to `StoreWriter`, the writer
owns it: the caller must not mutate it, or any dict inside it, afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["info", "warn", "error"]
LEVELS: tuple[Level, ...] = ("info", "warn", "error")


def level_for(status: int, error: str | None) -> Level:
    """Severity of a request outcome: 5xx or a recorded error is "error", 4xx is "warn"."""
    if status >= 500:
        return "error"
    if status >= 400:
        return "warn"
    return "error" if error else "info"


@dataclass(slots=True)
class RequestRecord:
    """One proxied request, as it finished (or failed)."""

    id: str
    ts: float  # unix time the request started
    container: str
    key_id: str | None
    kind: str  # "chat" | "embeddings" | "messages"
    requested_model: str
    model: str | None
    provider: str | None
    endpoint: str | None
    intent: str | None
    strategy: str | None
    stream: bool
    status: int  # HTTP status returned to the client
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens, written to the provider's prompt cache
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cache_saved_usd: float = 0.0  # what the cache reads saved against the full input price
    reason: str = ""
    # intent signals, scored candidates, attempts; also "session" ({id, action, detail}),
    # "dropped" (request fields the upstream could not carry) and "passthrough" (bool)
    decision: dict[str, Any] | None = None
    error: str | None = None
    trace_id: str | None = None
    session: str | None = None  # the agent session the request belongs to
    replay_of: str | None = None
    client_closed: bool = False

    @property
    def level(self) -> Level:
        return level_for(self.status, self.error)


@dataclass(slots=True)
class HealthSample:
    """One health probe of one provider endpoint."""

    ts: float
    provider: str
    endpoint: str
    healthy: bool
    latency_ms: float | None
    error: str | None
    in_flight: int = 0


@dataclass(slots=True)
class GpuSample:
    """One poll of an Ollama endpoint's `/api/ps` (and its GPU metrics source, if any).

    `loaded_models` holds dicts with name, size_vram, size, expires_at, context_length.
    """

    ts: float
    provider: str
    endpoint: str
    loaded_models: list[dict[str, Any]]
    vram_used_bytes: int | None
    vram_total_bytes: int | None
    gpu_util_percent: float | None
    in_flight: int


@dataclass(slots=True)
class AuditRecord:
    """One operator action. `actor` is a key id (never a key) or, signed in through OIDC,
    the operator's e-mail or subject; `role` what they acted as (admin, viewer; '' for a
    key, whose scope the key id stands for)."""

    ts: float
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    detail: str | None
    role: str = ""


@dataclass(slots=True)
class KeyCreated:
    """An API key made through the admin API (`omen keys create`): only its SHA-256 digest
    is ever stored; `key_id` is what requests and the audit trail name it by."""

    ts: float
    key_id: str
    digest: str  # hex SHA-256 of the key
    container: str | None  # None: not bound to a container
    scope: str  # "user" | "admin"
    name: str | None
    actor: str


@dataclass(slots=True)
class KeyRevoked:
    """A key withdrawn: refused from then on, on every instance."""

    ts: float
    key_id: str
    actor: str


@dataclass(slots=True)
class BudgetChange:
    """A budget override for one container.

    `after` holds the periods that changed ("daily", "weekly", "monthly"): a number (or a
    numeric string / Decimal) sets the override, None clears it, a missing key leaves it.
    """

    ts: float
    container: str
    before: dict[str, Any]
    after: dict[str, Any]
    actor: str


@dataclass(slots=True)
class DrainChange:
    """An endpoint drained or undrained by an operator."""

    ts: float
    provider: str
    endpoint: str
    drained: bool
    reason: str | None
    actor: str


@dataclass(slots=True)
class FeedbackRecord:
    """A client's verdict on one answer (`POST /v1/feedback`), 0 (bad) .. 1 (good), with what
    the request was routed to, so the outcome statistics can take it without a lookup. A later
    verdict on the same request replaces the earlier one."""

    ts: float
    request_id: str
    score: float
    actor: str
    container: str
    intent: str
    provider: str
    model: str
