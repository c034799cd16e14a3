"""The daemon as an operator runs it: CLI commands, health routes, load balancing, shutdown."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes import (
    CutStream,
    ErrorReply,
    FakeState,
    TextReply,
    make_ollama_app,
    refusing_url,
    run_fake,
)
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    OTHER_KEY,
    ROOT,
    UPSTREAM_KEY,
    Omen,
    Upstreams,
    base_config,
    free_port,
    omen_env,
    wait_for_rows,
)

HELLO = [{"role": "user", "content": "Say hello"}]
# The seed document's `omen.toml` block, copied verbatim (CI has ../shared; a plain clone may not).
SEED_TOML = ROOT / "tests" / "data" / "seed_omen.toml"
SEED_DOC = ROOT.parent / "shared" / "seed" / "OMEN_BOLT_INTEGRATION.md"


def chat(omen: Omen, model: str = "gpt-4o", key: str = APP_KEY, **extra: object) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": model, "messages": HELLO, **extra},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_omen_logs_shows_the_requests_just_made_with_their_ids(omen: Omen) -> None:
    ids = [chat(omen).headers["x-omen-request-id"] for _ in range(3)]
    other = chat(omen, key=OTHER_KEY).headers["x-omen-request-id"]
    wait_for_rows(omen.database, 4)
    result = omen.omen("logs", "--container", "app")
    assert result.returncode == 0, result.stderr
    for request_id in ids:
        assert request_id in result.stdout
    assert other not in result.stdout
    as_json = omen.omen("logs", "--container", "app", "--json")
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["id"] for r in rows] == ids
    assert all(r["provider"] == "openai" and r["cost_usd"] > 0 for r in rows)


def test_omen_logs_works_with_the_daemon_stopped_and_filters(
    omen: Omen, upstreams: Upstreams
) -> None:
    chat(omen)
    upstreams.openai.script.push(ErrorReply(500))
    chat(omen)
    chat(omen, model="llama3.1:8b")
    wait_for_rows(omen.database, 3)
    assert omen.stop() == 0
    everything = omen.omen("logs")
    assert everything.returncode == 0 and len(everything.stdout.splitlines()) == 3
    errors = omen.omen("logs", "--level", "error")
    # The upstream's 500 reached the client as a 502 (SPEC: no upstream could answer).
    assert len(errors.stdout.splitlines()) == 1 and " 502 " in errors.stdout
    local = omen.omen("logs", "--provider", "ollama")
    assert len(local.stdout.splitlines()) == 1 and "llama3.1:8b" in local.stdout
    recent = omen.omen("logs", "--since", "1h", "--limit", "2")
    assert len(recent.stdout.splitlines()) == 2


def test_omen_logs_follow_prints_new_requests(omen: Omen) -> None:
    chat(omen)
    wait_for_rows(omen.database, 1)
    follower = subprocess.Popen(
        [sys.executable, "-m", "omen", "logs", "--follow", "--config", str(omen.config)],
        stdout=subprocess.PIPE,
        text=True,
        env=omen.env,
        cwd=omen.config.parent,
    )
    try:
        time.sleep(1.0)
        new_id = chat(omen).headers["x-omen-request-id"]
        deadline = time.monotonic() + 10
        seen = ""
        assert follower.stdout is not None
        while new_id not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert new_id in seen
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=5)


def test_logs_without_a_store_says_so(tmp_path: Path) -> None:
    config = tmp_path / "omen.toml"
    config.write_text('[server]\ndatabase = "missing.db"\n')
    result = subprocess.run(
        [sys.executable, "-m", "omen", "logs", "--config", str(config)],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=30,
    )
    assert result.returncode == 1
    assert "missing.db" in result.stderr


def test_the_seed_copy_matches_the_seed_document() -> None:
    if not SEED_DOC.exists():
        pytest.skip("the seed document (../shared) is not beside this checkout")
    text = SEED_DOC.read_text()
    start = text.index("```toml\n# omen.toml")
    block = text[start + len("```toml\n") : text.index("```", start + 7)]
    assert SEED_TOML.read_text() == block


@pytest.mark.parametrize("which", ["example", "seed"])
def test_config_check_passes_on_the_example_and_the_seed(tmp_path: Path, which: str) -> None:
    if which == "example":
        path = ROOT / "config.example.toml"
    else:
        path = tmp_path / "omen.toml"
        path.write_text(SEED_TOML.read_text())
    result = subprocess.run(
        [sys.executable, "-m", "omen", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_config_check_reports_each_problem_with_its_path_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "omen.toml"
    path.write_text(
        '[server]\nbind = "nowhere"\n[routing]\ndefault_strategy = "fastest"\n'
        '[providers.anthropic]\ntimeot = "60s"\n'
        '[containers.app.budget]\non_exceed = "explode"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "omen", "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=30,
    )
    assert result.returncode == 1
    for key in (
        "server.bind:",
        "routing.default_strategy:",
        "providers.anthropic.timeot:",
        "containers.app.budget.on_exceed:",
    ):
        assert key in result.stdout


def test_serve_refuses_a_public_bind_without_keys(tmp_path: Path) -> None:
    path = tmp_path / "omen.toml"
    path.write_text(f'[server]\nbind = "0.0.0.0:{free_port()}"\ndatabase = "x.db"\n')
    result = subprocess.run(
        [sys.executable, "-m", "omen", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=30,
    )
    assert result.returncode == 1
    assert "without API keys" in result.stderr


def test_without_keys_loopback_serves_without_auth(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = base_config(upstreams)
    config = config.replace('api_keys = [{ key = "env:TEST_ADMIN_KEY", scope = "admin" }]', "")
    config = config.replace('api_key = "env:TEST_APP_KEY"', "").replace(
        'api_key = "env:TEST_OTHER_KEY"', ""
    )
    instance = omen_factory(config)
    response = httpx.post(
        f"{instance.url}/v1/chat/completions", json={"model": "llama3.1:8b", "messages": HELLO}
    )
    assert response.status_code == 200


def test_health_ready_and_providers(omen: Omen) -> None:
    health = httpx.get(f"{omen.url}/health").json()
    assert health["status"] == "healthy"
    assert set(health["providers"]) == {"ollama", "openai"}
    assert httpx.get(f"{omen.url}/ready").status_code == 200
    providers = httpx.get(f"{omen.url}/providers").json()
    assert providers["ollama"] == "healthy" and providers["openai"] == "healthy"
    endpoint = next(e for e in providers["endpoints"] if e["provider"] == "ollama")
    assert endpoint["loaded_models"] == ["llama3.1:8b"]
    assert UPSTREAM_KEY not in json.dumps(providers)


def test_ready_is_503_when_no_endpoint_is_reachable(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    config = base_config(upstreams).replace(upstreams.ollama_server.url, refusing_url())
    config = config.replace(f"{upstreams.openai_server.url}/v1", refusing_url() + "/v1")
    instance = omen_factory(config)
    response = httpx.get(f"{instance.url}/ready")
    assert response.status_code == 503
    assert httpx.get(f"{instance.url}/providers").json()["ollama"] == "down"


def ollama_cluster_config(urls: list[str], balancing: str) -> str:
    endpoints = ", ".join(f'"{u}"' for u in urls)
    return f"""
[auth]
api_keys = [{{ key = "env:TEST_APP_KEY", scope = "user" }}]

[providers.ollama]
endpoints = [{endpoints}]
models = ["llama3.1:8b"]
load_balancing = "{balancing}"
health_check_interval = "1h"
"""


def test_round_robin_spreads_requests_evenly(omen_factory: Callable[..., Omen]) -> None:
    fakes = [FakeState(models=["llama3.1:8b"]) for _ in range(3)]
    with (
        run_fake(make_ollama_app(fakes[0])) as a,
        run_fake(make_ollama_app(fakes[1])) as b,
        run_fake(make_ollama_app(fakes[2])) as c,
    ):
        instance = omen_factory(ollama_cluster_config([a.url, b.url, c.url], "round-robin"))
        for _ in range(9):
            assert chat(instance, model="llama3.1:8b").status_code == 200
    assert [f.served for f in fakes] == [3, 3, 3]


def test_the_endpoint_with_the_model_loaded_wins(omen_factory: Callable[..., Omen]) -> None:
    cold = FakeState(models=["llama3.1:8b"], loaded=[])
    warm = FakeState(models=["llama3.1:8b"], loaded=["llama3.1:8b"])
    with run_fake(make_ollama_app(cold)) as a, run_fake(make_ollama_app(warm)) as b:
        instance = omen_factory(ollama_cluster_config([a.url, b.url], "least-loaded"))
        responses = [chat(instance, model="llama3.1:8b") for _ in range(4)]
    assert all("model loaded" in r.headers["x-omen-route-reason"] for r in responses)
    assert (cold.served, warm.served) == (0, 4)


def test_least_loaded_counts_omens_own_in_flight_requests(
    omen_factory: Callable[..., Omen],
) -> None:
    fakes = [FakeState(models=["llama3.1:8b"]) for _ in range(2)]
    for fake in fakes:
        fake.script.default = TextReply("slow answer", chunk_delay=0.05)
    with run_fake(make_ollama_app(fakes[0])) as a, run_fake(make_ollama_app(fakes[1])) as b:
        instance = omen_factory(ollama_cluster_config([a.url, b.url], "least-loaded"))
        with httpx.Client(timeout=20) as client:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: chat(instance, model="llama3.1:8b", stream=True), range(8)))
        del client
    assert fakes[0].served + fakes[1].served == 8
    assert abs(fakes[0].served - fakes[1].served) <= 2
    assert max(f.max_in_flight for f in fakes) <= 5


def test_an_endpoint_that_dies_fails_over_and_cools_down(omen_factory: Callable[..., Omen]) -> None:
    doomed, survivor = FakeState(models=["llama3.1:8b"]), FakeState(models=["llama3.1:8b"])
    with run_fake(make_ollama_app(survivor)) as good:
        dying = run_fake(make_ollama_app(doomed))
        instance = omen_factory(ollama_cluster_config([dying.url, good.url], "round-robin"))
        dying.stop()  # healthy at the last probe, refusing connections now
        for _ in range(4):
            response = chat(instance, model="llama3.1:8b")
            assert response.status_code == 200
    assert survivor.served == 4
    rows = wait_for_rows(instance.database, 4)
    attempts = [a for row in rows for a in row.decision["attempts"]]  # type: ignore[attr-defined]
    failed = [a for a in attempts if a["status"] == 502]
    # The first failure cools the endpoint down: it is not tried again for the next requests.
    assert len(failed) == 1 and "connect" in failed[0]["error"]
    endpoints = httpx.get(f"{instance.url}/providers").json()["endpoints"]
    assert {e["endpoint"]: e["status"] for e in endpoints}[failed[0]["endpoint"]] == "cooling"


def test_sigterm_flushes_every_queued_row(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    # A long flush interval: only the shutdown flush can have written these rows.
    instance = omen_factory(base_config(upstreams), server_extra='writer_flush_interval = "30s"')
    ids = {chat(instance).headers["x-omen-request-id"] for _ in range(20)}
    assert instance.stop() == 0
    with sqlite3.connect(instance.database) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM requests")}
    assert ids <= stored


def test_client_hanging_up_mid_stream_still_records_the_full_usage(
    omen: Omen, upstreams: Upstreams
) -> None:
    upstreams.openai.script.push(
        TextReply("a b c d e f g h", prompt_tokens=7, completion_tokens=8, chunk_delay=0.1)
    )
    with httpx.stream(
        "POST",
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        timeout=10,
    ) as response:
        next(response.iter_lines())  # read the first event, then hang up
    deadline = time.monotonic() + 10
    rows = []
    while time.monotonic() < deadline:
        rows = wait_for_rows(omen.database, 1)
        if rows and rows[-1].completion_tokens:  # type: ignore[attr-defined]
            break
        time.sleep(0.1)
    row = rows[-1]
    assert row.client_closed is True  # type: ignore[attr-defined]
    assert (row.prompt_tokens, row.completion_tokens) == (7, 8)  # type: ignore[attr-defined]
    assert row.cost_usd == pytest.approx(7 * 0.0025 / 1000 + 8 * 0.01 / 1000)  # type: ignore[attr-defined]


def test_a_stream_cut_by_the_upstream_ends_with_an_error_event(
    omen: Omen, upstreams: Upstreams
) -> None:
    upstreams.openai.script.push(CutStream(after_chunks=2))
    with httpx.stream(
        "POST",
        f"{omen.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {APP_KEY}"},
        json={"model": "gpt-4o", "messages": HELLO, "stream": True},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line]
    assert "[DONE]" not in events[-1]
    assert "error" in json.loads(events[-1][6:])
    rows = wait_for_rows(omen.database, 1)
    assert rows[-1].error and "after first byte" in rows[-1].error  # type: ignore[attr-defined]


def test_secrets_never_reach_the_store_the_log_or_responses(omen: Omen) -> None:
    body = {"metadata": {"api_key": "sk-secret-in-body-123"}}
    response = chat(omen, **body)
    assert response.status_code == 200
    httpx.get(f"{omen.url}/providers")
    wait_for_rows(omen.database, 1)
    omen.stop()
    dump = b"".join(p.read_bytes() for p in omen.database.parent.glob("omen.db*"))
    log = omen.log.read_text()
    for secret in (APP_KEY, OTHER_KEY, ADMIN_KEY, UPSTREAM_KEY, "sk-secret-in-body-123"):
        assert secret.encode() not in dump
        assert secret not in log
        assert secret not in response.text
