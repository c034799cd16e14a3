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

from omen.config import LoadedConfig
from omen.daemon import Daemon
from omen.errors import ApiError
from omen.http.admin import AdminApi
from omen.http.api import Api, guarded
from omen.http.errors import error_response
from omen.http.loopback import LoopbackGuard


def build_app(loaded: LoadedConfig) -> Starlette:
    daemon = Daemon(loaded)
    api = Api(daemon)
    admin = AdminApi(daemon, api)

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

    routes = [
        Route("/v1/chat/completions", guarded(api.chat_completions), methods=["POST"]),
        Route("/v1/embeddings", guarded(api.embeddings), methods=["POST"]),
        Route("/v1/messages", api.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", api.count_tokens, methods=["POST"]),
        Route("/v1/responses", api.responses, methods=["POST"]),
        Route("/v1/responses/input_tokens", api.input_tokens, methods=["POST"]),
        Route("/v1/models", guarded(api.models), methods=["GET"]),
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
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(LoopbackGuard, keyless=lambda: daemon.keys.empty)],
    )
    app.state.daemon = daemon
    return app
