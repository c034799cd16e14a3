"""The console against a real `omen serve` with fake upstreams and its real store: each action
taken with keys at 80x24 changes what the daemon does next."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from omen_tui.app import OmenConsole
from omen_tui.screens.replay_result import ReplayResult
from omen_tui.views.overview import OverviewView
from omen_tui.widgets.live_table import LiveTable
from tests.fakes import FakeState, make_ollama_app, run_fake
from tests.integration.conftest import ADMIN_KEY, APP_KEY, Omen, Upstreams, wait_for_rows
from tests.tui.conftest import press, settle

SIZE = (80, 24)


def console_for(omen: Omen) -> OmenConsole:
    return OmenConsole(omen.database, omen.url, ADMIN_KEY, poll_interval=0.2)


def chat(omen: Omen, model: str = "llama3.1:8b") -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "x" * 400}]},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )


async def select(pilot: object, app: OmenConsole, table_id: str, key: str) -> None:
    table = app.query_one(f"#{table_id}", LiveTable)
    for _ in range(100):
        if key in table.rows:
            break
        await settle(pilot)  # type: ignore[arg-type]
    table.move_cursor(row=table.get_row_index(key))
    await settle(pilot)  # type: ignore[arg-type]


def two_ollamas(a: str, b: str) -> str:
    return f"""
[auth]
api_keys = [
  {{ key = "env:TEST_ADMIN_KEY", scope = "admin" }},
  {{ key = "env:TEST_APP_KEY", scope = "user" }},
]

[providers.ollama]
endpoints = [{{ url = "{a}", name = "gpu-a" }}, {{ url = "{b}", name = "gpu-b" }}]
models = ["llama3.1:8b"]
load_balancing = "least-loaded"
health_check_interval = "1h"
"""


async def test_drain_from_the_console_stops_routing_to_that_endpoint(
    omen_factory: Callable[..., Omen],
) -> None:
    fakes = [FakeState(models=["llama3.1:8b"]) for _ in range(2)]
    with run_fake(make_ollama_app(fakes[0])) as a, run_fake(make_ollama_app(fakes[1])) as b:
        omen = omen_factory(two_ollamas(a.url, b.url))
        app = console_for(omen)
        async with app.run_test(size=SIZE) as pilot:
            await press(pilot, "3")
            assert app.daemon is not None and app.daemon.actions_ok
            await select(pilot, app, "endpoints", "ollama/gpu-a")
            await press(pilot, "d")
            await pilot.press(*"driver update")
            await press(pilot, "enter")
            for _ in range(6):
                assert chat(omen).status_code == 200
            assert (fakes[0].served, fakes[1].served) == (0, 6)
            app.poll_now()
            await settle(pilot)
            row = app.query_one("#endpoints", LiveTable).get_row("ollama/gpu-a")
            assert str(row[1]) == "drained" and str(row[6]) == "yes"
            # And back: undrain from the console too.
            await press(pilot, "d")
            await press(pilot, "enter")
            for _ in range(6):
                chat(omen)
            assert fakes[0].served > 0
    audit = omen.omen("logs", "--audit", "--json").stdout
    assert '"drain"' in audit and "driver update" in audit and '"undrain"' in audit


async def test_a_budget_change_from_the_console_is_enforced_on_the_next_request(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    omen = omen_factory(budget_config(upstreams))
    assert chat(omen, "openai/gpt-4o").status_code == 200
    app = console_for(omen)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "containers", "app")
        await press(pilot, "b")
        await pilot.press(*"0.0001")
        await press(pilot, "enter")
        refused = chat(omen, "openai/gpt-4o")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "budget_daily"
        app.poll_now()
        await settle(pilot)
        # The console shows the new budget, and the spend now close to it.
        view = app.query_one(OverviewView)
        assert view.selected is not None and view.selected.budgets[0].limit == 0.0001
        cells = app.query_one("#containers", LiveTable).get_row("app")
        assert str(cells[-1]) in {"soft", "HARD"}


def budget_config(up: Upstreams) -> str:
    return f"""
[auth]
api_keys = [{{ key = "env:TEST_ADMIN_KEY", scope = "admin" }}]

[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{up.openai_server.url}/v1"
models = ["gpt-4o"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"

[containers.app.budget]
daily = "10.00"
"""


async def test_a_replay_from_the_console_creates_a_row_linked_to_the_original(
    omen_factory: Callable[..., Omen], upstreams: Upstreams
) -> None:
    from tests.integration.conftest import base_config

    omen = omen_factory(base_config(upstreams))
    original = chat(omen).headers["x-omen-request-id"]
    wait_for_rows(omen.database, 1)
    app = console_for(omen)
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await select(pilot, app, "decisions", original)
        await press(pilot, "r")
        await press(pilot, "enter")  # the same route
        await settle(pilot)
        assert isinstance(app.screen, ReplayResult)
        new_id = app.screen.replay["request_id"]
        assert app.screen.replay["status"] == 200 and app.screen.replay["answer"]
    rows = wait_for_rows(omen.database, 2)
    replayed = next(r for r in rows if r.id == new_id)  # type: ignore[attr-defined]
    assert replayed.replay_of == original  # type: ignore[attr-defined]
    assert (replayed.provider, replayed.model) == ("ollama", "llama3.1:8b")  # type: ignore[attr-defined]


async def test_the_console_keeps_showing_history_after_the_daemon_stops(
    omen_factory: Callable[..., Omen], upstreams: Upstreams, tmp_path: Path
) -> None:
    from tests.integration.conftest import base_config

    omen = omen_factory(base_config(upstreams))
    request_id = chat(omen).headers["x-omen-request-id"]
    omen.stop()
    app = console_for(omen)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await press(pilot, "2")
        assert app.daemon is not None and not app.daemon.reachable
        assert request_id in app.query_one("#decisions", LiveTable).rows
        await press(pilot, "r")
        assert not app._notifications or any(
            "unreachable" in str(n.message) for n in app._notifications
        )
        assert app.screen is app.screen_stack[0]
