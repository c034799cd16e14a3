"""The admin API (admin-scope keys, or operators signed in: omen/operators.py): endpoints
and drains, budgets, replays, and what-if re-routing of the stored decisions. Every action
writes an audit row; reads write none.

A drain takes effect at once (the next routing decision no longer sees the endpoint; requests
already in flight finish), persists across restarts through the store, and is audited with
the acting key's id (never the key) or the signed-in operator's e-mail and role.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from omen.auth import Principal, bearer_token
from omen.calls import Answer, CallContext
from omen.config import parse_money
from omen.daemon import Daemon
from omen.errors import ApiError, invalid
from omen.http.api import Api
from omen.operators import Operator
from omen.routing import STRATEGIES
from omen.whatif import (
    Rerouter,
    WhatIf,
    parse_price,
    quality_fraction,
    report_json,
    scan,
    since_duration,
)
from omen_store import AuditRecord, BudgetChange, DrainChange, RequestRow, StoreError, StoreReader


def json_response(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


_MAX_BUDGET = 1e9  # USD: a larger budget is a typo, and breaks the arithmetic
_WHATIF_PARAMS = ("since", "container", "strategy", "prefer_local", "quality_threshold", "price")
_WHATIF_SINCE = "24h"
T = TypeVar("T")


class AdminApi:
    def __init__(self, daemon: Daemon, api: Api) -> None:
        self.daemon = daemon
        self.api = api

    async def operator(self, request: Request, *, write: bool) -> Operator:
        """The caller of an admin route, refused unless allowed: `write` routes change state
        (drain, budget, replay, keys) and need admin rights; the others may be read by any
        operator. A key is checked first and works as it always has; with [auth.oidc] or
        [auth.github] configured, any other bearer token is an operator's sign-in."""
        sign_in = self.daemon.sign_in
        if not sign_in.configured:
            principal = self.api.authenticate(request)
        else:
            headers = request.headers
            token = bearer_token(headers.get("authorization"), headers.get("x-api-key"))
            if token is None:
                raise ApiError(
                    401,
                    "Sign in first: send 'Authorization: Bearer TOKEN' with an admin key or "
                    "an operator's access token (`omen login`).",
                    code="missing_api_key",
                )
            found = None if self.daemon.keys.empty else self.daemon.keys.authenticate(token)
            if found is None:
                operator = await sign_in.operator(token)
                if write and not operator.may_write:
                    raise ApiError(
                        403,
                        f"{operator.actor} signed in as {operator.role}: this route needs "
                        "the admin role",
                        code="admin_required",
                    )
                return operator
            principal = found
        # With no keys configured Omen only listens on loopback: whoever is on the box is
        # the operator.
        if principal.scope not in ("admin", "anonymous"):
            raise ApiError(403, "this route needs an admin-scope key", code="admin_required")
        if principal.scope == "anonymous":
            return Operator("loopback", "", None, via="loopback")
        return Operator(principal.key_id or "loopback", "", principal.key_id, via="key")

    async def whoami(self, request: Request) -> Response:
        """Who the admin API takes the caller for, and with which role."""
        operator = await self.operator(request, write=False)
        return json_response(operator.whoami())

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
        await self.operator(request, write=False)
        now = time.monotonic()
        endpoints = [state.as_dict(now) for state in self.daemon.fleet.endpoints.values()]
        shared = self.daemon.shared
        if shared is not None:  # a fleet: every instance's newest view of each endpoint
            views: dict[tuple[str, str], list[dict[str, object]]] = {}
            for row in shared.views:
                views.setdefault((row.provider, row.endpoint), []).append(
                    {
                        "instance": row.instance,
                        "healthy": row.healthy,
                        "checked_at": row.ts,
                        "latency_ms": row.latency_ms,
                        "error": row.error,
                        "in_flight": row.in_flight,
                    }
                )
            for entry in endpoints:
                entry["instances"] = views.get((str(entry["provider"]), str(entry["endpoint"])), [])
        return json_response(
            {
                "instance": self.daemon.config.server.instance,
                "providers": self.daemon.fleet.provider_status(),
                "endpoints": endpoints,
            }
        )

    async def drain(self, request: Request) -> Response:
        return await self._set_drain(request, drained=True)

    async def undrain(self, request: Request) -> Response:
        return await self._set_drain(request, drained=False)

    async def _set_drain(self, request: Request, *, drained: bool) -> Response:
        operator = await self.operator(request, write=True)
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
        actor = operator.actor
        writer = self.daemon.writer
        writer.record_drain(DrainChange(now, state.provider, state.name, drained, reason, actor))
        if self.daemon.shared is not None:
            self.daemon.shared.note_drain(state.provider, state.name, now)
        writer.record_audit(
            AuditRecord(
                ts=now,
                actor=actor,
                action="drain" if drained else "undrain",
                target=f"{state.provider}/{state.name}",
                before=before,
                after={"drained": drained, "reason": state.drain_reason},
                detail=reason,
                role=operator.role,
            )
        )
        return json_response(state.as_dict(time.monotonic()))

    # --- containers and budgets -------------------------------------------------------

    async def containers(self, request: Request) -> Response:
        await self.operator(request, write=False)
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
        operator = await self.operator(request, write=True)
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
            if not amount <= _MAX_BUDGET:  # also NaN
                raise invalid(f"`{key}` must be at most {_MAX_BUDGET:,.0f} USD", param=key)
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
        actor = operator.actor
        self.daemon.writer.record_budget_change(
            BudgetChange(now, name, before, dict(changes), actor)
        )
        if self.daemon.shared is not None:
            self.daemon.shared.note_override(name, now)
        self.daemon.writer.record_audit(
            AuditRecord(
                ts=now,
                actor=actor,
                action="budget",
                target=name,
                before=dict(before),
                after=dict(after),
                detail=None,
                role=operator.role,
            )
        )
        return json_response({"container": name, "before": before, "after": after})

    # --- replay ------------------------------------------------------------------------

    async def replay(self, request: Request) -> Response:
        """Re-send a stored request: the same route, re-routed, or to a named provider/model."""
        operator = await self.operator(request, write=True)
        request_id = request.path_params["request_id"]
        body = await self._body(request)
        mode = body.get("mode", "same")
        provider, model = body.get("provider"), body.get("model")
        for name, value in (("provider", provider), ("model", model)):
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 200):
                raise invalid(f"`{name}` must be a name (a string of 1 to 200 characters)", name)
        if provider is not None or model is not None:
            mode = "named"
        if mode not in ("same", "reroute", "named"):
            raise invalid("`mode` must be same, reroute, or give provider/model", param="mode")
        writer = self.daemon.writer
        await asyncio.to_thread(writer.flush)
        original, stored = await asyncio.to_thread(self._load, request_id)
        if original is None:
            raise ApiError(404, f"no request {request_id!r} in the store", code="unknown_request")
        if stored is None:
            raise ApiError(
                409,
                f"the body of {request_id} is not stored (server.keep_request_bodies is 0 or it "
                "was pruned), so it cannot be replayed",
                code="body_not_stored",
            )
        replayed = dict(stored)
        replayed.pop("stream", None)
        replayed.pop("stream_options", None)
        if mode == "same" and original.provider and original.model:
            replayed["model"] = f"{original.provider}/{original.model}"
        elif mode == "reroute":
            replayed["model"] = original.requested_model
        elif mode == "named":
            # A model alone goes to whichever provider serves it (the router picks); a
            # provider alone keeps the original model on that provider.
            chosen_provider = provider or (None if model else original.provider)
            chosen_model = model or original.model or original.requested_model
            replayed["model"] = (
                f"{chosen_provider}/{chosen_model}" if chosen_provider else chosen_model
            )
        gateway = self.daemon.gateway
        ctx = CallContext(
            Principal(operator.key_id, "admin", original.container),
            original.container,
            original.kind if original.kind in ("chat", "embeddings") else "chat",
            replayed,
        )
        ctx.replay_of = request_id
        outcome: dict[str, Any] = {"request_id": ctx.request_id, "mode": mode}
        try:
            answer = await gateway.call(ctx)
            assert isinstance(answer, Answer)  # replays never stream
        except ApiError as exc:
            outcome.update(
                status=exc.status,
                error=exc.message,
                provider=None,
                model=None,
                latency_ms=round(ctx.elapsed_ms(), 1),
                prompt_tokens=0,
                completion_tokens=0,
                cost_usd=0.0,
                answer=None,
            )
        else:
            choices = answer.body.get("choices") or [{}]
            message = choices[0].get("message") or {}
            outcome.update(
                status=200,
                error=None,
                provider=answer.candidate.provider,
                model=answer.body.get("model") or answer.candidate.model,
                endpoint=answer.candidate.endpoint,
                latency_ms=round(ctx.elapsed_ms(), 1),
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
                cost_usd=round(answer.cost, 8),
                answer=message.get("content"),
                reason=answer.decision.reason,
            )
        writer.record_audit(
            AuditRecord(
                ts=time.time(),
                actor=operator.actor,
                action="replay",
                target=request_id,
                before=None,
                after={
                    k: outcome.get(k) for k in ("request_id", "mode", "provider", "model", "status")
                },
                detail=None,
                role=operator.role,
            )
        )
        return json_response({"original": self._describe(original), "replay": outcome})

    # --- what-if ---------------------------------------------------------------------------

    async def whatif(self, request: Request) -> Response:
        """`omen whatif --json` over the daemon's own store and config: the period's decisions
        ranked again under another strategy, prefer_local, threshold or prices, no upstream
        called. The scan reads up to a million rows, so it runs in a worker thread."""
        await self.operator(request, write=False)
        whatif, since, container = whatif_question(request.query_params)
        config = self.daemon.config  # one config for the whole scan, even across a reload
        database = config.server.database
        await asyncio.to_thread(self.daemon.writer.flush)  # the requests served until now count
        since_ts = time.time() - since
        rerouter = Rerouter(config, whatif)
        report = await asyncio.to_thread(self._whatif, rerouter, database, since_ts, container)
        return Response(report, media_type="application/json")

    @staticmethod
    def _whatif(
        rerouter: Rerouter, database: Path | str, since_ts: float, container: str | None
    ) -> str:
        try:
            scan(database, rerouter, since_ts=since_ts, container=container)
        except StoreError as exc:
            raise ApiError(503, f"what-if: {exc}", code="store_unavailable") from None
        return report_json(rerouter, since_ts, container)

    def _load(self, request_id: str) -> tuple[RequestRow | None, dict[str, Any] | None]:
        reader = StoreReader(self.daemon.config.server.database)
        try:
            return reader.get_request(request_id), reader.get_request_body(request_id)
        finally:
            reader.close()

    @staticmethod
    def _describe(row: RequestRow) -> dict[str, Any]:
        keep = (
            "id",
            "ts",
            "container",
            "requested_model",
            "provider",
            "model",
            "endpoint",
            "intent",
            "status",
            "latency_ms",
            "ttft_ms",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
            "reason",
            "error",
        )
        return {name: getattr(row, name) for name in keep}


# --- what-if ----------------------------------------------------------------------------------


def whatif_question(query: QueryParams) -> tuple[WhatIf, float, str | None]:
    """(the changes to try, the period in seconds, the container or None) from the query of
    `GET /admin/whatif`, checked by `omen whatif`'s own parsers; a bad one names its param."""
    unknown = sorted(set(query.keys()) - set(_WHATIF_PARAMS))
    if unknown:
        raise invalid(
            f"unknown parameter `{unknown[0]}`; expected {', '.join(_WHATIF_PARAMS)}",
            param=unknown[0],
        )
    for name in _WHATIF_PARAMS:
        if name != "price" and len(query.getlist(name)) > 1:
            raise invalid(f"`{name}` is given more than once", param=name)
    since = _parsed("since", query.get("since", _WHATIF_SINCE), since_duration)
    threshold = None
    if "quality_threshold" in query:
        threshold = _parsed("quality_threshold", query["quality_threshold"], quality_fraction)
    strategy = query.get("strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise invalid(
            f"`strategy` must be one of {', '.join(STRATEGIES)} (left out: each decision's own)",
            param="strategy",
        )
    prefer_local: bool | None = None
    if "prefer_local" in query:
        text = query["prefer_local"].strip().lower()
        if text not in ("true", "false"):
            raise invalid(
                "`prefer_local` must be true or false (left out: as configured)",
                param="prefer_local",
            )
        prefer_local = text == "true"
    prices = dict(_parsed("price", text, parse_price) for text in query.getlist("price"))
    whatif = WhatIf(strategy, prefer_local, threshold, prices)
    return whatif, since, query.get("container") or None


def _parsed(name: str, text: str, parse: Callable[[str], T]) -> T:
    """One parameter through its `omen whatif` parser; its error names the parameter."""
    try:
        return parse(text)
    except argparse.ArgumentTypeError as exc:
        raise invalid(f"`{name}`: {exc}", param=name) from None
