"""A canned admin API behind httpx.MockTransport: the daemon's answers, fixed, for snapshots.

The console's AdminClient runs unchanged over it (real httpx request/response handling);
only the network is replaced. Tests that need the real daemon use tests/integration's.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from omen_tui.client import AdminClient

URL = "http://omen.test:8080"


def _container(
    name: str, limits: dict[str, Any], usage: dict[str, Any], spend: dict[str, float]
) -> dict[str, Any]:
    base_limits: dict[str, Any] = {
        "max_requests_per_hour": None,
        "max_requests_per_day": None,
        "max_tokens_per_day": None,
        "max_cost_per_day": None,
        "budget_daily": None,
        "budget_weekly": None,
        "budget_monthly": None,
        "on_exceed": "deny",
        "alert_at_percent": None,
        "requests_per_second": None,
        "burst": None,
        "tokens_per_minute": None,
    }
    base_usage = {
        "requests_hour": 0,
        "requests_day": 0,
        "tokens_day": 0,
        "tokens_minute": 0,
        "cost_day": spend["daily"],
        "cost_week": spend["weekly"],
        "cost_month": spend["monthly"],
    }
    return {
        "container": name,
        "limits": base_limits | limits,
        "usage": base_usage | usage,
        "spend": spend,
        "budget_overrides": {},
        "budget_pressure": 0.0,
    }


CONTAINERS = [
    _container(
        "app",
        {
            "budget_daily": 5.0,
            "budget_weekly": 25.0,
            "budget_monthly": 80.0,
            "max_requests_per_hour": 100,
            "tokens_per_minute": 20000,
        },
        {"requests_hour": 31, "requests_day": 31, "tokens_day": 61000, "tokens_minute": 4100},
        {"daily": 1.21, "weekly": 4.05, "monthly": 9.87},
    ),
    _container(
        "batch",
        {"max_tokens_per_day": 500000},
        {"requests_day": 29, "tokens_day": 64000},
        {"daily": 0.42, "weekly": 1.33, "monthly": 2.1},
    ),
    _container(
        "research",
        {
            "budget_daily": 2.0,
            "budget_monthly": 40.0,
            "on_exceed": "deny",
            "requests_per_second": 5,
            "burst": 10,
        },
        {"requests_hour": 30, "requests_day": 30, "tokens_day": 58000},
        {"daily": 1.86, "weekly": 5.2, "monthly": 22.4},
    ),
    _container(
        "support",
        {"max_requests_per_day": 40},
        {"requests_day": 37, "tokens_day": 51000},
        {"daily": 0.33, "weekly": 0.9, "monthly": 1.7},
    ),
]

ENDPOINTS = [
    {"provider": "ollama", "endpoint": "gpu1", "url": "http://10.0.0.11:11434",
     "status": "healthy", "healthy": True, "drained": False, "drain_reason": None,
     "in_flight": 2, "latency_ms": 410.2, "probe_ms": 9.0, "requests": 60, "errors": 0,
     "error_rate": 0.0, "last_error": None,
     "loaded_models": ["llama3.1:8b", "deepseek-coder:6.7b"]},
    {"provider": "ollama", "endpoint": "gpu2", "url": "http://10.0.0.12:11434",
     "status": "drained", "healthy": False, "drained": True, "drain_reason": "driver update",
     "in_flight": 0, "latency_ms": None, "probe_ms": None, "requests": 0, "errors": 0,
     "error_rate": 0.0, "last_error": "connection refused", "loaded_models": []},
    {"provider": "openai", "endpoint": "api.openai.com", "url": "https://api.openai.com/v1",
     "status": "healthy", "healthy": True, "drained": False, "drain_reason": None,
     "in_flight": 1, "latency_ms": 880.0, "probe_ms": 97.0, "requests": 58, "errors": 2,
     "error_rate": 0.05, "last_error": None, "loaded_models": []},
]  # fmt: skip


class FakeAdmin:
    """The admin API's answers; `up=False` refuses every connection, as a stopped daemon.
    `instance`: the name the daemon gives itself in GET /admin/endpoints (a fleet's).
    `whoami`: what GET /admin/whoami answers (None: a daemon without the route, 404); a
    "viewer" role there may only read, as the daemon's viewer groups."""

    def __init__(
        self,
        *,
        up: bool = True,
        admin: bool = True,
        instance: str | None = None,
        whoami: dict[str, Any] | None = None,
    ) -> None:
        self.up = up
        self.admin = admin
        self.instance = instance
        self.whoami = whoami
        self.calls: list[tuple[str, str, Any]] = []
        self.whatif = WHATIF  # what GET /admin/whatif answers (tests may swap it)
        self.feedback_refused: set[str] = set()  # request ids POST /v1/feedback 404s

    def client(self, url: str = URL) -> AdminClient:
        return AdminClient(url, "sk-admin", transport=self.handle_transport())

    def handle_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        body: dict[str, Any] = orjson.loads(request.content) if request.content else {}
        if request.method == "GET" and request.url.params:
            body = dict(request.url.params)  # a GET's question is its query
        path = request.url.path
        self.calls.append((request.method, path, body))
        if path == "/health":
            return _json({"status": "healthy", "providers": ["ollama", "openai"]})
        if not self.admin:
            return _json({"error": {"message": "this route needs an admin-scope key"}}, 403)
        if path == "/admin/whoami" and self.whoami is not None:
            return _json(self.whoami)
        if request.method != "GET" and self.whoami and self.whoami.get("role") == "viewer":
            return _json({"error": {"message": "a viewer may only read"}}, 403)
        if path == "/admin/endpoints":
            answer: dict[str, Any] = {"providers": {}, "endpoints": ENDPOINTS}
            if self.instance is not None:
                answer["instance"] = self.instance
            return _json(answer)
        if path == "/admin/containers":
            return _json({"limits": {"backend": "memory"}, "containers": CONTAINERS})
        if path.endswith("/drain") or path.endswith("/undrain"):
            return _json({"provider": body["provider"], "endpoint": body["endpoint"]})
        if path.endswith("/budget"):
            return _json({"container": path.split("/")[3], "before": {}, "after": body})
        if path.endswith("/replay"):
            return _json(REPLAY)
        if path == "/admin/whatif":
            return _json(self.whatif)
        if path == "/v1/feedback":
            if body["request_id"] in self.feedback_refused:
                message = f"no answered request {body['request_id']!r} to give feedback on"
                return _json({"error": {"message": message, "param": "request_id"}}, 404)
            return _json({"request_id": body["request_id"], "score": float(body["score"])})
        return _json({"error": {"message": "not found"}}, 404)


def fleet_client(daemons: dict[str, FakeAdmin], key: str | None = "sk-admin") -> AdminClient:
    """One AdminClient over several fake daemons, each answering at its URL, in that order
    (as `omen tui --url a,b` gives them)."""

    def handle(request: httpx.Request) -> httpx.Response:
        return daemons[f"{request.url.scheme}://{request.url.netloc.decode()}"].handle(request)

    return AdminClient(list(daemons), key, transport=httpx.MockTransport(handle))


REPLAY = {
    "original": {
        "id": "req_0119", "container": "app", "provider": "openai", "model": "gpt-4o",
        "endpoint": "api.openai.com", "status": 200, "latency_ms": 1840.5,
        "prompt_tokens": 1200, "completion_tokens": 300, "cost_usd": 0.006,
    },
    "replay": {
        "request_id": "req_replay", "provider": "ollama", "model": "llama3.1:8b",
        "endpoint": "gpu1", "status": 200, "latency_ms": 612.0, "prompt_tokens": 1180,
        "completion_tokens": 280, "cost_usd": 0.0,
        "answer": "add() takes two arguments; add(1) passes one.", "error": None,
    },
}  # fmt: skip


def _side(cost: float, local: float, latency: float, quality: float) -> dict[str, float | None]:
    return {"cost_usd": cost, "local_share": local, "est_latency_ms": latency,
            "mean_quality": quality}  # fmt: skip


def _tally(requests: int, changed: int, actual: dict[str, float | None],
           whatif: dict[str, float | None]) -> dict[str, Any]:  # fmt: skip
    return {"requests": requests, "rerouted": requests - 2, "changed": changed, "unchanged": 2,
            "skipped": 1, "unpriced": 0, "actual": actual, "whatif": whatif}  # fmt: skip


NOTHING: dict[str, float | None] = {
    "cost_usd": 0.0,
    "local_share": None,
    "est_latency_ms": None,
    "mean_quality": None,
}

# As `omen whatif --json` prints it: cost-optimized would move research's work to the GPU.
WHATIF: dict[str, Any] = {
    "since_ts": 1772620200.0,
    "container": None,
    "policy": {"strategy": "cost-optimized", "prefer_local": None, "quality_threshold": None},
    "prices_per_1k": {},
    "containers": {
        "app": _tally(31, 4, _side(1.21, 0.42, 910.0, 0.86), _side(0.88, 0.55, 840.0, 0.84)),
        "research-and-development-eu": _tally(
            30, 12, _side(1.86, 0.2, 1240.0, 0.9), _side(0.31, 0.8, 610.0, 0.82)
        ),
        "idle": _tally(0, 0, NOTHING, NOTHING) | {"rerouted": 0, "unchanged": 0},
    },
    "total": _tally(61, 16, _side(3.07, 0.31, 1072.5, 0.88), _side(1.19, 0.67, 727.0, 0.83)),
}


def _json(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=orjson.dumps(data), headers={"content-type": "application/json"}
    )
