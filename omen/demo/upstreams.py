"""Simulated upstreams for `omen demo`: an Ollama GPU box (with a DCGM-style metrics page) and
an OpenAI-format cloud, answering in their real wire formats with believable latency.

These are for showing the console, not for conformance: the test suite's fakes
(tests/fakes) are the exact ones.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ANSWERS = (
    "Here is a short answer: use a dictionary keyed by id and update it in place.",
    "The trade-off is latency against cost; for this workload the local model is enough.",
    "Step one: reproduce it. Step two: bisect the change. Step three: add a test.",
    "The integral evaluates to pi over four, by substituting x = tan(t).",
)


async def _body(receive: Receive) -> dict[str, Any]:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        data = orjson.loads(b"".join(chunks) or b"{}")
    except orjson.JSONDecodeError:
        data = {}
    return data if isinstance(data, dict) else {}


async def _json(send: Send, data: object, status: int = 200) -> None:
    body = orjson.dumps(data)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = orjson.dumps(body.get("messages") or [])
    return max(8, len(text) // 4)


class SimulatedOllama:
    """One GPU box: models, what is loaded, a utilisation that follows the load."""

    def __init__(self, name: str, models: list[str], vram_total_gib: float, speed: float) -> None:
        self.name = name
        self.models = models
        self.loaded: dict[str, float] = {models[0]: time.time()}
        self.vram_total = int(vram_total_gib * 1024**3)
        self.speed = speed  # tokens per second
        self.in_flight = 0
        self.random = random.Random(hash(name) & 0xFFFF)

    def _size(self, model: str) -> int:
        return int((4.5 if "7b" in model or "8b" in model or "6.7b" in model else 2.2) * 1024**3)

    def _metrics(self) -> bytes:
        used = sum(self._size(m) for m in self.loaded)
        util = min(100.0, self.in_flight * 35 + self.random.uniform(2, 9))
        mib = 1024 * 1024
        return (
            "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n"
            "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
            f'DCGM_FI_DEV_GPU_UTIL{{gpu="0",Hostname="{self.name}"}} {util:.0f}\n'
            f'DCGM_FI_DEV_FB_USED{{gpu="0",Hostname="{self.name}"}} {used // mib}\n'
            f'DCGM_FI_DEV_FB_FREE{{gpu="0",Hostname="{self.name}"}} '
            f"{(self.vram_total - used) // mib}\n"
        ).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain; version=0.0.4")],
                }
            )
            await send({"type": "http.response.body", "body": self._metrics()})
        elif path == "/api/version":
            await _json(send, {"version": "0.5.1"})
        elif path == "/api/tags":
            await _json(
                send,
                {"models": [{"name": m, "model": m, "size": self._size(m)} for m in self.models]},
            )
        elif path == "/api/ps":
            now = time.time()
            await _json(
                send,
                {
                    "models": [
                        {
                            "name": m,
                            "model": m,
                            "size": self._size(m),
                            "size_vram": self._size(m),
                            "expires_at": time.strftime(
                                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(since + 300)
                            ),
                            "context_length": 8192,
                        }
                        for m, since in self.loaded.items()
                        if now - since < 300
                    ]
                },
            )
        elif path == "/api/chat":
            await self._chat(await _body(receive), send)
        elif path == "/api/embed":
            body = await _body(receive)
            inputs = body.get("input") or ""
            count = len(inputs) if isinstance(inputs, list) else 1
            await _json(
                send,
                {
                    "model": body.get("model"),
                    "embeddings": [[0.1] * 8] * count,
                    "prompt_eval_count": 8 * count,
                },
            )
        else:
            await _json(send, {"error": "not found"}, 404)

    async def _chat(self, body: dict[str, Any], send: Send) -> None:
        model = str(body.get("model"))
        if model not in self.models:
            await _json(send, {"error": f'model "{model}" not found, try pulling it first'}, 404)
            return
        self.in_flight += 1
        try:
            cold = model not in self.loaded
            self.loaded[model] = time.time()
            if len(self.loaded) > 2:  # the VRAM holds two models: evict the oldest
                del self.loaded[min(self.loaded, key=self.loaded.__getitem__)]
            await asyncio.sleep((1.2 if cold else 0.05) + self.random.uniform(0, 0.05))
            words = self.random.choice(ANSWERS).split()
            prompt = _prompt_tokens(body)
            final = {
                "model": model,
                "created_at": "2026-11-26T00:00:00Z",
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": prompt,
                "eval_count": len(words),
                "total_duration": 1,
            }
            if not body.get("stream", True):
                await asyncio.sleep(len(words) / self.speed)
                final["message"] = {"role": "assistant", "content": " ".join(words)}
                await _json(send, final)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")],
                }
            )
            for i, word in enumerate(words):
                await asyncio.sleep(1 / self.speed)
                piece = {
                    "model": model,
                    "message": {"role": "assistant", "content": word if i == 0 else " " + word},
                    "done": False,
                }
                await send(
                    {
                        "type": "http.response.body",
                        "body": orjson.dumps(piece) + b"\n",
                        "more_body": True,
                    }
                )
            await send({"type": "http.response.body", "body": orjson.dumps(final) + b"\n"})
        finally:
            self.in_flight -= 1


class SimulatedCloud:
    """An OpenAI-format provider with cloud-like latency and an occasional 503."""

    def __init__(self, models: list[str], latency_s: float, error_rate: float = 0.02) -> None:
        self.models = models
        self.latency_s = latency_s
        self.error_rate = error_rate
        self.random = random.Random(len(models))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.endswith("/models"):
            await _json(
                send,
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "sim"}
                        for m in self.models
                    ],
                },
            )
            return
        if not path.endswith("/chat/completions"):
            await _json(
                send,
                {
                    "error": {
                        "message": "not found",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                404,
            )
            return
        body = await _body(receive)
        await asyncio.sleep(self.latency_s * self.random.uniform(0.7, 1.6))
        if self.random.random() < self.error_rate:
            await _json(
                send,
                {
                    "error": {
                        "message": "The server is overloaded.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                503,
            )
            return
        words = self.random.choice(ANSWERS).split()
        prompt = _prompt_tokens(body)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(words) * 3,
            "total_tokens": prompt + len(words) * 3,
            # A repeated prefix is served from the prompt cache, as real clouds report it.
            "prompt_tokens_details": {
                "cached_tokens": int(prompt * self.random.choice((0.0, 0.5, 0.8)))
            },
        }
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        model = body.get("model")
        if not body.get("stream"):
            await _json(
                send,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": " ".join(words)},
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )

        async def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
                    "more_body": True,
                }
            )

        await event({"role": "assistant", "content": ""})
        for i, word in enumerate(words):
            await asyncio.sleep(0.01)
            await event({"content": word if i == 0 else " " + word})
        await event({}, "stop")
        tail: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": usage,
        }
        await send(
            {
                "type": "http.response.body",
                "body": b"data: " + orjson.dumps(tail) + b"\n\ndata: [DONE]\n\n",
            }
        )
