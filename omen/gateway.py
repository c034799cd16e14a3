"""One request from decision to record: route, call the upstream with failover, price, record.

The HTTP layer hands a validated body and the caller's principal to `Gateway`; what comes
back is the answer to send. Every request that got past authentication leaves exactly one
row in the store, whatever happened to it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from omen.auth import Principal
from omen.config import OmenConfig
from omen.errors import ApiError, invalid
from omen.fleet import EndpointState, Fleet
from omen.ids import new_request_id
from omen.policy import Policies, provider_info, route_request
from omen.providers import JSON, ChatResponse, EmbeddingResponse, UpstreamError, Usage
from omen.routing import Candidate, NoRoute, RouteDecision, Router
from store import RequestRecord, StoreWriter


@dataclass(slots=True)
class CallContext:
    """What is known about one request before it is routed."""

    principal: Principal
    container: str
    kind: str  # "chat" | "embeddings"
    body: JSON
    stream: bool = False
    request_id: str = field(default_factory=new_request_id)
    ts: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    trace_id: str | None = None

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
    """A successful non-streaming call."""

    candidate: Candidate
    decision: RouteDecision
    usage: Usage
    cost: float
    body: JSON
    raw: bytes | None


def header_safe(text: str) -> str:
    """HTTP header values are latin-1; keep the reason readable in curl output."""
    return text.replace("→", "->").encode("latin-1", "replace").decode("latin-1")


class Gateway:
    def __init__(self, config: OmenConfig, fleet: Fleet, writer: StoreWriter) -> None:
        self.config = config
        self.fleet = fleet
        self.writer = writer
        self.keep_bodies = config.server.keep_request_bodies > 0
        self.max_attempts = max(1, config.routing.max_attempts)
        self.failover_timeout = config.routing.failover_timeout
        infos = [provider_info(pconf) for pconf in fleet.provider_configs.values()]
        self.prices = {i.name: (i.input_cost_per_token, i.output_cost_per_token) for i in infos}
        self.router = Router(infos)
        self.policies = Policies(config)
        self._tasks: set[asyncio.Task[None]] = set()

    def track(self, task: asyncio.Task[None]) -> None:
        """Keep background work (stream pumps) referenced until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self, timeout: float) -> None:
        """On shutdown: let streams that are still running finish and record themselves."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    # --- before routing ----------------------------------------------------------------

    def container_for(self, principal: Principal, body: JSON) -> str:
        metadata = body.get("metadata") or {}
        asked = metadata.get("container_id")
        if asked is not None and not isinstance(asked, str):
            raise invalid("`metadata.container_id` must be a string", param="metadata.container_id")
        if principal.container is not None:
            if asked and asked != principal.container:
                raise ApiError(
                    403,
                    f"this key belongs to container {principal.container!r}, not {asked!r}",
                    code="container_mismatch",
                )
            return principal.container
        if asked:
            if self.config.containers and asked not in self.config.containers:
                raise ApiError(
                    403, f"container {asked!r} is not configured", code="unknown_container"
                )
            return asked
        return "default"

    def decide(self, ctx: CallContext, models: dict[str, tuple[str, ...]]) -> RouteDecision:
        policy = self.policies.for_container(ctx.container)
        request = route_request(
            policy, ctx.body, ctx.container, self.config.server.default_max_tokens
        )
        try:
            return self.router.route(request, self.fleet.snapshot(), models)
        except NoRoute as exc:
            error = ApiError(exc.status, exc.message, code=exc.code, param="model")
            self.record_refusal(ctx, error)
            raise error from None

    # --- calling -----------------------------------------------------------------------

    def price(self, provider: str, usage: Usage) -> float:
        per_in, per_out = self.prices.get(provider, (0.0, 0.0))
        return usage.prompt_tokens * per_in + usage.completion_tokens * per_out

    def report_failure(self, state: EndpointState, error: UpstreamError) -> None:
        connection = error.type in ("upstream_unreachable", "timeout")
        self.fleet.record_failure(state, error.message, connection=connection)

    async def chat(self, ctx: CallContext) -> Answer:
        models = (
            self.fleet.embedding_models() if ctx.kind == "embeddings" else self.fleet.chat_models()
        )
        decision = self.decide(ctx, models)
        attempts: list[Attempt] = []
        last: UpstreamError | None = None
        deadline = time.monotonic() + self.failover_timeout
        for candidate in decision.candidates[: self.max_attempts]:
            state = self.fleet.endpoints[(candidate.provider, candidate.endpoint)]
            provider = self.fleet.providers[candidate.provider]
            body = dict(ctx.body)
            body["model"] = candidate.model
            began = time.perf_counter()
            state.in_flight += 1
            try:
                if ctx.kind == "embeddings":
                    result: ChatResponse | EmbeddingResponse = await provider.embed(
                        candidate.url, body
                    )
                else:
                    result = await provider.chat(candidate.url, body)
            except UpstreamError as exc:
                attempts.append(Attempt(candidate, exc.status, exc.message, _ms(began)))
                self.report_failure(state, exc)
                last = exc
                if not exc.retryable or time.monotonic() > deadline:
                    break
                continue
            finally:
                state.in_flight -= 1
            self.fleet.record_success(state, _ms(began), None)
            attempts.append(Attempt(candidate, 200, None, _ms(began)))
            cost = self.price(candidate.provider, result.usage)
            self.record(ctx, decision, candidate, 200, result.usage, cost, attempts=attempts)
            raw = result.raw if isinstance(result, ChatResponse) else None
            return Answer(candidate, decision, result.usage, cost, result.body, raw)
        error = self.exhausted(decision, attempts, last)
        self.record(
            ctx, decision, None, error.status, Usage(), 0.0, attempts=attempts, error=error.message
        )
        raise error

    def exhausted(
        self, decision: RouteDecision, attempts: list[Attempt], last: UpstreamError | None
    ) -> ApiError:
        """The error for a request no candidate could answer."""
        if last is None:
            return ApiError(503, "no upstream could be tried", code="no_endpoint_available")
        tried = ", ".join(f"{a.candidate.provider}/{a.candidate.endpoint}" for a in attempts)
        message = last.message if len(attempts) == 1 else f"{last.message} (tried {tried})"
        status = last.status
        if last.retryable and status < 500 and status != 429:
            status = 502  # e.g. every endpoint lacked the model or refused Omen's key
        headers = {}
        if status == 429 and last.retry_after is not None:
            headers["retry-after"] = str(int(last.retry_after + 0.999))
        return ApiError(
            status, message, type_=last.type, param=last.param, code=last.code, headers=headers
        )

    # --- recording ---------------------------------------------------------------------

    def record(
        self,
        ctx: CallContext,
        decision: RouteDecision | None,
        candidate: Candidate | None,
        status: int,
        usage: Usage,
        cost: float,
        *,
        attempts: list[Attempt] | None = None,
        error: str | None = None,
        ttft_ms: float | None = None,
        client_closed: bool = False,
        model: str | None = None,
    ) -> None:
        details: dict[str, Any] | None = None
        if decision is not None:
            details = dict(decision.details)
            details["attempts"] = [a.as_dict() for a in attempts or []]
        self.writer.record_request(
            RequestRecord(
                id=ctx.request_id,
                ts=ctx.ts,
                container=ctx.container,
                key_id=ctx.principal.key_id,
                kind=ctx.kind,
                requested_model=str(ctx.body.get("model", "")),
                model=model or (candidate.model if candidate else None),
                provider=candidate.provider if candidate else None,
                endpoint=candidate.endpoint if candidate else None,
                intent=decision.intent.intent if decision else None,
                strategy=decision.strategy if decision else None,
                stream=ctx.stream,
                status=status,
                latency_ms=ctx.elapsed_ms(),
                ttft_ms=ttft_ms,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=cost,
                reason=decision.reason if decision else (error or ""),
                decision=details,
                error=error,
                trace_id=ctx.trace_id,
                client_closed=client_closed,
            ),
            body=ctx.body if self.keep_bodies else None,
        )

    def record_refusal(self, ctx: CallContext, error: ApiError) -> None:
        """A request refused before routing (bad model, limits): visible in logs, no spend."""
        self.record(ctx, None, None, error.status, Usage(), 0.0, error=error.message)


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
