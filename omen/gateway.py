"""One request from decision to record, whatever its wire format: session and route, admit
against the container's limits, call the upstream (passthrough or translated) with failover,
settle, record.

The HTTP layer hands a decoded body and the caller's principal to `Gateway.call`; what comes
back is a complete answer or a started stream pump. Every request that got past
authentication leaves exactly one row in the store (through `Recorder`), whatever happened.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import cast

from omen.auth import Principal
from omen.calls import ROUTING_HINTS, Answer, Attempt, CallContext
from omen.config import OmenConfig
from omen.errors import ApiError, invalid
from omen.fleet import EndpointState, Fleet
from omen.limits.base import BUDGET, SOFT_LIMIT, Ask
from omen.limits.control import Refused, Unavailable, UsageControl, retry_after_header
from omen.outcomes import OutcomeBook
from omen.policy import Policies, provider_info, route_request
from omen.providers import (
    JSON,
    ChatResponse,
    EmbeddingResponse,
    NativeCall,
    NativeProvider,
    Provider,
    Relayed,
    UpstreamError,
    Usage,
)
from omen.recording import Recorder
from omen.routing import Candidate, NoRoute, RouteDecision, Router
from omen.routing.session import Pin, keep_session, relabel
from omen.secrets import Redactor
from omen.sessions import SessionStore
from omen.streaming import StreamPump, close_quietly
from omen.telemetry.metrics import Metrics
from omen.telemetry.otel import NO_TRACING, Tracing
from omen_store import StoreWriter

log = logging.getLogger("omen.gateway")

_TOKEN_LIMITS = frozenset({"tokens_per_minute", "max_tokens_per_day"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_HEADER = 2000


class Failover:
    """One request's walk down its candidates: within `max_attempts` and `failover_timeout`,
    each failure recorded and reported; giving up releases the reservation and records why."""

    def __init__(self, gateway: Gateway, ctx: CallContext, decision: RouteDecision) -> None:
        self.gateway = gateway
        self.ctx = ctx
        self.decision = decision
        self.attempts: list[Attempt] = []
        self.failed_endpoints: set[tuple[str, str]] = set()
        self.last: UpstreamError | None = None
        self.deadline = time.monotonic() + gateway.failover_timeout

    def tries(self) -> Iterator[tuple[Candidate, EndpointState, Provider]]:
        """Each candidate with its endpoint state and adapter, up to `max_attempts` tries;
        an endpoint that failed is not tried again within the request."""
        fleet = self.gateway.fleet
        for candidate in self.decision.candidates:
            if len(self.attempts) >= self.gateway.max_attempts:
                return
            if (candidate.provider, candidate.endpoint) in self.failed_endpoints:
                continue
            yield (
                candidate,
                fleet.endpoints[(candidate.provider, candidate.endpoint)],
                fleet.providers[candidate.provider],
            )

    def failed(
        self, candidate: Candidate, state: EndpointState, error: UpstreamError, began: float
    ) -> bool:
        """Record a failed attempt; whether the next candidate may be tried."""
        self.gateway.report_failure(state, error)  # redacts the upstream's text first
        self.attempts.append(Attempt(candidate, error.status, error.message, _ms(began)))
        if error.status != 404:  # a missing model says nothing about the endpoint's others
            self.failed_endpoints.add((candidate.provider, candidate.endpoint))
        self.last = error
        return error.retryable and time.monotonic() <= self.deadline

    async def give_up(self) -> ApiError:
        gateway = self.gateway
        error = gateway.exhausted(self.decision, self.attempts, self.last)
        await gateway.usage.release(self.ctx.admission)
        gateway.recorder.record(
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


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    estimated: bool
    provider: str


def header_safe(text: str) -> str:
    """HTTP header values are latin-1 and one line; keep the reason readable in curl output
    (and an upstream's CR/LF out of Omen's headers)."""
    text = text.replace("→", "->").encode("latin-1", "replace").decode("latin-1")
    return _CONTROL.sub(" ", text)[:_MAX_HEADER]


class Gateway:
    def __init__(
        self,
        config: OmenConfig,
        fleet: Fleet,
        writer: StoreWriter,
        usage: UsageControl,
        metrics: Metrics,
        tracing: Tracing | None = None,
        outcomes: OutcomeBook | None = None,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.outcomes = outcomes or OutcomeBook()
        self._random = random.Random()
        self.max_attempts = max(1, config.routing.max_attempts)
        self.failover_timeout = config.routing.failover_timeout
        infos = [provider_info(pconf) for pconf in fleet.provider_configs.values()]
        self.router = Router(infos)
        self.usage = usage
        self.metrics = metrics
        self.tracing = tracing or NO_TRACING
        self.recorder = Recorder(
            writer,
            metrics,
            self.tracing,
            self.router,
            keep_bodies=config.server.keep_request_bodies > 0,
            outcomes=self.outcomes,
        )
        self.policies = Policies(config)
        self.sessions = SessionStore(
            config.routing.session_ttl, config.server.redis_url, config.server.redis_prefix
        )
        self.redact = Redactor.from_config(config)
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
        metadata = body.get("metadata")
        if metadata is None:
            metadata = {}
        elif not isinstance(metadata, dict):
            raise invalid("`metadata` must be an object", param="metadata")
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

    async def decide(
        self, ctx: CallContext, models: dict[str, tuple[str, ...]], *, fits: bool = True
    ) -> RouteDecision:
        policy = self.policies.for_container(ctx.container)
        request = route_request(
            policy, ctx.body, ctx.container, self.config.server.default_max_tokens
        )
        pressure = self.usage.pressure.get(ctx.container, 0.0)
        if pressure >= SOFT_LIMIT and request.model == "auto":
            # Near its budget: the cheapest candidate that can serve it, before refusing.
            request = replace(request, strategy="cost-optimized", quality_threshold=0.0)
        elif self.config.routing.adaptive and request.model == "auto":
            request = replace(
                request,
                outcomes=self.outcomes.view(ctx.container, request.intent.intent),
                explore=self.config.routing.explore,
                draws=(self._random.random(), self._random.random()),
            )
        ctx.route = request
        try:
            with self.tracing.span("omen.route", container=ctx.container, model=request.model):
                decision = self.router.route(request, self.fleet.snapshot(), models)
        except NoRoute as exc:
            error = ApiError(exc.status, exc.message, code=exc.code, param="model")
            if exc.code == "context_length_exceeded":
                error = self.too_long(ctx, request.est_prompt_tokens, exc.limit)
            self.recorder.refusal(ctx, error)
            raise error from None
        if pressure >= SOFT_LIMIT and request.model == "auto":
            decision.reason = f"budget {pressure:.0%} used, steered to cheapest: {decision.reason}"
        if ctx.session and self.sessions.enabled:
            await self.keep_session(ctx, decision)
        first = decision.candidates[0]
        window = self.router.spec(first.provider, first.model).capabilities.context_window
        if fits and request.est_prompt_tokens > window:
            error = self.too_long(ctx, request.est_prompt_tokens, window)
            self.recorder.refusal(ctx, error, decision)
            raise error
        return decision

    def too_long(self, ctx: CallContext, tokens: int, limit: int) -> ApiError:
        """The wording each kind of agent acts on (Claude Code compacts on Anthropic's)."""
        message = (
            f"prompt is too long: {tokens} tokens > {limit} maximum"
            if ctx.kind == "messages"
            else f"This model's maximum context length is {limit} tokens, but the request "
            f"has about {tokens} tokens. Please reduce the length of the messages."
        )
        return ApiError(
            400,
            message,
            type_="invalid_request_error",
            param="messages",
            code="context_length_exceeded",
        )

    async def keep_session(self, ctx: CallContext, decision: RouteDecision) -> None:
        assert ctx.session is not None
        pin = await self.sessions.get(ctx.container, ctx.session)
        move = keep_session(decision, pin, self._quality)
        relabel(decision, move)
        decision.details["session"] = {
            "id": ctx.session,
            "action": move.action,
            "detail": move.detail,
        }

    def _quality(self, candidate: Candidate) -> float:
        return self.router.spec(candidate.provider, candidate.model).quality

    async def pin_session(self, ctx: CallContext, candidate: Candidate) -> None:
        """The session's next turns go where this one was answered."""
        if ctx.session and self.sessions.enabled:
            pin = Pin(
                candidate.provider, candidate.model, candidate.endpoint, self._quality(candidate)
            )
            await self.sessions.put(ctx.container, ctx.session, pin)

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
            self.recorder.refusal(ctx, error, decision)
            raise error from None
        except Refused as refused:
            verdict = refused.verdict
        limits = self.usage.specs.get(ctx.container)
        capacity = getattr(limits, verdict.limit or "", None) if limits is not None else None
        if verdict.limit in _TOKEN_LIMITS and isinstance(capacity, int) and ask.tokens > capacity:
            # Waiting would not help: a 429 would only make SDKs retry for nothing.
            error = ApiError(
                400,
                f"this request needs about {ask.tokens} tokens (prompt + max_tokens), more than "
                f"the container's whole {verdict.limit} of {capacity}; lower max_tokens",
                type_="invalid_request_error",
                code=verdict.limit,
                param="max_tokens",
            )
            self.recorder.refusal(ctx, error, decision)
            raise error
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
        self.recorder.refusal(ctx, error, decision)
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

    def report_failure(self, state: EndpointState, error: UpstreamError) -> None:
        """An upstream failed: its text cleaned of Omen's secrets, the endpoint's health told
        (not for an unknown model: the endpoint itself is fine)."""
        error.message = self.redact(error.message)
        if error.status == 404:
            return
        connection = error.type in ("upstream_unreachable", "timeout")
        self.fleet.record_failure(state, error.message, connection=connection)

    def native_call(
        self, ctx: CallContext, candidate: Candidate, provider: Provider
    ) -> NativeCall | None:
        """The client's own body for an upstream that speaks its format; None: translate."""
        speaks = getattr(provider, "speaks", None)
        if ctx.native is None or speaks is None or not speaks(ctx.kind, candidate.model):
            return None
        body = dict(ctx.native)
        body["model"] = candidate.model
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and not ROUTING_HINTS.isdisjoint(metadata):
            # Omen's routing hints are Omen's; upstreams refuse keys they do not know.
            body["metadata"] = {k: v for k, v in metadata.items() if k not in ROUTING_HINTS}
        return NativeCall(ctx.kind, body, ctx.client_headers)

    def upstream_body(self, ctx: CallContext, candidate: Candidate) -> JSON:
        body = dict(ctx.body)
        body["model"] = candidate.model
        return body

    async def call(self, ctx: CallContext) -> Answer | StreamPump:
        """Route, admit and walk the candidates until one answers (for a stream: until its
        first event); the same walk for every inbound format, passthrough or translated."""
        fleet, container = self.fleet, ctx.container
        models = (
            fleet.embedding_models(container)
            if ctx.kind == "embeddings"
            else fleet.chat_models(container)
        )
        decision = await self.decide(ctx, models)
        await self.admit(ctx, decision)
        failover = Failover(self, ctx, decision)
        for candidate, state, provider in failover.tries():
            native = self.native_call(ctx, candidate, provider)
            began = time.perf_counter()
            self.fleet.begin(state)
            span = self.tracing.span(
                "omen.upstream",
                provider=candidate.provider,
                endpoint=candidate.endpoint,
                model=candidate.model,
                stream=ctx.stream,
            )
            upstream: AsyncIterator[JSON | Relayed] | None = None
            first: JSON | Relayed = {}
            try:
                with span:
                    if ctx.stream:
                        upstream = (
                            cast(NativeProvider, provider).native_stream(candidate.url, native)
                            if native is not None
                            else provider.stream(candidate.url, self.upstream_body(ctx, candidate))
                        )
                        first = await anext(upstream)
                    elif native is not None:
                        result: ChatResponse | EmbeddingResponse = await cast(
                            NativeProvider, provider
                        ).native(candidate.url, native)
                    elif ctx.kind == "embeddings":
                        result = await provider.embed(
                            candidate.url, self.upstream_body(ctx, candidate)
                        )
                    else:
                        result = await provider.chat(
                            candidate.url, self.upstream_body(ctx, candidate)
                        )
            except (UpstreamError, StopAsyncIteration) as exc:
                self.fleet.end(state)
                if upstream is not None:
                    await close_quietly(upstream)
                if isinstance(exc, StopAsyncIteration):
                    exc = UpstreamError(502, f"{candidate.provider}: empty stream")
                if failover.failed(candidate, state, exc, began):
                    continue
                break
            except Exception as exc:  # an adapter choking on a malformed answer: the upstream's
                self.fleet.end(state)
                if upstream is not None:
                    await close_quietly(upstream)
                log.warning(
                    "unreadable upstream answer",
                    exc_info=True,
                    extra={"request_id": ctx.request_id, "provider": candidate.provider},
                )
                unreadable = UpstreamError(
                    502,
                    f"{candidate.provider} {candidate.endpoint}: the answer could not be read "
                    f"({type(exc).__name__})",
                )
                if failover.failed(candidate, state, unreadable, began):
                    continue
                break
            except BaseException:  # cancelled: the client went away before an answer
                self.fleet.end(state)
                if upstream is not None:
                    await close_quietly(upstream)
                failover.attempts.append(Attempt(candidate, 499, "client closed", _ms(began)))
                await self.abandon(ctx, decision, failover.attempts)
                raise
            self.note_translation(ctx, decision, candidate, native is not None)
            if upstream is not None:
                pump = StreamPump(
                    self, ctx, decision, candidate, state, upstream, first, failover.attempts, began
                )
                pump.start()
                return pump
            self.fleet.end(state)
            self.fleet.record_success(state, _ms(began), None)
            failover.attempts.append(Attempt(candidate, 200, None, _ms(began)))
            cost = self.recorder.price(candidate, result.usage)
            await self.usage.settle(ctx.admission, result.usage.total_tokens, cost)
            await self.pin_session(ctx, candidate)
            self.recorder.record(
                ctx, decision, candidate, 200, result.usage, cost, attempts=failover.attempts
            )
            raw = result.raw if isinstance(result, ChatResponse) else None
            return Answer(
                candidate, decision, result.usage, cost, result.body, raw, native is not None
            )
        raise await failover.give_up()

    async def abandon(
        self,
        ctx: CallContext,
        decision: RouteDecision | None,
        attempts: list[Attempt] | None = None,
        *,
        status: int = 499,
        error: str = "client closed the connection before an answer",
    ) -> None:
        """A request that ends without an answer still leaves its row and frees its
        reservation (at most once)."""
        if ctx.recorded:
            return
        self.recorder.record(
            ctx, decision, None, status, Usage(), 0.0, attempts=attempts, error=error
        )
        await asyncio.shield(self.usage.release(ctx.admission))

    def note_translation(
        self, ctx: CallContext, decision: RouteDecision, candidate: Candidate, native: bool
    ) -> None:
        """Name in the decision whether the body went through, and what translation dropped."""
        if ctx.kind == "embeddings":
            return
        provider = self.fleet.providers[candidate.provider]
        if ctx.kind == "chat":  # chat bodies go to chat-speaking upstreams nearly untouched
            speaks = getattr(provider, "speaks", None)
            decision.details["passthrough"] = speaks is not None and speaks("chat", candidate.model)
        else:
            decision.details["passthrough"] = native
            if native:
                return
        uncarried = getattr(provider, "uncarried", None)
        names = ctx.dropped + (uncarried(ctx.body, candidate.model) if uncarried else [])
        if names:
            dropped = [f"{name} ({candidate.provider})" for name in names]
            decision.details["dropped"] = dropped
            decision.reason += f" [dropped: {', '.join(dropped)}]"

    async def count_tokens(self, ctx: CallContext) -> TokenCount:
        """Input tokens of a request without running it: the upstream's own count where it
        has one (Anthropic's count_tokens, OpenAI's input_tokens), else Omen's estimate.
        Recorded like every request, at no cost and against no limit."""
        decision = await self.decide(ctx, self.fleet.chat_models(ctx.container), fits=False)
        route = ctx.route
        assert route is not None
        counted_by = decision.candidates[0]
        count = TokenCount(route.est_prompt_tokens, True, counted_by.provider)
        failover = Failover(self, ctx, decision)
        for candidate, _state, provider in failover.tries():
            native = self.native_call(ctx, candidate, provider)
            counter = getattr(provider, "count_tokens", None)
            if native is None or counter is None:
                continue
            began = time.perf_counter()
            try:
                tokens = await counter(candidate.url, native)
            except UpstreamError as exc:
                failover.attempts.append(Attempt(candidate, exc.status, exc.message, _ms(began)))
                continue
            failover.attempts.append(Attempt(candidate, 200, None, _ms(began)))
            count = TokenCount(int(tokens), False, candidate.provider)
            counted_by = candidate
            break
        decision.details["count_tokens"] = {"tokens": count.tokens, "estimated": count.estimated}
        ctx.kind = "count_tokens"  # recorded as what it was, after the wire format was used
        self.recorder.record(
            ctx,
            decision,
            counted_by,
            200,
            Usage(),  # counting consumes no tokens; the count is in the decision
            0.0,
            attempts=failover.attempts,
        )
        return count

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
        elif status in (503, 529):
            status = 503  # the upstream is overloaded
        elif status >= 500 or status < 400:
            status = 504 if status == 504 else 502  # SPEC: 502/503/504 when no upstream answered
        headers = {}
        wait = last.retry_after
        if status == 429 and wait is not None and math.isfinite(wait) and wait >= 0:
            headers["retry-after"] = str(int(min(wait, 3600) + 0.999))
        return ApiError(
            status, message, type_=last.type, param=last.param, code=last.code, headers=headers
        )


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000
