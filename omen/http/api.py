"""OpenAI-compatible and health routes: parse, hand to the gateway, shape the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from omen.auth import ANONYMOUS, Principal, bearer_token
from omen.daemon import Daemon
from omen.errors import ApiError
from omen.gateway import Answer, CallContext, header_safe
from omen.http.anthropic_inbound import AnthropicEncoder, error_body, from_openai, to_openai
from omen.http.errors import error_response
from omen.http.sse import EventStreamResponse
from omen.http.validate import check_chat, check_embeddings, read_json
from omen.streaming import open_stream
from omen.telemetry import trace
from omen.telemetry.trace import continue_trace

log = logging.getLogger("omen.http")

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

    async def _context(self, request: Request, kind: str) -> CallContext:
        principal = self.authenticate(request)
        body = await read_json(request, self.daemon.config.server.max_body_size)
        if kind == "chat":
            check_chat(body)
        else:
            check_embeddings(body)
        container = self.daemon.gateway.container_for(principal, body)
        ctx = CallContext(principal, container, kind, body, stream=bool(body.get("stream")))
        ctx.trace_id = self._trace(request)
        return ctx

    @staticmethod
    def _trace(request: Request) -> str:
        context = continue_trace(
            request.headers.get("traceparent"), request.headers.get("tracestate")
        )
        trace.current.set(context)
        return context.trace_id

    # --- OpenAI routes -------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Reply:
        ctx = await self._context(request, "chat")
        headers = {"x-omen-request-id": ctx.request_id}
        try:
            if ctx.stream:
                pump = await open_stream(self.daemon.gateway, ctx)
                headers.update(
                    _route_headers(
                        pump.decision.intent.intent,
                        pump.candidate.provider,
                        pump.candidate.model,
                        pump.decision.reason,
                    )
                )
                headers["cache-control"] = "no-cache"
                headers["x-accel-buffering"] = "no"
                headers.update(self.daemon.gateway.quota_headers(ctx))
                return EventStreamResponse(pump.body(), headers, pump.client_gone)
            answer = await self.daemon.gateway.chat(ctx)
        except ApiError as exc:
            return error_response(exc, headers)
        headers.update(self.daemon.gateway.quota_headers(ctx))
        return self._answer(answer, headers)

    def _answer(self, answer: Answer, headers: dict[str, str]) -> Response:
        model = str(answer.body.get("model") or answer.candidate.model)
        headers.update(
            _route_headers(
                answer.decision.intent.intent,
                answer.candidate.provider,
                model,
                answer.decision.reason,
            )
        )
        headers["x-omen-cost-usd"] = f"{answer.cost:.6f}"
        content = answer.raw if answer.raw is not None else orjson.dumps(answer.body)
        return Response(content, media_type="application/json", headers=headers)

    async def messages(self, request: Request) -> Reply:
        """Anthropic-format clients: same routing, limits and recording, Anthropic's shapes."""
        headers: dict[str, str] = {}
        try:
            principal = self.authenticate(request)
            body = to_openai(await read_json(request, self.daemon.config.server.max_body_size))
            check_chat(body)
            gateway = self.daemon.gateway
            container = gateway.container_for(principal, body)
            ctx = CallContext(
                principal, container, "messages", body, stream=bool(body.get("stream"))
            )
            ctx.trace_id = self._trace(request)
            headers["x-omen-request-id"] = ctx.request_id
            if ctx.stream:
                pump = await open_stream(gateway, ctx, AnthropicEncoder(body["model"]))
                headers.update(
                    _route_headers(
                        pump.decision.intent.intent,
                        pump.candidate.provider,
                        pump.candidate.model,
                        pump.decision.reason,
                    )
                )
                headers["cache-control"] = "no-cache"
                headers.update(gateway.quota_headers(ctx))
                return EventStreamResponse(pump.body(), headers, pump.client_gone)
            answer = await gateway.chat(ctx)
        except ApiError as exc:
            return Response(
                orjson.dumps(error_body(exc)),
                status_code=exc.status,
                media_type="application/json",
                headers={**exc.headers, **headers},
            )
        headers.update(self.daemon.gateway.quota_headers(ctx))
        headers.update(
            _route_headers(
                answer.decision.intent.intent,
                answer.candidate.provider,
                answer.candidate.model,
                answer.decision.reason,
            )
        )
        headers["x-omen-cost-usd"] = f"{answer.cost:.6f}"
        return json_response(from_openai(answer.body, answer.usage), headers=headers)

    async def embeddings(self, request: Request) -> Response:
        ctx = await self._context(request, "embeddings")
        headers = {"x-omen-request-id": ctx.request_id}
        try:
            answer = await self.daemon.gateway.chat(ctx)
        except ApiError as exc:
            return error_response(exc, headers)
        headers.update(self.daemon.gateway.quota_headers(ctx))
        return self._answer(answer, headers)

    async def models(self, request: Request) -> Response:
        self.authenticate(request)
        created = int(self.daemon.started_at)
        data = [{"id": "auto", "object": "model", "created": created, "owned_by": "omen"}]
        seen = {"auto"}
        for provider, models in self.daemon.fleet.chat_models().items():
            for model in models:
                if model not in seen:
                    seen.add(model)
                    data.append(
                        {"id": model, "object": "model", "created": created, "owned_by": provider}
                    )
        for provider, models in self.daemon.fleet.embedding_models().items():
            for model in models:
                if model not in seen:
                    seen.add(model)
                    data.append(
                        {"id": model, "object": "model", "created": created, "owned_by": provider}
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
        return json_response(
            {"ready": usable > 0, "usable_endpoints": usable}, 200 if usable else 503
        )

    async def providers(self, request: Request) -> Response:
        body: dict[str, object] = dict(self.daemon.fleet.provider_status())
        body["endpoints"] = self._endpoint_detail()
        body["unusable"] = dict(self.daemon.fleet.unusable)
        body["limits"] = self.daemon.usage.describe()
        return json_response(body)


def _route_headers(intent: str, provider: str, model: str, reason: str) -> dict[str, str]:
    return {
        "x-omen-provider": provider,
        "x-omen-model": header_safe(model),
        "x-omen-intent": intent,
        "x-omen-route-reason": header_safe(reason),
    }
