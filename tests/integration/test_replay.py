"""Replaying a stored request through the admin API and `omen replay`."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.fakes import TextReply
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    Omen,
    Upstreams,
    base_config,
    wait_for_rows,
)


def ask(omen: Omen, model: str = "llama3.1:8b") -> str:
    response = httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={
            "model": model,
            "messages": [{"role": "user", "content": "Say hello"}],
            "stream": True,
        },
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )
    assert response.status_code == 200
    return response.headers["x-omen-request-id"]


def replay(omen: Omen, request_id: str, **body: object) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/admin/requests/{request_id}/replay",
        json=body,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )


def test_replay_on_the_same_route_links_the_new_row_to_the_original(omen: Omen) -> None:
    original = ask(omen)
    wait_for_rows(omen.database, 1)
    response = replay(omen, original)
    assert response.status_code == 200
    data = response.json()
    assert data["original"]["id"] == original
    new = data["replay"]
    assert (new["status"], new["provider"], new["model"]) == (200, "ollama", "llama3.1:8b")
    assert new["answer"]
    rows = wait_for_rows(omen.database, 2)
    replayed = next(r for r in rows if r.id == new["request_id"])  # type: ignore[attr-defined]
    assert replayed.replay_of == original  # type: ignore[attr-defined]
    assert replayed.container == "app"  # type: ignore[attr-defined]
    audit = omen.omen("logs", "--audit", "--json").stdout
    assert '"action":"replay"' in audit and original in audit


def test_replay_to_a_named_provider_and_model(omen: Omen, upstreams: Upstreams) -> None:
    original = ask(omen)
    upstreams.openai.script.push(TextReply("cloud answer", prompt_tokens=10, completion_tokens=5))
    wait_for_rows(omen.database, 1)
    new = replay(omen, original, provider="openai", model="gpt-4o").json()["replay"]
    assert (new["provider"], new["model"], new["answer"]) == ("openai", "gpt-4o", "cloud answer")
    assert new["cost_usd"] > 0


def test_replay_cli_prints_old_and_new_side_by_side(omen: Omen) -> None:
    original = ask(omen)
    wait_for_rows(omen.database, 1)
    result = omen.omen("replay", original, "--reroute")
    assert result.returncode == 0, result.stderr
    assert original in result.stdout
    assert "original" in result.stdout and "replay" in result.stdout
    assert "replay answer:" in result.stdout


def test_replay_without_a_stored_body_is_refused(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(base_config(upstreams), server_extra='keep_request_bodies = "0"')
    original = ask(omen)
    wait_for_rows(omen.database, 1)
    response = replay(omen, original)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "body_not_stored"
    assert replay(omen, "req_missing").status_code == 404
