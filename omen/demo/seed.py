"""A store full of believable history, for screenshots and the console benchmark.

Rows go through the real StoreWriter, so rollups, indexes and redaction are exactly what the
daemon would have written. Deterministic for a given seed and `now`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from omen_store import GpuSample, HealthSample, RequestRecord, StoreWriter

ROUTES = (
    # provider, endpoint, model, $/token in, $/token out, typical latency ms
    ("ollama", "gpu-4090", "deepseek-coder:6.7b", 0.0, 0.0, 420.0),
    ("ollama", "gpu-4090", "llama3.1:8b", 0.0, 0.0, 380.0),
    ("ollama", "gpu-3070", "llama3.1:8b", 0.0, 0.0, 910.0),
    ("openai", "api.openai.com", "gpt-4o", 2.5e-6, 1e-5, 1300.0),
    ("openai", "api.openai.com", "gpt-4o-mini", 1.5e-7, 6e-7, 700.0),
    ("xai", "api.x.ai", "grok-2", 2e-6, 1e-5, 1600.0),
)
INTENTS = ("code", "general", "reasoning", "math", "agent", "vision")


def seed_store(
    path: Path,
    *,
    rows: int = 5000,
    containers: int = 6,
    days: float = 2.0,
    now: float | None = None,
    seed: int = 1,
) -> int:
    """Write `rows` requests spread over the last `days`, plus health and GPU samples."""
    rng = random.Random(seed)
    end = time.time() if now is None else now
    start = end - days * 86400
    names = ["app", "dev", "analytics", "game", "batch", "search"][:containers]
    names += [f"svc-{i:02d}" for i in range(len(names), containers)]
    writer = StoreWriter(path, flush_interval=0.5, max_batch=20_000)
    writer.start()
    try:
        step = (end - start) / max(rows, 1)
        for i in range(rows):
            ts = start + i * step + rng.uniform(0, step)
            container = names[min(int(rng.paretovariate(1.2)) - 1, len(names) - 1)]
            route = ROUTES[rng.randrange(len(ROUTES))]
            provider, endpoint, model, per_in, per_out, typical = route
            intent = "code" if provider == "ollama" and rng.random() < 0.6 else rng.choice(INTENTS)
            status = 200 if rng.random() > 0.03 else rng.choice((429, 502, 503))
            prompt = int(rng.lognormvariate(6.5, 0.8)) if status == 200 else 0
            completion = int(rng.lognormvariate(5.5, 0.7)) if status == 200 else 0
            latency = typical * rng.lognormvariate(0, 0.35)
            stream = rng.random() < 0.5
            cached = int(prompt * rng.choice((0.0, 0.5, 0.8))) if per_in else 0
            reason = (
                f"intent={intent} ({'code fence, python' if intent == 'code' else 'no signals'}) "
                f"→ balanced (lowest weighted score) → {provider}/{model} @{endpoint}: "
                f"{rng.randrange(4)} in flight; "
                + ("$0" if per_in == 0 else f"est ${(prompt * per_in + completion * per_out):.4f}")
            )
            writer.record_request(
                RequestRecord(
                    id=f"req_{int(ts * 1000):012x}{i:010x}",
                    ts=ts,
                    container=container,
                    key_id=f"key_{abs(hash(container)) % 10**12:012d}",
                    kind="chat",
                    requested_model="auto",
                    model=model if status != 429 else None,
                    provider=provider if status != 429 else None,
                    endpoint=endpoint if status != 429 else None,
                    intent=intent,
                    strategy="balanced",
                    stream=stream,
                    status=status,
                    latency_ms=latency,
                    ttft_ms=latency * 0.3 if stream else None,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    # Agents resend their history: clouds serve much of it from the prompt
                    # cache (read at a tenth of the input price here).
                    cached_tokens=cached,
                    cache_saved_usd=cached * per_in * 0.9,
                    session=f"ses_{container}_{i % 7}" if provider != "ollama" else None,
                    cost_usd=(prompt - cached * 0.9) * per_in + completion * per_out,
                    reason=reason,
                    decision={
                        "intent": {"name": intent, "source": "text", "signals": []},
                        "strategy": "balanced",
                        "options": [
                            {
                                "provider": p,
                                "model": m,
                                "local": p == "ollama",
                                "quality": 0.6 if p == "ollama" else 0.9,
                                "est_cost": 0.0,
                                "latency_ms": lat,
                                "score": 0.0,
                                "components": {},
                            }
                            for p, _, m, _, _, lat in ROUTES[:4]
                        ],
                        "excluded": [],
                        "attempts": [
                            {
                                "provider": provider,
                                "endpoint": endpoint,
                                "model": model,
                                "status": status,
                                "error": None,
                                "ms": round(latency, 1),
                            }
                        ],
                    },
                    error=None if status == 200 else f"upstream answered {status}",
                ),
                body={"model": "auto", "messages": [{"role": "user", "content": "…"}]}
                if i % 50 == 0
                else None,
            )
        for t in range(int(start), int(end), 60):
            for provider, endpoint, _, _, _, typical in ROUTES[:4]:
                writer.record_health(
                    HealthSample(
                        t,
                        provider,
                        endpoint,
                        rng.random() > 0.01,
                        typical / 20 * rng.uniform(0.5, 1.5),
                        None,
                        rng.randrange(4),
                    )
                )
            for endpoint, total in (("gpu-4090", 24), ("gpu-3070", 8)):
                used = rng.uniform(0.4, 0.95) * total * 1024**3
                writer.record_gpu(
                    GpuSample(
                        t,
                        "ollama",
                        endpoint,
                        [{"name": "llama3.1:8b", "size_vram": int(used)}],
                        int(used),
                        total * 1024**3,
                        rng.uniform(5, 95),
                        rng.randrange(4),
                    )
                )
    finally:
        writer.close(timeout=600)
    return rows
