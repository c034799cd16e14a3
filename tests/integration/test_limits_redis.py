"""Shared limits: two `omen serve` processes on one real Redis hold one set of limits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
import redis

from tests.fakes import TextReply
from tests.integration.conftest import APP_KEY, Omen, Upstreams
from tests.integration.test_limits import HELLO, limits_config
from tests.redis_support import redis_prefix, redis_url_or_skip


@dataclass(frozen=True)
class SharedRedis:
    url: str
    prefix: str

    @property
    def server_extra(self) -> str:
        return f'redis_url = "{self.url}"\nredis_prefix = "{self.prefix}"'


@pytest.fixture
def shared_redis(request: pytest.FixtureRequest) -> SharedRedis:
    """The test Redis, and a key prefix of this test's own: no flush, no neighbours."""
    return SharedRedis(redis_url_or_skip(), redis_prefix(request.node.name[:40]))


async def spread(instances: list[Omen], count: int, **body: object) -> list[httpx.Response]:
    """`count` concurrent requests, alternating between the instances."""
    clients = [httpx.AsyncClient(base_url=o.url, timeout=30) for o in instances]
    payload = {"model": "gpt-4o", "messages": HELLO, **body}
    try:

        async def one(i: int) -> httpx.Response:
            response = await clients[i % len(clients)].post(
                "/v1/chat/completions",
                json=payload,
                headers={"authorization": f"Bearer {APP_KEY}"},
            )
            await response.aread()
            return response

        return list(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.aclose()


def two_instances(
    omen_factory: Callable[..., Omen], config: str, shared: SharedRedis
) -> list[Omen]:
    return [omen_factory(config, server_extra=shared.server_extra) for _ in range(2)]


def test_two_instances_share_one_request_quota_exactly(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, shared_redis: SharedRedis
) -> None:
    config = limits_config(upstreams, "[containers.app.quotas]\nmax_requests_per_hour = 50")
    instances = two_instances(omen_factory, config, shared_redis)
    statuses = [r.status_code for r in asyncio.run(spread(instances, 200))]
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    assert httpx.get(f"{instances[0].url}/providers").json()["limits"]["backend"] == "redis"


def test_two_instances_share_one_cost_budget_with_streams(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, shared_redis: SharedRedis
) -> None:
    upstreams.openai.script.default = TextReply("w " * 50, prompt_tokens=100, completion_tokens=50)
    config = limits_config(upstreams, '[containers.app.budget]\ndaily = "0.0075"')
    instances = two_instances(omen_factory, config, shared_redis)
    responses = asyncio.run(
        spread(instances, 200, stream=True, max_tokens=50, model="openai/gpt-4o")
    )
    admitted = sum(r.status_code == 200 for r in responses)
    assert 9 <= admitted <= 10
    client = redis.Redis.from_url(shared_redis.url)
    day_keys = list(client.scan_iter(f"{shared_redis.prefix}:{{app}}:day:*"))
    assert len(day_keys) == 1
    spent_micro = int(client.hget(day_keys[0], "cost") or 0)
    client.close()
    assert spent_micro == admitted * 750  # settled to the real $0.00075 each, in micro-dollars
    assert spent_micro <= 7500  # never past the $0.0075 budget


def test_limits_survive_a_restart_on_redis(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, shared_redis: SharedRedis
) -> None:
    config = limits_config(upstreams, "[containers.app.quotas]\nmax_requests_per_hour = 50")
    first = omen_factory(config, server_extra=shared_redis.server_extra)
    assert [r.status_code for r in asyncio.run(spread([first], 30))].count(200) == 30
    first.stop()
    second = omen_factory(config, server_extra=shared_redis.server_extra)
    assert [r.status_code for r in asyncio.run(spread([second], 30))].count(200) == 20


def test_redis_down_fails_closed_by_default_and_open_when_configured(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = limits_config(upstreams, "[containers.app.quotas]\nmax_requests_per_hour = 50")
    dead = "redis://127.0.0.1:1/0"
    closed = omen_factory(config, server_extra=f'redis_url = "{dead}"')
    response = httpx.post(
        f"{closed.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "limits_unavailable"
    limits = httpx.get(f"{closed.url}/providers").json()["limits"]
    assert limits["status"].startswith("unreachable") and limits["on_unreachable"] == "closed"
    opened = omen_factory(config, server_extra=f'redis_url = "{dead}"\nredis_fail_open = true')
    response = httpx.post(
        f"{opened.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert "unreachable" in closed.log.read_text() + opened.log.read_text()
