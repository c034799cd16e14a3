"""Every request's one row in the store, its metrics and its log line, priced.

The gateway and the stream pump hand each finished (or refused) request here; nothing else
writes requests. Pricing lives here too: fresh input, cache reads and writes, and output each
at the chosen model's price, and what the cache reads saved.
"""

from __future__ import annotations

import logging
from typing import Any

from omen.calls import Attempt, CallContext
from omen.errors import ApiError
from omen.outcomes import OutcomeBook
from omen.providers import Usage
from omen.routing import Candidate, RouteDecision, Router
from omen.telemetry.metrics import Metrics
from omen.telemetry.otel import Tracing
from omen_store import RequestRecord, StoreWriter

log = logging.getLogger("omen.requests")


class Recorder:
    def __init__(
        self,
        writer: StoreWriter,
        metrics: Metrics,
        tracing: Tracing,
        router: Router,
        *,
        keep_bodies: bool,
        outcomes: OutcomeBook | None = None,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.tracing = tracing
        self.router = router
        self.keep_bodies = keep_bodies
        self.outcomes = outcomes or OutcomeBook()

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

    def cache_saved(self, candidate: Candidate | None, usage: Usage) -> float:
        """What this request's cache reads saved against paying the full input price."""
        if candidate is None or not usage.cached_tokens:
            return 0.0
        spec = self.router.spec(candidate.provider, candidate.model)
        return usage.cached_tokens * (spec.input_cost_per_token - spec.cache_read_cost_per_token)

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
        ctx.recorded = True
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
            self.outcomes.observe(
                ctx.request_id, ctx.container, decision.intent.intent, ctx.kind, details["attempts"]
            )
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
                cache_write_tokens=usage.cache_write_tokens,
                cache_saved_usd=self.cache_saved(candidate, usage),
                session=ctx.session,
                reason=decision.reason if decision else (error or ""),
                decision=details,
                error=error,
                trace_id=ctx.trace_id,
                replay_of=ctx.replay_of,
                client_closed=client_closed,
            ),
            body=ctx.body if self.keep_bodies else None,
        )

    def refusal(
        self, ctx: CallContext, error: ApiError, decision: RouteDecision | None = None
    ) -> None:
        """A request refused before any upstream call (bad model, limits): logged, no spend."""
        self.record(ctx, decision, None, error.status, Usage(), 0.0, error=error.message)
