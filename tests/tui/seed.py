"""A deterministic store for the console's tests and snapshots, written by the real StoreWriter.

Everything is placed relative to NOW (a fixed Wednesday, 12:30 UTC), so with the console's
clock frozen at NOW every figure, bar and chart comes out the same on every run.

`seed_fleet` writes a fleet's PostgreSQL store: instance "a" the whole seed, instance "b" an
hour of its own requests and its own probes, which find ollama/gpu1 down from where b runs.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from omen_store import (
    AuditRecord,
    BudgetChange,
    DrainChange,
    GpuSample,
    HealthSample,
    RequestRecord,
    StoreWriter,
)

NOW = datetime(2026, 3, 4, 12, 30, tzinfo=UTC).timestamp()
GIB = 2**30

CONTAINERS = ("app", "batch", "research", "support")
ROUTES = (
    ("ollama", "llama3.1:8b", "gpu1", 0.0, 0.0),
    ("ollama", "deepseek-coder:6.7b", "gpu1", 0.0, 0.0),
    ("openai", "gpt-4o", "api.openai.com", 0.0025, 0.01),
    ("openai", "gpt-4o-mini", "api.openai.com", 0.00015, 0.0006),
)
INTENTS = ("general", "code", "reasoning", "math")


def decision(provider: str, model: str, endpoint: str, intent: str, status: int) -> dict[str, Any]:
    options = [
        {
            "provider": provider,
            "model": model,
            "local": provider == "ollama",
            "quality": 0.82,
            "est_cost": 0.0 if provider == "ollama" else 0.0031,
            "latency_ms": 420.0,
            "score": 0.2141,
            "components": {"cost": 0.0, "latency": 0.1241, "quality": 0.09},
        },
        {
            "provider": "openai",
            "model": "gpt-4o",
            "local": False,
            "quality": 0.95,
            "est_cost": 0.0062,
            "latency_ms": 910.0,
            "score": 0.4412,
            "components": {"cost": 0.3, "latency": 0.1262, "quality": 0.015},
        },
    ]
    attempts = [
        {
            "provider": provider,
            "endpoint": endpoint,
            "model": model,
            "status": status,
            "error": None,
            "ms": 412.5,
        }
    ]
    if status >= 500:
        attempts[0]["error"] = "upstream 503: model is loading"
    return {
        "intent": {"name": intent, "source": "classifier", "signals": ["code fence", "python"]},
        "strategy": "balanced",
        "rule": None,
        "options": options,
        "excluded": [{"provider": "ollama", "model": "llama3.1:70b", "why": "no endpoint has it"}],
        "candidates": [
            {"provider": provider, "endpoint": endpoint, "model": model, "note": "model loaded"},
            {"provider": "openai", "endpoint": "api.openai.com", "model": "gpt-4o", "note": ""},
        ],
        "attempts": attempts,
    }


def requests(rng: random.Random) -> list[tuple[RequestRecord, dict[str, Any]]]:
    out = []
    # The last hour, one every 30 s: what the routing feed and the sparkline show.
    for index in range(120):
        ts = NOW - 3600 + index * 30 + 7
        out.append(_request(rng, f"req_{index:04d}", ts))
    # Earlier this week and month: spend the week/month columns add up.
    for day in range(1, 4):
        for index in range(6):
            ts = NOW - day * 86400 - index * 1800
            out.append(_request(rng, f"old_{day}_{index}", ts))
    return out


def _request(
    rng: random.Random, request_id: str, ts: float
) -> tuple[RequestRecord, dict[str, Any]]:
    container = CONTAINERS[rng.randrange(len(CONTAINERS))]
    provider, model, endpoint, price_in, price_out = ROUTES[rng.randrange(len(ROUTES))]
    intent = INTENTS[rng.randrange(len(INTENTS))]
    roll = rng.random()
    status = 200 if roll < 0.9 else 429 if roll < 0.95 else 502
    prompt, completion = rng.randrange(50, 4000), rng.randrange(20, 1500)
    if status != 200:
        prompt = completion = 0
    cost = round(prompt / 1000 * price_in + completion / 1000 * price_out, 6)
    if container == "research" and provider == "openai" and status == 200:
        cost *= 6  # the expensive tenant: close to its daily budget
    latency = rng.randrange(80, 2400) + 0.5
    reason = (
        f"intent={intent} (classifier) -> balanced -> {provider}/{model} @{endpoint}: "
        f"score 0.214 (cost 0, latency 0.124, quality 0.09); ${cost:.4f}"
    )
    error = None
    if status == 429:
        reason, error = "refused: budget_daily reached", "budget_daily: $2.00 spent of $2.00"
    elif status == 502:
        error = "all upstreams failed: upstream 503: model is loading"
    turn = int(request_id.rsplit("_", 1)[1])
    cached = _cache_reads(turn, provider, prompt, status)
    saved = round(cached / 1000 * price_in / 2, 6)  # OpenAI bills cached input at half price
    if container == "research" and provider == "openai":
        saved *= 6
    details = decision(provider, model, endpoint, intent, status)
    details["passthrough"] = provider == "openai"  # the client speaks OpenAI's format
    session = None
    if container == "app":  # the coding agent: sessions of ten turns
        session = f"ses_app_{turn // 10:03d}"
        first = turn % 10 == 0
        details["session"] = {
            "id": session,
            "action": "new" if first else "kept",
            "detail": "its first turn" if first else "stays on the session's provider",
        }
        if provider == "ollama":
            details["dropped"] = ["context_management (ollama)"]
    record = RequestRecord(
        id=request_id,
        ts=ts,
        container=container,
        key_id=f"key_{container}",
        kind="chat",
        requested_model="auto",
        model=model if status != 429 else None,
        provider=provider if status != 429 else None,
        endpoint=endpoint if status != 429 else None,
        intent=intent,
        strategy="balanced",
        stream=rng.random() < 0.3,
        status=status,
        latency_ms=latency,
        ttft_ms=round(latency / 4, 1),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cost_usd=cost,
        cache_saved_usd=saved,
        reason=reason,
        decision=details,
        error=error,
        session=session,
    )
    body = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": f"Question {request_id}: why does add(1) fail?"},
        ],
        "metadata": {"container_id": container},
    }
    return record, body


def _cache_reads(turn: int, provider: str, prompt: int, status: int) -> int:
    """Prompt tokens an OpenAI cache served: on two turns in three, 3/4 of a prompt of at least
    1024 tokens, in 128-token steps (no draw from the random stream: the rest stays put)."""
    if provider != "openai" or status != 200 or prompt < 1024 or turn % 3 == 0:
        return 0
    return prompt * 3 // 4 // 128 * 128


def operator_actions() -> list[AuditRecord]:
    """The audit rows of what operators did: the budgets and the drain above by an admin key,
    then an operator signed in through OIDC (ada@example.com, admin) who replayed a request,
    made a key and undrained an endpoint, and a config reload. A viewer did nothing: the
    daemon refuses a viewer's actions, so none of theirs is in the trail."""
    budgets = [
        AuditRecord(NOW - 7200, "key_admin", "budget", container, {}, after, None)
        for container, after in (
            ("app", {"daily": 5.0, "weekly": 25.0, "monthly": 80.0}),
            ("research", {"daily": 2.0, "monthly": 40.0}),
        )
    ]
    ada = "ada@example.com"
    return [
        *budgets,
        AuditRecord(
            NOW - 3300,
            "sighup",
            "reload",
            "/etc/omen/omen.toml",
            {"path": "/etc/omen/omen.toml", "providers": ["ollama", "openai"], "endpoints": 3},
            {"path": "/etc/omen/omen.toml", "providers": ["ollama", "openai"], "endpoints": 4},
            None,
        ),
        AuditRecord(
            NOW - 1800,
            ada,
            "undrain",
            "ollama/gpu1",
            {"drained": True, "reason": "kernel upgrade"},
            {"drained": False, "reason": None},
            None,
            role="admin",
        ),
        AuditRecord(
            NOW - 900,
            "key_admin",
            "drain",
            "ollama/gpu2",
            {"drained": False, "reason": None},
            {"drained": True, "reason": "driver update"},
            "driver update",
        ),
        AuditRecord(
            NOW - 600,
            ada,
            "key_create",
            "key_5f2a9c01d4e7",
            None,
            {"key_id": "key_5f2a9c01d4e7", "container": "research", "scope": "user"},
            "research notebook",
            role="admin",
        ),
        AuditRecord(
            NOW - 300,
            ada,
            "replay",
            "req_0112",
            None,
            {"request_id": "rep_0001", "mode": "reroute", "provider": "openai", "status": 200},
            None,
            role="admin",
        ),
    ]


Target = TypeVar("Target", Path, str)  # a SQLite file, or a PostgreSQL URL


def seed_store(path: Target, *, instance: str = "") -> Target:
    rng = random.Random(7)
    writer = StoreWriter(path, flush_interval=0.01, instance=instance)
    writer.start()
    for record, body in requests(rng):
        writer.record_request(record, body)
    for minute in range(60):
        ts = NOW - 3600 + minute * 60
        for provider, endpoint, healthy, latency in (
            ("ollama", "gpu1", True, 8.0 + minute % 5),
            ("ollama", "gpu2", minute < 50, 11.0 + minute % 3),
            ("openai", "api.openai.com", True, 95.0 + minute % 7),
        ):
            writer.record_health(
                HealthSample(
                    ts=ts,
                    provider=provider,
                    endpoint=endpoint,
                    healthy=healthy,
                    latency_ms=latency if healthy else None,
                    error=None if healthy else "connection refused",
                    in_flight=minute % 3 if provider == "ollama" else 0,
                )
            )
        for endpoint, phase, models in (
            ("gpu1", 0.0, [("llama3.1:8b", 5.4), ("deepseek-coder:6.7b", 4.8)]),
            ("gpu2", 1.7, [("llama3.1:8b", 5.4)]),
        ):
            util = round(55 + 40 * math.sin(minute / 6 + phase), 1)
            writer.record_gpu(
                GpuSample(
                    ts=ts,
                    provider="ollama",
                    endpoint=endpoint,
                    loaded_models=[
                        {
                            "name": name,
                            "size": int((size + 0.4) * GIB),
                            "size_vram": int(size * GIB),
                            "expires_at": "2026-03-04T12:45:00Z",
                            "context_length": 8192,
                        }
                        for name, size in models
                    ],
                    vram_used_bytes=int((sum(s for _, s in models) + 1.1) * GIB),
                    vram_total_bytes=24 * GIB,
                    gpu_util_percent=util,
                    in_flight=minute % 4,
                )
            )
    for container, after in (
        ("app", {"daily": 5.0, "weekly": 25.0, "monthly": 80.0}),
        ("research", {"daily": 2.0, "monthly": 40.0}),
    ):
        writer.record_budget_change(
            BudgetChange(NOW - 7200, container, {}, dict(after), "key_admin")
        )
    writer.record_drain(
        DrainChange(NOW - 900, "ollama", "gpu2", True, "driver update", "key_admin")
    )
    for record in operator_actions():
        writer.record_audit(record)
    for minutes, percent in ((50, 80.0), (20, 95.0)):
        writer.record_audit(
            AuditRecord(
                ts=NOW - minutes * 60,
                actor="omen",
                action="budget_alert",
                target="research",
                before=None,
                after={
                    "container": "research",
                    "period": "daily",
                    "threshold_percent": percent,
                    "spent_usd": round(2.0 * percent / 100, 4),
                    "budget_usd": 2.0,
                    "percent_used": percent,
                },
                detail=f"research|2026-03-04|{percent:g}",
            )
        )
    writer.close()
    return path


FLEET = ("a", "b")
DOWN_ON_B = ("ollama", "gpu1")  # b cannot reach it; a can


def seed_fleet(url: str) -> str:
    """Two instances on one PostgreSQL store (see the module docstring)."""
    seed_store(url, instance="a")
    rng = random.Random(11)
    writer = StoreWriter(url, flush_interval=0.01, instance="b")
    writer.start()
    for index in range(40):  # one request every 90 s over the last hour
        record, body = _request(rng, f"b_req_{index:04d}", NOW - 3600 + index * 90 + 20)
        writer.record_request(record, body)
    for minute in range(60):
        ts = NOW - 3600 + minute * 60 + 15
        for provider, endpoint, latency in (
            ("ollama", "gpu1", 14.0),
            ("ollama", "gpu2", 12.0),
            ("openai", "api.openai.com", 80.0),
        ):
            healthy = (provider, endpoint) != DOWN_ON_B
            writer.record_health(
                HealthSample(
                    ts=ts,
                    provider=provider,
                    endpoint=endpoint,
                    healthy=healthy,
                    latency_ms=latency if healthy else None,
                    error=None if healthy else "connect timeout from b",
                    in_flight=1 if provider == "openai" else 0,
                )
            )
    writer.close()
    return url
