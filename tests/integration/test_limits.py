"""Quotas, budgets and rate limits through the real daemon: exact under concurrency, across
restarts, with the right 429s, warnings, alerts and overrides."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fakes import TextReply, run_fake
from tests.integration.conftest import ADMIN_KEY, APP_KEY, Omen, Upstreams

HELLO = [{"role": "user", "content": "x" * 400}]  # ~104 estimated prompt tokens


def limits_config(up: Upstreams, container_extra: str, server_extra: str = "") -> str:
    return f"""
[auth]
api_keys = [{{ key = "env:TEST_ADMIN_KEY", scope = "admin" }}]

[providers.ollama]
endpoints = ["{up.ollama_server.url}"]
models = ["llama3.1:8b"]
health_check_interval = "1h"

[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{up.openai_server.url}/v1"
models = ["gpt-4o"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"
{container_extra}
"""


async def burst(omen: Omen, count: int, **body: Any) -> list[httpx.Response]:
    payload = {"model": "gpt-4o", "messages": HELLO, **body}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=omen.url, timeout=30, limits=limits) as client:

        async def one() -> httpx.Response:
            response = await client.post(
                "/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {APP_KEY}"}
            )
            await response.aread()
            return response

        return list(await asyncio.gather(*(one() for _ in range(count))))


def post(omen: Omen, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o", "messages": HELLO, **body}
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )


def admin(omen: Omen, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(
        method,
        f"{omen.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )


def stored_spend(omen: Omen) -> tuple[int, float]:
    omen.stop()
    with sqlite3.connect(omen.database) as conn:
        count, cost = conn.execute(
            "SELECT count(*), coalesce(sum(cost_usd), 0) FROM requests WHERE status = 200"
        ).fetchone()
    return int(count), float(cost)


def test_200_concurrent_requests_against_50_per_hour_admit_exactly_50(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(
        limits_config(upstreams, "[containers.app.quotas]\nmax_requests_per_hour = 50")
    )
    responses = asyncio.run(burst(omen, 200))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150
    refused = next(r for r in responses if r.status_code == 429)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("quota_exceeded", "max_requests_per_hour")
    assert 3500 <= int(refused.headers["retry-after"]) <= 3600
    assert stored_spend(omen)[0] == 50


def test_streamed_spend_never_exceeds_a_cost_budget(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    # Each answer really costs 100 × $0.0025/1k + 50 × $0.01/1k = $0.00075; each reservation
    # (≈104 estimated prompt tokens + max_tokens 50) is $0.00076, never less than the truth.
    upstreams.openai.script.default = TextReply(
        "word " * 50, prompt_tokens=100, completion_tokens=50
    )
    omen = omen_factory(limits_config(upstreams, '[containers.app.budget]\ndaily = "0.0075"'))
    responses = asyncio.run(burst(omen, 200, stream=True, max_tokens=50, model="openai/gpt-4o"))
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) + len(refused) == 200
    assert {r.json()["error"]["code"] for r in refused} == {"budget_daily"}
    assert all(r.json()["error"]["type"] == "budget_exceeded" for r in refused)
    count, spent = stored_spend(omen)
    assert count == len(admitted) >= 9
    assert spent == pytest.approx(count * 0.00075)
    assert spent <= 0.0075  # reservations never under-estimate here, so no overshoot at all


def test_a_cost_budget_never_blocks_a_free_local_model(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(limits_config(upstreams, '[containers.app.budget]\ndaily = "0.0001"'))
    assert post(omen, model="openai/gpt-4o").status_code == 429
    assert post(omen, model="llama3.1:8b").status_code == 200
    fallback = post(omen, model="auto", metadata={"priority": "quality"})
    assert fallback.status_code == 200
    assert fallback.headers["x-omen-provider"] == "ollama"
    assert "budget_daily reached: local only" in fallback.headers["x-omen-route-reason"]


def test_counters_survive_a_restart(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = limits_config(upstreams, "[containers.app.quotas]\nmax_requests_per_hour = 50")
    first = omen_factory(config)
    assert [r.status_code for r in asyncio.run(burst(first, 30))].count(200) == 30
    first.stop()
    second = omen_factory(config)
    statuses = [r.status_code for r in asyncio.run(burst(second, 30))]
    assert statuses.count(200) == 20 and statuses.count(429) == 10


def test_soft_limit_warns_at_90_percent(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(
        limits_config(upstreams, "[containers.app.quotas]\nmax_requests_per_day = 10")
    )
    headers = [post(omen).headers.get("x-omen-quota-warning") for _ in range(10)]
    assert headers[:8] == [None] * 8
    assert headers[8] == "max_requests_per_day=90%"
    assert headers[9] == "max_requests_per_day=100%"
    refused = post(omen)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "max_requests_per_day"
    assert int(refused.headers["retry-after"]) <= 86400


def test_rate_limit_allows_a_burst_then_refuses_then_refills(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(
        limits_config(upstreams, "[containers.app.rate_limit]\nrequests_per_second = 2\nburst = 5")
    )
    statuses = [r.status_code for r in asyncio.run(burst(omen, 8))]
    assert statuses.count(200) == 5 and statuses.count(429) == 3
    refused = post(omen)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_exceeded", "requests_per_second")
    assert refused.headers["retry-after"] == "1"
    time.sleep(1.1)  # two more tokens at 2/s
    assert [post(omen).status_code for _ in range(3)] == [200, 200, 429]


def test_tokens_per_minute_counts_real_usage(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    upstreams.openai.script.default = TextReply("ok", prompt_tokens=100, completion_tokens=100)
    omen = omen_factory(
        limits_config(upstreams, "[containers.app.rate_limit]\ntokens_per_minute = 500")
    )
    assert [post(omen, max_tokens=100).status_code for _ in range(3)] == [200, 200, 429]
    refused = post(omen, max_tokens=100)
    assert refused.json()["error"]["code"] == "tokens_per_minute"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


@pytest.mark.parametrize("mode", ["warn", "ignore"])
def test_on_exceed_warn_and_ignore_admit_past_the_budget(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, mode: str
) -> None:
    omen = omen_factory(
        limits_config(upstreams, f'[containers.app.budget]\ndaily = "0.0001"\non_exceed = "{mode}"')
    )
    responses = [post(omen, model="openai/gpt-4o") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    warning = responses[-1].headers.get("x-omen-quota-warning", "")
    assert "budget_daily=" in warning


def test_budget_alert_webhook_fires_once_per_period_and_threshold(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    received: list[dict[str, Any]] = []

    async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append(json.loads(body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    upstreams.openai.script.default = TextReply("ok", prompt_tokens=100, completion_tokens=50)
    with run_fake(receiver) as hook:  # type: ignore[arg-type]
        omen = omen_factory(
            limits_config(
                upstreams,
                f'[containers.app.budget]\ndaily = "0.01"\nalert_at_percent = 50\n'
                f'alert_webhook = "{hook.url}/alerts"',
            )
        )
        for _ in range(12):  # $0.00075 each: 50% of $0.01 is crossed on the 7th
            post(omen, model="openai/gpt-4o", max_tokens=50)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    assert len(received) == 1
    alert = received[0]
    assert (alert["container"], alert["period"], alert["threshold_percent"]) == ("app", "daily", 50)
    assert alert["spent_usd"] >= 0.005 and alert["budget_usd"] == 0.01


def test_budget_override_applies_at_once_persists_and_is_audited(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = limits_config(upstreams, '[containers.app.budget]\ndaily = "10.00"')
    omen = omen_factory(config)
    assert post(omen, model="openai/gpt-4o").status_code == 200
    changed = admin(omen, "PUT", "/admin/containers/app/budget", {"daily": "0.0001"})
    assert changed.status_code == 200
    assert changed.json()["before"]["daily"] == 10.0 and changed.json()["after"]["daily"] == 0.0001
    assert post(omen, model="openai/gpt-4o").status_code == 429
    listing = admin(omen, "GET", "/admin/containers").json()
    app = next(c for c in listing["containers"] if c["container"] == "app")
    assert app["limits"]["budget_daily"] == 0.0001 and app["usage"]["requests_day"] == 1
    bad = admin(omen, "PUT", "/admin/containers/app/budget", {"daily": "lots"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "daily"
    assert admin(omen, "PUT", "/admin/containers/nope/budget", {"daily": 1}).status_code == 404
    omen.stop()
    again = omen_factory(config)
    assert post(again, model="openai/gpt-4o").status_code == 429  # the override persisted
    audit = again.omen("logs", "--audit", "--json").stdout
    assert '"action":"budget"' in audit and ADMIN_KEY not in audit


def test_a_container_near_its_budget_is_steered_to_the_cheapest_candidate(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    upstreams.openai.script.default = TextReply("ok", prompt_tokens=100, completion_tokens=50)
    omen = omen_factory(limits_config(upstreams, '[containers.app.budget]\ndaily = "0.0075"'))
    best = post(omen, model="auto", metadata={"priority": "quality"}, max_tokens=50)
    assert best.headers["x-omen-provider"] == "openai"  # quality-first, far from the budget
    for _ in range(8):
        assert post(omen, model="openai/gpt-4o", max_tokens=50).status_code == 200
    # $0.00675 of $0.0075 spent: past 90%, so quality-first gives way to the cheapest.
    steered = post(omen, model="auto", metadata={"priority": "quality"}, max_tokens=50)
    assert steered.status_code == 200
    assert steered.headers["x-omen-provider"] == "ollama"
    assert steered.headers["x-omen-route-reason"].startswith("budget 9")
    assert "steered to cheapest" in steered.headers["x-omen-route-reason"]


def test_a_request_that_can_never_fit_is_a_400_not_a_retry(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(
        limits_config(upstreams, "[containers.app.rate_limit]\ntokens_per_minute = 500")
    )
    refused = post(omen, max_tokens=5000)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "tokens_per_minute"
    assert "retry-after" not in refused.headers
