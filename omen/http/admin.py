"""The admin API (admin-scope keys): endpoints and drains. Every action writes an audit row.

A drain takes effect at once (the next routing decision no longer sees the endpoint; requests
already in flight finish), persists across restarts through the store, and is audited with
the acting key's id — never the key.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from omen.auth import Principal
from omen.config import parse_money
from omen.daemon import Daemon
from omen.errors import ApiError, invalid
from omen.http.api import Api
from store import AuditRecord, BudgetChange, DrainChange


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

    # --- containers and budgets -------------------------------------------------------

    async def containers(self, request: Request) -> Response:
        self.admin(request)
        usage = self.daemon.usage
        out = []
        for name, spec in usage.specs.items():
            used = await usage.usage(name)
            out.append(
                {
                    "container": name,
                    "limits": {k: v for k, v in asdict(spec).items() if k != "container"},
                    "usage": used.as_dict(),
                    "spend": {
                        "daily": round(used.cost_day, 6),
                        "weekly": round(used.cost_week, 6),
                        "monthly": round(used.cost_month, 6),
                    },
                    "budget_overrides": dict(usage.overrides.get(name, {})),
                    "budget_pressure": round(usage.pressure.get(name, 0.0), 3),
                }
            )
        return json_response({"limits": usage.describe(), "containers": out})

    async def set_budget(self, request: Request) -> Response:
        principal = self.admin(request)
        name = request.path_params["name"]
        if name not in self.daemon.usage.specs:
            raise ApiError(404, f"container {name!r} is not configured", code="unknown_container")
        body = await self._body(request)
        if not body:
            raise invalid("give at least one of `daily`, `weekly`, `monthly`")
        changes: dict[str, float | None] = {}
        for key, value in body.items():
            if key not in ("daily", "weekly", "monthly"):
                raise invalid(
                    f"unknown field `{key}`; expected daily, weekly or monthly", param=key
                )
            if value is None:
                changes[key] = None  # back to the configured budget
                continue
            try:
                amount = parse_money(value)
            except (ValueError, TypeError) as exc:
                raise invalid(f"`{key}`: {exc}", param=key) from None
            changes[key] = amount
        usage = self.daemon.usage
        before = usage.set_budget(name, changes)
        spec = usage.specs[name]
        after = {
            "daily": spec.budget_daily,
            "weekly": spec.budget_weekly,
            "monthly": spec.budget_monthly,
        }
        now = time.time()
        actor = actor_of(principal)
        self.daemon.writer.record_budget_change(
            BudgetChange(now, name, before, dict(changes), actor)
        )
        self.daemon.writer.record_audit(
            AuditRecord(
                ts=now,
                actor=actor,
                action="budget",
                target=name,
                before=dict(before),
                after=dict(after),
                detail=None,
            )
        )
        return json_response({"container": name, "before": before, "after": after})
