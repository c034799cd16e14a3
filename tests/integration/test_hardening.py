"""Bad input, hostile upstream texts and keyless mode through the real stack: clear errors in
the client's shape, one row per request, Omen's secrets never echoed, failover that reaches a
healthy answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fakes import ErrorReply, TextReply
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    UPSTREAM_KEY,
    Omen,
    Upstreams,
    base_config,
    wait_for_rows,
)


def post(omen: Omen, path: str, body: Any, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{omen.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {APP_KEY}", **headers},
        timeout=20,
    )


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


BAD_CHAT = [
    {"model": "gpt-4o", "messages": [{"role": [], "content": "hi"}]},
    {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": deep(300)},
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**15},
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "metadata": True},
]


@pytest.mark.parametrize("body", BAD_CHAT, ids=["role-list", "text-int", "deep", "huge", "meta"])
def test_bad_chat_input_is_a_400_and_leaves_a_row(omen: Omen, body: Any) -> None:
    reply = post(omen, "/v1/chat/completions", body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["type"] == "invalid_request_error"
    request_id = reply.headers["x-omen-request-id"]
    rows = wait_for_rows(omen.database, 1)
    assert [r.status for r in rows if r.id == request_id] == [400]  # type: ignore[attr-defined]


def test_bad_messages_input_is_a_400_in_anthropic_shape(omen: Omen) -> None:
    reply = post(omen, "/v1/messages", {"model": "gpt-4o", "max_tokens": 5, "messages": 7})
    assert reply.status_code == 400
    assert reply.json()["type"] == "error"


def test_embeddings_take_every_input_form_openai_accepts(omen: Omen) -> None:
    for value in ("hi", ["a", "b"], [1, 2, 3], [[1, 2], [3]]):
        reply = post(omen, "/v1/embeddings", {"model": "text-embedding-3-small", "input": value})
        assert reply.status_code == 200, (value, reply.text)
    bad = post(
        omen, "/v1/embeddings", {"model": "text-embedding-3-small", "input": "x", "metadata": True}
    )
    assert bad.status_code == 400


def test_an_upstream_echoing_omens_key_never_shows_it(omen: Omen, upstreams: Upstreams) -> None:
    echo = f"bad request from Authorization: Bearer {UPSTREAM_KEY}"
    upstreams.openai.script.push(
        ErrorReply(503, body={"error": {"message": echo, "type": "server_error"}})
    )
    upstreams.openai.script.push(
        ErrorReply(503, body={"error": {"message": echo, "type": "server_error"}})
    )
    reply = post(
        omen,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 503
    assert UPSTREAM_KEY not in reply.text and "[redacted]" in reply.text
    public = httpx.get(f"{omen.url}/providers", timeout=5).text
    assert UPSTREAM_KEY not in public and "redacted" not in public  # no error text at all
    keyed = httpx.get(
        f"{omen.url}/providers", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5
    ).text
    assert UPSTREAM_KEY not in keyed and "[redacted]" in keyed
    wait_for_rows(omen.database, 1)
    assert UPSTREAM_KEY not in omen.log.read_text()
    assert UPSTREAM_KEY.encode() not in omen.database.read_bytes()


def test_an_upstream_status_out_of_range_is_a_502(omen: Omen, upstreams: Upstreams) -> None:
    for _ in range(3):
        upstreams.openai.script.push(ErrorReply(500))
    reply = post(
        omen,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 502  # SPEC: no upstream could answer, never a bare 500


def test_budgets_are_bounded(omen: Omen) -> None:
    reply = httpx.put(
        f"{omen.url}/admin/containers/app/budget",
        json={"daily": 1e308},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=5,
    )
    assert reply.status_code == 400
    assert "at most" in reply.json()["error"]["message"]


# --- failover ------------------------------------------------------------------------------


def test_a_failed_box_is_not_tried_twice_and_the_cloud_answers(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    second = upstreams.ollama_server.url.replace("127.0.0.1", "localhost")
    config = (
        base_config(upstreams)
        .replace(
            f'endpoints = ["{upstreams.ollama_server.url}"]',
            f'endpoints = ["{upstreams.ollama_server.url}", "{second}"]\n'
            'load_balancing = "round-robin"',
        )
        .replace('models = ["llama3.1:8b"]', 'models = ["llama3.1:8b", "qwen2.5:7b"]')
    )
    config += '\n[routing.intent_rules]\ncode = { provider = "ollama" }\n'
    omen = omen_factory(config)
    for _ in range(4):
        upstreams.ollama.script.push(ErrorReply(503))
    upstreams.openai.script.push(TextReply("from the cloud"))
    reply = post(
        omen,
        "/v1/chat/completions",
        {
            "model": "auto",
            "messages": [{"role": "user", "content": "```python\ndef f(): pass\n```"}],
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-omen-provider"] == "openai"
    row = wait_for_rows(omen.database, 1)[-1]
    tried = [(a["provider"], a["endpoint"]) for a in row.decision["attempts"]]  # type: ignore[attr-defined]
    assert len(tried) == len(set(tried))  # no endpoint twice


# --- keyless loopback mode -------------------------------------------------------------------


@pytest.fixture
def keyless(omen_factory: Callable[..., Omen], upstreams: Upstreams) -> Omen:
    config = base_config(upstreams)
    config = config.split("[containers.app]")[0].replace(
        '[auth]\napi_keys = [{ key = "env:TEST_ADMIN_KEY", scope = "admin" }]\n', ""
    )
    return omen_factory(config)


CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_keyless_mode_refuses_what_a_web_page_could_send(keyless: Omen) -> None:
    url = f"{keyless.url}/v1/chat/completions"
    rebound = httpx.post(url, json=CHAT, headers={"host": "evil.example"}, timeout=5)
    assert rebound.status_code == 403
    cross = httpx.post(url, json=CHAT, headers={"origin": "https://evil.example"}, timeout=5)
    assert cross.status_code == 403
    simple = httpx.post(
        url, content=b'{"model":"gpt-4o"}', headers={"content-type": "text/plain"}, timeout=5
    )
    assert simple.status_code == 403
    drain = httpx.post(
        f"{keyless.url}/admin/endpoints/drain",
        content=b"{}",
        headers={"content-type": "text/plain", "origin": "http://evil.example"},
        timeout=5,
    )
    assert drain.status_code == 403
    own = httpx.post(url, json=CHAT, headers={"origin": "http://localhost:3000"}, timeout=5)
    assert own.status_code == 200, own.text
    assert httpx.post(url, json=CHAT, timeout=5).status_code == 200


def test_headers_that_never_finish_are_dropped_after_a_few_seconds(omen: Omen) -> None:
    import socket
    import time

    from omen.http.protocol import HEADER_TIMEOUT

    with socket.create_connection(("127.0.0.1", omen.port), timeout=HEADER_TIMEOUT + 5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        for _ in range(20):  # a byte a second, never the blank line
            try:
                sock.sendall(b"a")
                if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            time.sleep(0.5)
        dropped_after = time.monotonic() - started
    assert dropped_after <= HEADER_TIMEOUT + 1.5
    assert httpx.get(f"{omen.url}/health", timeout=5).status_code == 200
