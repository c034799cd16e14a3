"""The Starlette application: routes, lifespan, and OpenAI-shaped answers for unknown paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from omen.config import LoadedConfig
from omen.daemon import Daemon
from omen.errors import ApiError
from omen.http.admin import AdminApi
from omen.http.admin_keys import KeyAdmin
from omen.http.api import Api, Handler, guarded
from omen.http.errors import error_response
from omen.http.loopback import LoopbackGuard, refusal


class ProxiedRoutes:
    """The proxied POST routes, dispatched by exact path ahead of Starlette's middleware stack
    and route scan (a sixth of a proxied request's CPU). Their handlers already answer every
    failure in the client's own error shape; the keyless guard is applied here the same way.
    Everything else goes to the Starlette app."""

    def __init__(self, app: ASGIApp, routes: dict[str, Handler], daemon: Daemon) -> None:
        self.app = app
        self.routes = routes
        self.daemon = daemon

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.routes.get(scope["path"])
            if handler is not None:
                why = refusal(scope) if self.daemon.keys.empty else None
                if why is not None:
                    response: object = error_response(ApiError(403, why, code="keyless_guard"))
                else:
                    response = await handler(Request(scope, receive))
                await response(scope, receive, send)  # type: ignore[operator]
                return
        await self.app(scope, receive, send)


def build_app(loaded: LoadedConfig) -> ASGIApp:
    daemon = Daemon(loaded)
    api = Api(daemon)
    admin = AdminApi(daemon, api)
    keys = KeyAdmin(admin)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await daemon.start()
        try:
            yield
        finally:
            await daemon.stop()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error_response(
            ApiError(exc.status_code, f"{message}: {request.method} {request.url.path}")
        )

    proxied: dict[str, Handler] = {
        "/v1/chat/completions": guarded(api.chat_completions),
        "/v1/embeddings": guarded(api.embeddings),
        "/v1/messages": api.messages,
        "/v1/messages/count_tokens": api.count_tokens,
        "/v1/responses": api.responses,
        "/v1/responses/input_tokens": api.input_tokens,
    }
    routes = [Route(path, handler, methods=["POST"]) for path, handler in proxied.items()]
    routes += [
        Route("/v1/models", guarded(api.models), methods=["GET"]),
        Route("/v1/feedback", guarded(api.feedback), methods=["POST"]),
        Route("/health", guarded(api.health), methods=["GET"]),
        Route("/ready", guarded(api.ready), methods=["GET"]),
        Route("/providers", guarded(api.providers), methods=["GET"]),
        Route("/metrics", guarded(api.metrics), methods=["GET"]),
        Route("/admin/endpoints", guarded(admin.endpoints), methods=["GET"]),
        Route("/admin/endpoints/drain", guarded(admin.drain), methods=["POST"]),
        Route("/admin/endpoints/undrain", guarded(admin.undrain), methods=["POST"]),
        Route("/admin/containers", guarded(admin.containers), methods=["GET"]),
        Route("/admin/containers/{name}/budget", guarded(admin.set_budget), methods=["PUT"]),
        Route("/admin/requests/{request_id}/replay", guarded(admin.replay), methods=["POST"]),
        Route("/admin/whatif", guarded(admin.whatif), methods=["GET"]),
        Route("/admin/keys", guarded(keys.listing), methods=["GET"]),
        Route("/admin/keys", guarded(keys.create), methods=["POST"]),
        Route("/admin/keys/{key_id}/revoke", guarded(keys.revoke), methods=["POST"]),
        Route("/admin/keys/{key_id}", guarded(keys.revoke), methods=["DELETE"]),
        Route("/admin/whoami", guarded(admin.whoami), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(LoopbackGuard, keyless=lambda: daemon.keys.empty)],
    )
    app.state.daemon = daemon
    return ProxiedRoutes(app, proxied, daemon)
