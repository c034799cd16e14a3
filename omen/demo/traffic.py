"""Believable traffic for `omen demo`: several containers asking different kinds of things."""

from __future__ import annotations

import asyncio
import random
import threading

import httpx

PROMPTS: dict[str, list[str]] = {
    "code": [
        "Why does this raise KeyError?\n```python\ndef total(order):\n"
        "    return order['items']['price']\n```",
        "Write a Go function that reverses a slice of ints in place.",
        "This SQL is slow: SELECT * FROM orders WHERE customer_id = 42 ORDER BY created_at DESC;",
    ],
    "reasoning": [
        "Should we split the monolith into services now or after the next release? "
        "Weigh the trade-offs.",
        "Why do so many caching layers make latency worse under load? Analyse the causes.",
    ],
    "math": [
        "Solve 3x^2 - 12x + 9 = 0 and explain each step.",
        "What is the probability of two sixes in three dice rolls?",
    ],
    "general": [
        "Summarise the release notes in three bullet points.",
        "Write a friendly reminder email about Friday's maintenance window.",
    ],
}

# container -> (its key's env name, what it mostly asks, requests per second share)
CONTAINERS = {
    "app": ("general", 0.35),
    "dev": ("code", 0.35),
    "analytics": ("reasoning", 0.2),
    "game": ("math", 0.1),
}


class TrafficGenerator:
    """Runs in its own thread and event loop until stopped."""

    def __init__(self, url: str, keys: dict[str, str], rate: float, seed: int = 7) -> None:
        self.url = url
        self.keys = keys
        self.rate = rate
        self.random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="omen-demo-traffic", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            pending: set[asyncio.Task[None]] = set()
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(client))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(self.random.expovariate(self.rate))
            if pending:
                await asyncio.wait(pending, timeout=10)

    async def _one(self, client: httpx.AsyncClient) -> None:
        names = list(CONTAINERS)
        container = self.random.choices(names, weights=[CONTAINERS[n][1] for n in names])[0]
        favourite = CONTAINERS[container][0]
        kind = favourite if self.random.random() < 0.7 else self.random.choice(list(PROMPTS))
        body: dict[str, object] = {
            "model": "auto",
            "messages": [{"role": "user", "content": self.random.choice(PROMPTS[kind])}],
            "stream": self.random.random() < 0.5,
            "max_tokens": 300,
        }
        if self.random.random() < 0.1:
            body["metadata"] = {
                "priority": self.random.choice(["low-latency", "quality", "low-cost"])
            }
        try:
            response = await client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {self.keys[container]}"},
            )
            await response.aread()
            self.sent += 1
        except httpx.HTTPError:
            pass  # the demo daemon is stopping or an upstream hiccuped: keep going
