"""`GET /admin/whatif` through the real daemon: the same answer as `omen whatif --json` run on
the same store and config, admin keys only, and a bad parameter named in OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.conftest import ADMIN_KEY, APP_KEY, OTHER_KEY, Omen, Upstreams, base_config

PROMPT = [{"role": "user", "content": "Write a haiku about autumn leaves."}]
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def chat(omen: Omen, model: str, key: str = APP_KEY) -> None:
    response = httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": model, "messages": PROMPT},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def whatif(omen: Omen, params: Any, headers: dict[str, str] = ADMIN) -> httpx.Response:
    return httpx.get(f"{omen.url}/admin/whatif", params=params, headers=headers, timeout=30)


def cli(omen: Omen, *args: str) -> dict[str, Any]:
    done = omen.omen("whatif", "--json", *args)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = orjson.loads(done.stdout)
    return report


def same_report(api: dict[str, Any], command: dict[str, Any]) -> None:
    """Everything but the moment the period starts (each computes `now - since` itself)."""
    assert abs(api.pop("since_ts") - command.pop("since_ts")) < 60
    assert api == command


@pytest.fixture
def served(omen_factory: Callable[..., Omen], upstreams: Upstreams) -> Omen:
    omen = omen_factory(base_config(upstreams))
    for _ in range(4):
        chat(omen, "auto")
    chat(omen, "gpt-4o")  # an explicit model: counted as it was on both sides
    chat(omen, "auto", key=OTHER_KEY)
    return omen


def test_whatif_answers_what_omen_whatif_prints_on_the_same_store(served: Omen) -> None:
    for params, args in (
        ({}, ["--since", "24h"]),
        (
            {"strategy": "quality-first", "prefer_local": "false", "since": "1h"},
            ["--strategy", "quality-first", "--no-prefer-local", "--since", "1h"],
        ),
        (
            [
                ("container", "app"),
                ("strategy", "cost-optimized"),
                ("quality_threshold", "0.5"),
                ("price", "openai.gpt-4o=0.001/0.002"),
                ("price", "ollama.*=0.01"),
                ("since", "7d"),
            ],
            [
                "--container", "app", "--strategy", "cost-optimized",
                "--quality-threshold", "0.5", "--price", "openai.gpt-4o=0.001/0.002",
                "--price", "ollama.*=0.01", "--since", "7d",
            ],
        ),
    ):  # fmt: skip
        response = whatif(served, params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        api = response.json()
        same_report(api, cli(served, *args))
        if "container" not in dict(params):
            assert api["total"]["requests"] == 6
            assert api["total"]["rerouted"] == 5 and api["total"]["unchanged"] == 1
            assert set(api["containers"]) == {"app", "other"}
        else:
            assert set(api["containers"]) == {"app"} and api["total"]["requests"] == 5


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "0s"}, "since"),
        ({"strategy": "fastest"}, "strategy"),
        ({"prefer_local": "maybe"}, "prefer_local"),
        ({"quality_threshold": "2"}, "quality_threshold"),
        ({"price": "gpt-4o=cheap"}, "price"),
        ({"prefer-local": "true"}, "prefer-local"),
        ([("strategy", "balanced"), ("strategy", "quality-first")], "strategy"),
    ],
)
def test_a_bad_parameter_is_a_400_that_names_it(served: Omen, params: Any, param: str) -> None:
    response = whatif(served, params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert param in error["message"]


def test_whatif_is_for_admin_keys(served: Omen) -> None:
    refused = whatif(served, {}, headers={"authorization": f"Bearer {APP_KEY}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_required"
    assert whatif(served, {}, headers={}).status_code == 401
