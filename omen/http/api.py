"""OpenAI-compatible and health routes: parse, hand to the gateway, shape the answer."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from omen.auth import ANONYMOUS, Principal, bearer_token
from omen.calls import Answer, CallContext
from omen.daemon import Daemon
from omen.errors import ApiError, invalid
from omen.formats.base import InboundFormat
from omen.formats.registry import CHAT, MESSAGES, RESPONSES
from omen.gateway import header_safe
from omen.http.errors import error_response
from omen.http.sse import EventStreamResponse
from omen.http.validate import check_chat, check_embeddings, read_json
from omen.outcomes import Route
from omen.providers import JSON
from omen.sessions import session_id
from omen.streaming import StreamPump
from omen.telemetry import trace
from omen.telemetry.trace import continue_trace
from omen_store import FeedbackRecord, StoreError, StoreReader

log = logging.getLogger("omen.http")

# Client headers an upstream of the same format must see (SPEC §9).
FORWARDED_HEADERS = ("anthropic-beta", "anthropic-version")

Reply = Response | EventStreamResponse
Handler = Callable[[Request], Awaitable[Reply]]


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=headers
    )


def guarded(handler: Handler) -> Handler:
    """Every failure leaves as OpenAI's error shape; an unexpected one is logged, never leaked."""

    async def wrapper(request: Request) -> Reply:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)
        except Exception:
            log.exception("unhandled error", extra={"path": request.url.path})
            return error_response(ApiError(500, "internal error in Omen; see the daemon's log"))

    return wrapper


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    # --- auth ----------------------------------------------------------------------------

    def authenticate(self, request: Request) -> Principal:
        if self.daemon.keys.empty:
            return ANONYMOUS  # only possible on a loopback bind; checked at startup
        token = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
        if token is None:
            raise ApiError(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                code="missing_api_key",
            )
        principal = self.daemon.keys.authenticate(token)
        if principal is None:
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
        return principal

    def _has_key(self, request: Request) -> bool:
        if self.daemon.keys.empty:
            return True  # keyless loopback mode: whoever can reach it is the operator
        token = bearer_token(request.headers.get("authorization"), request.headers.get("x-api-key"))
        return token is not None and self.daemon.keys.authenticate(token) is not None

    def _refuse_if_unrecordable(self) -> None:
        """The store cannot write and nothing can be spilled: refuse rather than serve
        requests that would go unrecorded (server.on_store_failure)."""
        reason = self.daemon.store_refusal()
        if reason is not None:
            raise ApiError(
                503,
                f"Omen cannot record requests right now ({reason}); try again shortly",
                code="store_unavailable",
                headers={"retry-after": "5"},
            )

    @staticmethod
    def _trace(request: Request) -> str:
        context = continue_trace(
            request.headers.get("traceparent"), request.headers.get("tracestate")
        )
        trace.current.set(context)
        return context.trace_id

    # --- the proxied routes: one pipeline, a codec per client format ---------------------

    async def chat_completions(self, request: Request) -> Reply:
        return await self._serve(request, CHAT)

    async def messages(self, request: Request) -> Reply:
        """Anthropic-format clients (Claude Code): passed through to upstreams that speak
        Messages, translated for the others."""
        return await self._serve(request, MESSAGES)

    async def responses(self, request: Request) -> Reply:
        """OpenAI Responses clients (Codex CLI, the Agents SDK), stateless."""
        return await self._serve(request, RESPONSES)

    async def _decode(self, request: Request, fmt: InboundFormat, ctx: CallContext) -> None:
        """Read, decode and check the body into `ctx` (a 400 here is still a recorded row)."""
        native = await read_json(request, self.daemon.config.server.max_body_size)
        body, ctx.dropped = fmt.decode(native)
        check_chat(body)
        ctx.container = self.daemon.gateway.container_for(ctx.principal, body)
        ctx.body = body
        ctx.stream = bool(body.get("stream"))
        ctx.native = None if fmt is CHAT else native
        ctx.client_headers = {
            name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers
        }
        ctx.session = session_id(request.headers, native)
        if ctx.stream:
            ctx.encoder = fmt.encoder(native)

    async def _serve(self, request: Request, fmt: InboundFormat) -> Reply:
        headers: dict[str, str] = {}
        gateway = self.daemon.gateway
        ctx: CallContext | None = None
        try:
            principal = self.authenticate(request)  # an unknown caller leaves no row
            self._refuse_if_unrecordable()  # nor does one the store could not record
            ctx = CallContext(principal, principal.container or "default", fmt.wire, {})
            ctx.trace_id = self._trace(request)
            headers["x-omen-request-id"] = ctx.request_id
            await self._decode(request, fmt, ctx)
            if ctx.session:
                headers["x-omen-session"] = header_safe(ctx.session)
            result = await gateway.call(ctx)
        except ApiError as exc:
            if ctx is not None:  # refused before any upstream: still its one row
                await gateway.abandon(ctx, None, status=exc.status, error=exc.message)
            return _error(fmt, exc, headers)
        except Exception:
            log.exception("unhandled error", extra={"path": request.url.path})
            failure = ApiError(500, "internal error in Omen; see the daemon's log")
            if ctx is not None:
                await gateway.abandon(ctx, None, status=500, error=failure.message)
            return _error(fmt, failure, headers)
        headers.update(gateway.quota_headers(ctx))
        if isinstance(result, StreamPump):
            headers.update(
                _route_headers(
                    result.decision.intent.intent,
                    result.candidate.provider,
                    result.candidate.model,
                    result.decision.reason,
                )
            )
            headers["cache-control"] = "no-cache"
            headers["x-accel-buffering"] = "no"
            return EventStreamResponse(result.body(), headers, result.client_gone)
        if result.native or fmt is CHAT:
            return self._answer(result, headers)
        assert ctx.native is not None
        self._route_and_cost(result, str(result.body.get("model") or ""), headers)
        encoded = fmt.encode(result.body, result.usage, ctx.native)
        return json_response(encoded, headers=headers)

    def _answer(self, answer: Answer, headers: dict[str, str]) -> Response:
        self._route_and_cost(answer, str(answer.body.get("model") or ""), headers)
        content = answer.raw if answer.raw is not None else orjson.dumps(answer.body)
        return Response(content, media_type="application/json", headers=headers)

    @staticmethod
    def _route_and_cost(answer: Answer, model: str, headers: dict[str, str]) -> None:
        headers.update(
            _route_headers(
                answer.decision.intent.intent,
                answer.candidate.provider,
                model or answer.candidate.model,
                answer.decision.reason,
            )
        )
        headers["x-omen-cost-usd"] = f"{answer.cost:.6f}"

    async def embeddings(self, request: Request) -> Response:
        principal = self.authenticate(request)
        self._refuse_if_unrecordable()
        gateway = self.daemon.gateway
        ctx = CallContext(principal, principal.container or "default", "embeddings", {})
        ctx.trace_id = self._trace(request)
        headers = {"x-omen-request-id": ctx.request_id}
        try:
            body = await read_json(request, self.daemon.config.server.max_body_size)
            check_embeddings(body)
            ctx.container = gateway.container_for(principal, body)
            ctx.body = body
            answer = await gateway.call(ctx)
        except ApiError as exc:
            await gateway.abandon(ctx, None, status=exc.status, error=exc.message)
            return error_response(exc, headers)
        assert isinstance(answer, Answer)
        headers.update(gateway.quota_headers(ctx))
        return self._answer(answer, headers)

    # --- feedback -------------------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        """`POST /v1/feedback {"request_id", "score"}`: a client's verdict (0 bad .. 1 good,
        or true/false) on an answer it got, for `routing.adaptive`. A later verdict on the
        same request replaces the earlier one."""
        principal = self.authenticate(request)
        body = await read_json(request, 64 * 1024)
        request_id, score = body.get("request_id"), body.get("score")
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 100:
            raise invalid("request_id must be the x-omen-request-id of an answer", "request_id")
        if isinstance(score, bool):
            score = 1.0 if score else 0.0
        if not isinstance(score, int | float) or not math.isfinite(score) or not 0 <= score <= 1:
            raise invalid("score must be a number from 0 (bad) to 1 (good), or a boolean", "score")
        book = self.daemon.outcomes
        route, previous = book.route_of(request_id), book.verdict(request_id)
        if route is None:
            route, previous = await asyncio.to_thread(self._stored_route, request_id)
        if route is None:
            raise ApiError(
                404,
                f"no answered request {request_id!r} to give feedback on",
                param="request_id",
                code="request_not_found",
            )
        if principal.container is not None and principal.container != route.container:
            raise ApiError(
                403,
                f"request {request_id!r} belongs to another container",
                code="container_mismatch",
            )
        book.feedback(request_id, route, float(score), previous)
        self.daemon.writer.record_feedback(
            FeedbackRecord(
                ts=time.time(),
                request_id=request_id,
                score=float(score),
                actor=principal.key_id or principal.scope,
                container=route.container,
                intent=route.intent,
                provider=route.provider,
                model=route.model,
            )
        )
        return json_response(
            {
                "request_id": request_id,
                "score": float(score),
                "container": route.container,
                "intent": route.intent,
                "provider": route.provider,
                "model": route.model,
                "replaced": previous,
            }
        )

    def _stored_route(self, request_id: str) -> tuple[Route | None, float | None]:
        """An older request's route and verdict, from the store (a worker thread)."""
        try:
            with StoreReader(self.daemon.config.server.database) as reader:
                row = reader.get_request(request_id)
                if row is None or row.status >= 400 or not row.provider or not row.intent:
                    return None, None
                route = Route(row.container, row.intent, row.provider, row.model or "")
                return route, reader.feedback_for(request_id)
        except StoreError:
            return None, None

    # --- token counts -------------------------------------------------------------------

    async def count_tokens(self, request: Request) -> Reply:
        """`POST /v1/messages/count_tokens`: the upstream's count, else an estimate."""
        return await self._count(request, MESSAGES, lambda n: {"input_tokens": n})

    async def input_tokens(self, request: Request) -> Reply:
        """`POST /v1/responses/input_tokens`: the Responses API's token count."""
        return await self._count(
            request, RESPONSES, lambda n: {"object": "response.input_tokens", "input_tokens": n}
        )

    async def _count(
        self, request: Request, fmt: InboundFormat, shape: Callable[[int], JSON]
    ) -> Reply:
        headers: dict[str, str] = {}
        gateway = self.daemon.gateway
        ctx: CallContext | None = None
        try:
            principal = self.authenticate(request)
            self._refuse_if_unrecordable()
            ctx = CallContext(principal, principal.container or "default", fmt.wire, {})
            ctx.trace_id = self._trace(request)
            headers["x-omen-request-id"] = ctx.request_id
            native = await read_json(request, self.daemon.config.server.max_body_size)
            decodable = {**native, "stream": False}
            if fmt is MESSAGES:
                decodable.setdefault("max_tokens", 1)  # count_tokens bodies carry none
            body, _ = fmt.decode(decodable)
            check_chat(body)
            ctx.container = gateway.container_for(principal, body)
            ctx.body, ctx.native = body, native
            ctx.client_headers = {
                name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers
            }
            count = await gateway.count_tokens(ctx)
        except ApiError as exc:
            if ctx is not None:
                ctx.kind = "count_tokens"
                await gateway.abandon(ctx, None, status=exc.status, error=exc.message)
            return _error(fmt, exc, headers)
        except Exception:
            log.exception("unhandled error", extra={"path": request.url.path})
            failure = ApiError(500, "internal error in Omen; see the daemon's log")
            if ctx is not None:
                ctx.kind = "count_tokens"
                await gateway.abandon(ctx, None, status=500, error=failure.message)
            return _error(fmt, failure, headers)
        headers["x-omen-provider"] = count.provider
        if count.estimated:
            headers["x-omen-estimate"] = "true"
        return json_response(shape(count.tokens), headers=headers)

    async def models(self, request: Request) -> Response:
        # A key bound to a container lists what that container can reach; an unbound key
        # may act for any container, so it sees the whole fleet.
        container = self.authenticate(request).container
        created = int(self.daemon.started_at)
        data = [{"id": "auto", "object": "model", "created": created, "owned_by": "omen"}]
        seen = {"auto"}
        fleet = self.daemon.fleet
        tables = (fleet.chat_models(container), fleet.embedding_models(container))
        for table in tables:
            for provider, models in table.items():
                for model in models:
                    name = model.removesuffix(":latest")  # Ollama's two names for one model
                    if name not in seen:
                        seen.add(name)
                        data.append(
                            {
                                "id": name,
                                "object": "model",
                                "created": created,
                                "owned_by": provider,
                            }
                        )
        if "anthropic-version" in request.headers:
            # Anthropic's list shape too, for Claude Code and the anthropic SDK.
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
            for entry in data:
                entry.update(type="model", display_name=entry["id"], created_at=stamp)
            return json_response(
                {
                    "object": "list",
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"],
                    "last_id": data[-1]["id"],
                }
            )
        return json_response({"object": "list", "data": data})

    # --- health --------------------------------------------------------------------------

    def _endpoint_detail(self) -> list[dict[str, object]]:
        now = time.monotonic()
        return [state.as_dict(now) for state in self.daemon.fleet.endpoints.values()]

    async def metrics(self, request: Request) -> Response:
        await self.daemon.refresh_gauges()
        return Response(
            self.daemon.metrics.render(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    async def health(self, request: Request) -> Response:
        return json_response(
            {
                "status": "healthy",
                "uptime_s": round(time.time() - self.daemon.started_at, 1),
                "providers": sorted(self.daemon.fleet.provider_status()),
            }
        )

    async def ready(self, request: Request) -> Response:
        now = time.monotonic()
        usable = sum(1 for s in self.daemon.fleet.endpoints.values() if s.status(now) == "healthy")
        body: dict[str, object] = {"ready": usable > 0, "usable_endpoints": usable}
        store = self.daemon.store_problem()
        if store is not None:  # served requests would go unrecorded (or only spilled)
            body["ready"] = False
            body["store"] = store
        return json_response(body, 200 if body["ready"] else 503)

    async def providers(self, request: Request) -> Response:
        """Health for load balancers without a key; upstream error texts only with one."""
        body: dict[str, object] = dict(self.daemon.fleet.provider_status())
        endpoints = self._endpoint_detail()
        if not self._has_key(request):
            for endpoint in endpoints:
                endpoint["last_error"] = (
                    "(shown with an API key)" if endpoint["last_error"] else None
                )
        body["endpoints"] = endpoints
        body["unusable"] = dict(self.daemon.fleet.unusable)
        body["limits"] = self.daemon.usage.describe()
        return json_response(body)


def _error(fmt: InboundFormat, error: ApiError, headers: dict[str, str]) -> Response:
    """An error in the client's own shape."""
    return Response(
        orjson.dumps(fmt.error_body(error)),
        status_code=error.status,
        media_type="application/json",
        headers={**error.headers, **headers},
    )


def _route_headers(intent: str, provider: str, model: str, reason: str) -> dict[str, str]:
    return {
        "x-omen-provider": provider,
        "x-omen-model": header_safe(model),
        "x-omen-intent": intent,
        "x-omen-route-reason": header_safe(reason),
    }
