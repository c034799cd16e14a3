"""One request from decision to record: route, call the upstream with failover, price, record.

The HTTP layer hands a validated body and the caller's principal to `Gateway`; what comes
back is the answer to send. Every request that got past authentication leaves exactly one
row in the store, whatever happened to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from omen.auth import Principal
from omen.config import OmenConfig
from omen.errors import ApiError, invalid
from omen.fleet import EndpointState, Fleet
from omen.ids import new_request_id
from omen.limits.base import BUDGET, SOFT_LIMIT, Ask
from omen.limits.control import Admission, Refused, Unavailable, UsageControl, retry_after_header
from omen.policy import Policies, provider_info, route_request
from omen.providers import (
    JSON,
    ChatResponse,
    EmbeddingResponse,
    Provider,
    UpstreamError,
    Usage,
)
from omen.routing import Candidate, NoRoute, RouteDecision, Router, RouteRequest
from omen.telemetry.metrics import Metrics
from omen.telemetry.otel import NO_TRACING, Tracing
from store import RequestRecord, StoreWriter

log = logging.getLogger("omen.requests")


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
    route: RouteRequest | None = None
    admission: Admission | None = None
    replay_of: str | None = None

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


class Failover:
    """One request's walk down its candidates: within `max_attempts` and `failover_timeout`,
    each failure recorded and reported; giving up releases the reservation and records why."""

    def __init__(self, gateway: Gateway, ctx: CallContext, decision: RouteDecision) -> None:
        self.gateway = gateway
        self.ctx = ctx
        self.decision = decision
        self.attempts: list[Attempt] = []
        self.last: UpstreamError | None = None
        self.deadline = time.monotonic() + gateway.failover_timeout

    def tries(self) -> Iterator[tuple[Candidate, EndpointState, Provider, JSON]]:
        """Each candidate with its endpoint state, adapter, and the body to send it."""
        fleet = self.gateway.fleet
        for candidate in self.decision.candidates[: self.gateway.max_attempts]:
            body = dict(self.ctx.body)
            body["model"] = candidate.model
            yield (
                candidate,
                fleet.endpoints[(candidate.provider, candidate.endpoint)],
                fleet.providers[candidate.provider],
                body,
            )

    def failed(
        self, candidate: Candidate, state: EndpointState, error: UpstreamError, began: float
    ) -> bool:
        """Record a failed attempt; whether the next candidate may be tried."""
        self.attempts.append(Attempt(candidate, error.status, error.message, _ms(began)))
        self.gateway.report_failure(state, error)
        self.last = error
        return error.retryable and time.monotonic() <= self.deadline

    async def give_up(self) -> ApiError:
        gateway = self.gateway
        error = gateway.exhausted(self.decision, self.attempts, self.last)
        await gateway.usage.release(self.ctx.admission)
        gateway.record(
            self.ctx,
            self.decision,
            None,
            error.status,
            Usage(),
            0.0,
            attempts=self.attempts,
            error=error.message,
        )
        return error


def header_safe(text: str) -> str:
    """HTTP header values are latin-1; keep the reason readable in curl output."""
    return text.replace("→", "->").encode("latin-1", "replace").decode("latin-1")


class Gateway:
    def __init__(
        self,
        config: OmenConfig,
        fleet: Fleet,
        writer: StoreWriter,
        usage: UsageControl,
        metrics: Metrics,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.writer = writer
        self.keep_bodies = config.server.keep_request_bodies > 0
        self.max_attempts = max(1, config.routing.max_attempts)
        self.failover_timeout = config.routing.failover_timeout
        infos = [provider_info(pconf) for pconf in fleet.provider_configs.values()]
        self.router = Router(infos)
        self.usage = usage
        self.metrics = metrics
        self.tracing = tracing or NO_TRACING
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
        pressure = self.usage.pressure.get(ctx.container, 0.0)
        if pressure >= SOFT_LIMIT and request.model == "auto":
            # Near its budget: the cheapest candidate that can serve it, before refusing.
            request = replace(request, strategy="cost-optimized", quality_threshold=0.0)
        ctx.route = request
        try:
            with self.tracing.span("omen.route", container=ctx.container, model=request.model):
                decision = self.router.route(request, self.fleet.snapshot(), models)
        except NoRoute as exc:
            error = ApiError(exc.status, exc.message, code=exc.code, param="model")
            self.record_refusal(ctx, error)
            raise error from None
        if pressure >= SOFT_LIMIT and request.model == "auto":
            decision.reason = f"budget {pressure:.0%} used, steered to cheapest: {decision.reason}"
        return decision

    async def admit(self, ctx: CallContext, decision: RouteDecision) -> None:
        """Reserve against the container's limits for the chosen candidate, or refuse (429)."""
        route = ctx.route
        assert route is not None
        first = decision.candidates[0]
        spec = self.router.spec(first.provider, first.model)
        ask = Ask(
            request_id=ctx.request_id,
            tokens=route.est_prompt_tokens + route.max_output_tokens,
            cost_usd=route.est_prompt_tokens * spec.input_cost_per_token
            + route.max_output_tokens * spec.output_cost_per_token,
        )
        ask = replace(ask, free=ask.cost_usd == 0)
        try:
            with self.tracing.span("omen.limits", container=ctx.container):
                ctx.admission = await self.usage.admit(ctx.container, ask)
            return
        except Unavailable as exc:
            error = ApiError(
                503,
                f"usage limits cannot be checked ({exc}); refusing rather than "
                "letting spend go uncounted",
                code="limits_unavailable",
            )
            self.record_refusal(ctx, error, decision)
            raise error from None
        except Refused as refused:
            verdict = refused.verdict
        cost_bound = verdict.kind == BUDGET or verdict.limit == "max_cost_per_day"
        free = [c for c in decision.candidates if self.is_free(c)]
        if cost_bound and free and not ask.free:
            # Cost budgets never block a zero-cost local model: fall back to those.
            try:
                ctx.admission = await self.usage.admit(
                    ctx.container, replace(ask, cost_usd=0.0, free=True)
                )
            except (Refused, Unavailable):
                pass
            else:
                decision.candidates = free
                decision.reason += f" [{verdict.limit} reached: local only]"
                return
        self.metrics.refused(ctx.container, verdict.limit or "unknown")
        error = ApiError(
            429,
            verdict.message,
            type_=verdict.kind,
            code=verdict.limit,
            headers={"retry-after": retry_after_header(verdict)},
        )
        self.record_refusal(ctx, error, decision)
        raise error

    def quota_headers(self, ctx: CallContext) -> dict[str, str]:
        if ctx.admission is None:
            return {}
        warning = ctx.admission.verdict.warning_header()
        return {"x-omen-quota-warning": warning} if warning else {}

    # --- calling -----------------------------------------------------------------------

    def is_free(self, candidate: Candidate) -> bool:
        spec = self.router.spec(candidate.provider, candidate.model)
        return spec.input_cost_per_token == 0 and spec.output_cost_per_token == 0

    def price(self, candidate: Candidate, usage: Usage) -> float:
        """Real spend: fresh input, cache reads and writes, and output, each at its price."""
        spec = self.router.spec(candidate.provider, candidate.model)
        fresh = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
        return (
            fresh * spec.input_cost_per_token
            + usage.cached_tokens * spec.cache_read_cost_per_token
            + usage.cache_write_tokens * spec.cache_write_cost_per_token
            + usage.completion_tokens * spec.output_cost_per_token
        )

    def report_failure(self, state: EndpointState, error: UpstreamError) -> None:
        connection = error.type in ("upstream_unreachable", "timeout")
        self.fleet.record_failure(state, error.message, connection=connection)

    async def chat(self, ctx: CallContext) -> Answer:
        models = (
            self.fleet.embedding_models() if ctx.kind == "embeddings" else self.fleet.chat_models()
        )
        decision = self.decide(ctx, models)
        await self.admit(ctx, decision)
        failover = Failover(self, ctx, decision)
        for candidate, state, provider, body in failover.tries():
            began = time.perf_counter()
            state.in_flight += 1
            try:
                with self.tracing.span(
                    "omen.upstream",
                    provider=candidate.provider,
                    endpoint=candidate.endpoint,
                    model=candidate.model,
                ):
                    if ctx.kind == "embeddings":
                        result: ChatResponse | EmbeddingResponse = await provider.embed(
                            candidate.url, body
                        )
                    else:
                        result = await provider.chat(candidate.url, body)
            except UpstreamError as exc:
                if failover.failed(candidate, state, exc, began):
                    continue
                break
            finally:
                state.in_flight -= 1
            self.fleet.record_success(state, _ms(began), None)
            failover.attempts.append(Attempt(candidate, 200, None, _ms(began)))
            cost = self.price(candidate, result.usage)
            await self.usage.settle(ctx.admission, result.usage.total_tokens, cost)
            self.record(
                ctx, decision, candidate, 200, result.usage, cost, attempts=failover.attempts
            )
            raw = result.raw if isinstance(result, ChatResponse) else None
            return Answer(candidate, decision, result.usage, cost, result.body, raw)
        raise await failover.give_up()

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
        if candidate is not None and decision is not None:
            self.metrics.decided(
                decision.strategy, candidate.provider, decision.intent.intent, decision.reason
            )
        self.metrics.request_done(
            container=ctx.container,
            provider=candidate.provider if candidate else None,
            model=model or (candidate.model if candidate else None),
            status=status,
            seconds=ctx.elapsed_ms() / 1000,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=cost,
        )
        if status >= 400 or error:
            log.log(
                logging.WARNING if status >= 500 or error else logging.INFO,
                "request %s: %s",
                status,
                error or "refused",
                extra={
                    "request_id": ctx.request_id,
                    "container": ctx.container,
                    "provider": candidate.provider if candidate else None,
                },
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request %s",
                status,
                extra={
                    "request_id": ctx.request_id,
                    "container": ctx.container,
                    "provider": candidate.provider if candidate else None,
                },
            )
        with self.tracing.span("omen.store_write", request_id=ctx.request_id):
            self._write(
                ctx,
                decision,
                candidate,
                status,
                usage,
                cost,
                attempts,
                error,
                ttft_ms,
                client_closed,
                model,
            )

    def _write(
        self,
        ctx: CallContext,
        decision: RouteDecision | None,
        candidate: Candidate | None,
        status: int,
        usage: Usage,
        cost: float,
        attempts: list[Attempt] | None,
        error: str | None,
        ttft_ms: float | None,
        client_closed: bool,
        model: str | None,
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
                replay_of=ctx.replay_of,
                client_closed=client_closed,
            ),
            body=ctx.body if self.keep_bodies else None,
        )

    def record_refusal(
        self, ctx: CallContext, error: ApiError, decision: RouteDecision | None = None
    ) -> None:
        """A request refused before any upstream call (bad model, limits): logged, no spend."""
        self.record(ctx, decision, None, error.status, Usage(), 0.0, error=error.message)


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
