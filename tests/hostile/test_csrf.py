"""Keyless loopback mode (no keys configured, bound to 127.0.0.1) against a web page.

Any page the operator opens can POST to 127.0.0.1 (a "simple" cross-site request: text/plain,
form-encoded or multipart, no preflight) or, through DNS rebinding, reach it under its own
host name. Omen must serve only loopback Host names, refuse a cross-site Origin and take
only JSON bodies on POST — 403 otherwise — while a same-origin JSON POST still works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.hostile.conftest import HELLO, hostile_config, is_openai_error
from tests.hostile.upstream import HostileUpstream
from tests.integration.conftest import Omen

CHAT = {"model": "gpt-4o", "messages": HELLO}


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Omen, HostileUpstream]]:
    from tests.hostile.conftest import stop_quietly
    from tests.integration.conftest import start_omen

    with HostileUpstream("ok") as upstream:
        omen = start_omen(
            tmp_path_factory.mktemp("keyless"), hostile_config(upstream.url, keys=False)
        )
        try:
            yield omen, upstream
        finally:
            stop_quietly(omen)


def post(
    omen: Omen, path: str, body: Any, headers: dict[str, str], *, raw: bool = False
) -> httpx.Response:
    content = body if raw else json.dumps(body)
    base = {"content-type": "application/json"}
    return httpx.post(f"{omen.url}{path}", content=content, headers={**base, **headers}, timeout=10)


def upstream_calls(upstream: HostileUpstream) -> int:
    return sum(1 for s in upstream.seen() if s.method == "POST")


def refused(response: httpx.Response) -> None:
    assert response.status_code == 403, (response.status_code, response.text[:300])
    assert is_openai_error(response.json()), response.text[:300]


@pytest.mark.timeout(30)
def test_keyless_serves_a_same_origin_json_post(keyless: tuple[Omen, HostileUpstream]) -> None:
    omen, _ = keyless
    for host in (f"127.0.0.1:{omen.port}", f"localhost:{omen.port}"):
        response = post(
            omen, "/v1/chat/completions", CHAT, {"host": host, "origin": f"http://{host}"}
        )
        assert response.status_code == 200, (host, response.status_code, response.text[:300])
    # No Origin at all (curl, SDKs) is fine too.
    assert post(omen, "/v1/chat/completions", CHAT, {}).status_code == 200


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example:{port}"]
)
def test_keyless_refuses_a_foreign_host_header_dns_rebinding(
    keyless: tuple[Omen, HostileUpstream], host: str
) -> None:
    omen, upstream = keyless
    host = host.format(port=omen.port)
    upstream.reset()
    refused(post(omen, "/v1/chat/completions", CHAT, {"host": host}))
    # Reading through a rebound name is refused as well: models, admin data.
    for path in ("/v1/models", "/admin/containers", "/admin/endpoints"):
        response = httpx.get(f"{omen.url}{path}", headers={"host": host}, timeout=10)
        assert response.status_code == 403, (path, response.status_code, response.text[:200])
    assert upstream_calls(upstream) == 0, "a rebound request reached the upstream"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"]
)
def test_keyless_refuses_a_cross_site_origin(
    keyless: tuple[Omen, HostileUpstream], origin: str
) -> None:
    omen, upstream = keyless
    upstream.reset()
    refused(post(omen, "/v1/chat/completions", CHAT, {"origin": origin}))
    assert upstream_calls(upstream) == 0, "a cross-site request reached the upstream"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_keyless_refuses_a_post_that_is_not_json(
    keyless: tuple[Omen, HostileUpstream], content_type: str
) -> None:
    """What a cross-site <form> or fetch(no-cors) can send without a preflight."""
    omen, upstream = keyless
    upstream.reset()
    refused(post(omen, "/v1/chat/completions", CHAT, {"content-type": content_type}))
    assert upstream_calls(upstream) == 0, "a text/plain POST reached the upstream"


@pytest.mark.timeout(30)
def test_keyless_refuses_a_cross_site_drain_of_the_endpoints(
    keyless: tuple[Omen, HostileUpstream],
) -> None:
    omen, upstream = keyless
    endpoint = upstream.url.removeprefix("http://")
    attack = {"provider": "openai", "endpoint": endpoint, "reason": "pwned"}
    try:
        for headers in (
            {"content-type": "text/plain"},
            {"origin": "https://evil.example"},
            {"host": "evil.example"},
        ):
            refused(post(omen, "/admin/endpoints/drain", attack, headers))
            refused(post(omen, "/admin/containers/app/budget", {"daily": 0}, headers))
        endpoints = httpx.get(f"{omen.url}/admin/endpoints", timeout=10).json()["endpoints"]
        assert not any(e.get("drained") for e in endpoints), "a cross-site POST drained it"
        assert post(omen, "/v1/chat/completions", CHAT, {}).status_code == 200
    finally:  # the operator's own (same-origin JSON) undrain
        post(omen, "/admin/endpoints/undrain", {"provider": "openai", "endpoint": endpoint}, {})
