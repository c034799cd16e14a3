"""What an operator's Prometheus, tracing and audit see: metrics, trace ids, audit rows, reloads."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes import TextReply
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    OTHER_KEY,
    UPSTREAM_KEY,
    Omen,
    Upstreams,
    base_config,
    wait_for_rows,
)

HELLO = [{"role": "user", "content": "Say hello"}]


def chat(
    omen: Omen, key: str = APP_KEY, headers: dict[str, str] | None = None, **body: object
) -> httpx.Response:
    payload = {"model": "gpt-4o", "messages": HELLO, **body}
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}", **(headers or {})},
        timeout=10,
    )


def scrape(omen: Omen) -> dict[str, float]:
    text = httpx.get(f"{omen.url}/metrics").text
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def value(samples: dict[str, float], metric: str, **labels: str) -> float:
    """Sum of the samples of `metric` whose labels include `labels`."""
    total = 0.0
    for key, number in samples.items():
        name, _, rest = key.partition("{")
        if name != metric:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(found.get(k) == v for k, v in labels.items()):
            total += number
    return total


def test_metrics_after_real_traffic_match_the_store(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = base_config(upstreams) + "\n[containers.app.quotas]\nmax_requests_per_hour = 5\n"
    omen = omen_factory(config)
    upstreams.openai.script.default = TextReply("hi", prompt_tokens=10, completion_tokens=4)
    statuses = [chat(omen).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    chat(omen, model="llama3.1:8b", key=OTHER_KEY)
    chat(omen, key=OTHER_KEY, metadata={"intent": "something-made-up"})
    rows = wait_for_rows(omen.database, 8)
    samples = scrape(omen)
    assert (
        value(
            samples,
            "omen_requests_total",
            container="app",
            provider="openai",
            model="gpt-4o",
            status="200",
        )
        == 5
    )
    assert value(samples, "omen_requests_total", container="app", status="429") == 1
    assert value(samples, "omen_requests_total") == len(rows) == 8
    stored_cost = sum(r.cost_usd for r in rows)  # type: ignore[attr-defined]
    assert value(samples, "omen_cost_usd_total") == pytest.approx(stored_cost)
    assert value(samples, "omen_tokens_total", type="input", provider="openai") == 60
    assert value(samples, "omen_tokens_total", type="output", provider="openai") == 24
    assert value(samples, "omen_request_duration_seconds_count", provider="openai") == 6
    assert (
        value(
            samples,
            "omen_routing_decisions_total",
            strategy="explicit",
            provider="openai",
            reason="explicit",
        )
        == 6
    )
    assert (
        value(samples, "omen_provider_selections_total", provider="ollama", intent="general") == 1
    )
    assert value(samples, "omen_provider_selections_total", provider="openai", intent="other") == 1
    assert (
        value(
            samples,
            "omen_quota_exceeded_total",
            container="app",
            quota_type="max_requests_per_hour",
        )
        == 1
    )
    assert (
        value(
            samples,
            "omen_quota_usage",
            container="app",
            quota_type="max_requests_per_hour",
            limit="5",
        )
        == 5
    )
    assert value(samples, "omen_provider_health", provider="ollama") == 1
    assert value(samples, "omen_provider_latency_seconds", provider="openai", percentile="p50") > 0
    text = httpx.get(f"{omen.url}/metrics").text
    assert "something-made-up" not in text and "req_" not in text  # bounded labels


def test_a_clients_traceparent_reaches_the_upstream_and_the_store(
    omen: Omen, upstreams: Upstreams
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    for stream in (False, True):
        response = chat(
            omen, headers={"traceparent": parent, "tracestate": "vendor=1"}, stream=stream
        )
        assert response.status_code == 200
        sent = upstreams.openai.requests_to("/v1/chat/completions")[-1].headers
        version, sent_trace, span, flags = sent["traceparent"].split("-")
        assert (version, sent_trace, flags) == ("00", trace_id, "01")
        assert span != "00f067aa0ba902b7"  # Omen's own span is the upstream call's parent
        assert sent["tracestate"] == "vendor=1"
    rows = wait_for_rows(omen.database, 2)
    assert [r.trace_id for r in rows] == [trace_id, trace_id]  # type: ignore[attr-defined]
    logged = [json.loads(line) for line in omen.omen("logs", "--json").stdout.splitlines()]
    assert {entry["trace_id"] for entry in logged} == {trace_id}


def test_requests_without_a_trace_start_one(omen: Omen, upstreams: Upstreams) -> None:
    chat(omen)
    sent = upstreams.openai.requests_to("/v1/chat/completions")[-1].headers["traceparent"]
    (row,) = wait_for_rows(omen.database, 1)
    assert sent.split("-")[1] == row.trace_id  # type: ignore[attr-defined]


def test_admin_actions_and_reloads_are_audited(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = base_config(upstreams) + '\n[containers.app.budget]\ndaily = "10.00"\n'
    omen = omen_factory(config)
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    endpoint = httpx.get(f"{omen.url}/admin/endpoints", headers=headers).json()["endpoints"][0]
    target = {"provider": endpoint["provider"], "endpoint": endpoint["endpoint"]}
    httpx.post(
        f"{omen.url}/admin/endpoints/drain",
        json={**target, "reason": "maintenance"},
        headers=headers,
    )
    httpx.post(f"{omen.url}/admin/endpoints/undrain", json=target, headers=headers)
    httpx.put(f"{omen.url}/admin/containers/app/budget", json={"daily": 4}, headers=headers)
    request_id = chat(omen).headers["x-omen-request-id"]
    wait_for_rows(omen.database, 1)
    httpx.post(
        f"{omen.url}/admin/requests/{request_id}/replay", json={}, headers=headers, timeout=30
    )
    omen.config.write_text(omen.config.read_text().replace('daily = "10.00"', 'daily = "9.00"'))
    omen.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    audit: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        audit = [
            json.loads(line) for line in omen.omen("logs", "--audit", "--json").stdout.splitlines()
        ]
        if any(row["action"] == "reload" for row in audit):
            break
        time.sleep(0.1)
    actions = {row["action"]: row for row in audit}
    assert {"drain", "undrain", "budget", "replay", "reload"} <= set(actions)
    assert actions["drain"]["after"] == {"drained": True, "reason": "maintenance"}  # type: ignore[comparison-overlap]
    assert actions["budget"]["before"]["daily"] == 10.0  # type: ignore[index]
    assert actions["budget"]["after"]["daily"] == 4.0  # type: ignore[index]
    assert actions["replay"]["target"] == request_id
    assert actions["reload"]["actor"] == "sighup" and actions["reload"]["detail"] is None
    for row in audit:
        assert str(row["actor"]).startswith(("key_", "sighup", "loopback", "omen"))
        assert ADMIN_KEY not in json.dumps(row)


def test_sighup_reload_keeps_in_flight_requests_and_counters(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = base_config(upstreams) + "\n[containers.app.quotas]\nmax_requests_per_hour = 5\n"
    omen = omen_factory(config)
    for _ in range(3):
        assert chat(omen).status_code == 200
    upstreams.openai.script.push(TextReply("a slow answer " * 5, chunk_delay=0.1))
    with httpx.stream(
        "POST",
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        timeout=20,
    ) as slow:
        lines = slow.iter_lines()
        next(lines)
        # Tighten the quota to 4 while that stream is still running.
        omen.config.write_text(omen.config.read_text().replace("= 5", "= 4"))
        omen.process.send_signal(signal.SIGHUP)
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"  # the in-flight stream finished normally
    deadline = time.monotonic() + 10
    while "config reloaded" not in omen.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    # 3 earlier + the stream = 4 counted; the new limit of 4 now refuses the next one.
    refused = chat(omen)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "max_requests_per_hour"


def test_an_invalid_reload_is_refused_and_the_old_config_keeps_running(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(base_config(upstreams))
    good = omen.config.read_text()
    omen.config.write_text(good + '\n[routing]\ndefault_strategy = "fastest"\n')
    omen.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in omen.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload refused" in omen.log.read_text()
    assert chat(omen).status_code == 200
    reloads: list[dict[str, object]] = []
    while not reloads and time.monotonic() < deadline + 5:
        # The config on disk is the broken one now: read the store directly.
        listing = omen.omen("logs", "--audit", "--json", "--db", str(omen.database)).stdout
        reloads = [json.loads(line) for line in listing.splitlines()]
        reloads = [row for row in reloads if row["action"] == "reload"]
    (reload,) = reloads
    assert str(reload["detail"]).startswith("refused")


def test_no_secret_reaches_json_logs_the_store_or_any_response(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(
        base_config(upstreams), server_extra='log_format = "json"\nlog_level = "debug"'
    )
    answers = [
        chat(omen),
        chat(omen, stream=True),
        chat(omen, key="sk-wrong"),
        chat(omen, model="nope"),
        httpx.get(f"{omen.url}/providers"),
        httpx.get(f"{omen.url}/metrics"),
        httpx.get(f"{omen.url}/health"),
        httpx.get(f"{omen.url}/admin/endpoints", headers={"authorization": f"Bearer {ADMIN_KEY}"}),
        httpx.get(f"{omen.url}/admin/containers", headers={"authorization": f"Bearer {ADMIN_KEY}"}),
    ]
    wait_for_rows(omen.database, 3)
    omen.stop()
    log = omen.log.read_text()
    assert any(line.startswith("{") for line in log.splitlines())  # JSON lines really
    with sqlite3.connect(omen.database) as conn:
        dump = "\n".join(conn.iterdump())
    for secret in (APP_KEY, OTHER_KEY, ADMIN_KEY, UPSTREAM_KEY):
        assert secret not in log
        assert secret not in dump
        for answer in answers:
            assert secret not in answer.text
            assert all(secret not in v for v in answer.headers.values())
