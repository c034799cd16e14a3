"""The admin API (admin-scope keys): endpoints and drains. Every action writes an audit row.

A drain takes effect at once (the next routing decision no longer sees the endpoint; requests
already in flight finish), persists across restarts through the store, and is audited with
the acting key's id — never the key.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from omen.auth import Principal
from omen.daemon import Daemon
from omen.errors import ApiError, invalid
from omen.http.api import Api
from store import AuditRecord, DrainChange


def actor_of(principal: Principal) -> str:
    return principal.key_id or "loopback"


def json_response(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


class AdminApi:
    def __init__(self, daemon: Daemon, api: Api) -> None:
        self.daemon = daemon
        self.api = api

    def admin(self, request: Request) -> Principal:
        principal = self.api.authenticate(request)
        # With no keys configured Omen only listens on loopback: whoever is on the box is
        # the operator.
        if principal.scope not in ("admin", "anonymous"):
            raise ApiError(403, "this route needs an admin-scope key", code="admin_required")
        return principal

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise invalid("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise invalid("request body must be a JSON object", code="invalid_json")
        return body

    async def endpoints(self, request: Request) -> Response:
        self.admin(request)
        now = time.monotonic()
        endpoints = [state.as_dict(now) for state in self.daemon.fleet.endpoints.values()]
        return json_response(
            {"providers": self.daemon.fleet.provider_status(), "endpoints": endpoints}
        )

    async def drain(self, request: Request) -> Response:
        return await self._set_drain(request, drained=True)

    async def undrain(self, request: Request) -> Response:
        return await self._set_drain(request, drained=False)

    async def _set_drain(self, request: Request, *, drained: bool) -> Response:
        principal = self.admin(request)
        body = await self._body(request)
        provider, endpoint = body.get("provider"), body.get("endpoint")
        if not isinstance(provider, str) or not provider:
            raise invalid("`provider` is required", param="provider")
        if not isinstance(endpoint, str) or not endpoint:
            raise invalid("`endpoint` is required (its name or URL)", param="endpoint")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise invalid("`reason` must be a string", param="reason")
        state = self.daemon.fleet.find(provider, endpoint)
        if state is None:
            raise ApiError(
                404, f"no endpoint {endpoint!r} on provider {provider!r}", code="unknown_endpoint"
            )
        before = {"drained": state.drained, "reason": state.drain_reason}
        self.daemon.fleet.set_drained(state.provider, state.name, drained, reason)
        now = time.time()
        actor = actor_of(principal)
        writer = self.daemon.writer
        writer.record_drain(DrainChange(now, state.provider, state.name, drained, reason, actor))
        writer.record_audit(
            AuditRecord(
                ts=now,
                actor=actor,
                action="drain" if drained else "undrain",
                target=f"{state.provider}/{state.name}",
                before=before,
                after={"drained": drained, "reason": state.drain_reason},
                detail=reason,
            )
        )
        return json_response(state.as_dict(time.monotonic()))
