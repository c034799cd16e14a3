"""Every view and every key at 80x24, over a real seeded SQLite store and a canned admin API."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.segment import Segment
from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import ContentSwitcher, Input, Static

from omen_store import RequestRecord, RequestRow, StoreReader, StoreWriter
from omen_tui.app import OmenConsole, run
from omen_tui.screens.budget import BudgetEditor
from omen_tui.screens.confirm_drain import ConfirmDrain
from omen_tui.screens.filter import FilterEditor
from omen_tui.screens.help import HelpScreen
from omen_tui.screens.replay_choice import ReplayChoice
from omen_tui.screens.replay_result import ReplayResult, side
from omen_tui.screens.request_detail import RequestDetail, render_detail
from omen_tui.widgets.gpu_chart import GpuChart
from omen_tui.widgets.live_table import LiveTable
from omen_tui.widgets.view_tabs import ViewTabs
from tests.tui.conftest import ConsoleFactory, press, settle
from tests.tui.seed import NOW

SIZE = (80, 24)


def table(app: OmenConsole, table_id: str) -> LiveTable:
    return app.query_one(f"#{table_id}", LiveTable)


def keys(app: OmenConsole, table_id: str) -> list[str]:
    t = table(app, table_id)
    return [
        str(t.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
        for row in range(t.row_count)
    ]


def row_text(app: OmenConsole, table_id: str, key: str) -> list[str]:
    return [
        cell.plain if isinstance(cell, Text) else str(cell)
        for cell in table(app, table_id).get_row(key)
    ]


def cell(app: OmenConsole, table_id: str, key: str, column: str) -> str:
    """One cell by its column's key: which columns show depends on the terminal's width."""
    value = table(app, table_id).get_cell(key, column)
    return value.plain if isinstance(value, Text) else str(value)


def text_of(app: OmenConsole, selector: str) -> str:
    return render_plain(app.screen.query_one(selector, Static).content, 200).rstrip()


def footer_keys(app: OmenConsole) -> set[str]:
    return {b.binding.key for b in app.active_bindings.values() if b.binding.show and b.enabled}


async def move_to(pilot: object, app: OmenConsole, table_id: str, key: str) -> None:
    t = table(app, table_id)
    t.move_cursor(row=t.get_row_index(key))
    await pilot.pause()  # type: ignore[attr-defined]


# -- views --------------------------------------------------------------------------------


async def test_overview_shows_spend_against_budgets_quotas_burn_and_alerts(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert keys(app, "containers") == ["app", "batch", "research", "support"]
        research = row_text(app, "containers", "research")
        assert research[1] == "$1.86" and "93%" in research[2] and research[-1] == "soft"
        assert row_text(app, "containers", "support")[-1] == "soft"  # 37 of 40 requests/day
        card = text_of(app, "#container-card")
        assert "today      $1.21 / $5.00" in card and "fcst" in card
        assert "req/hour   31 / 100" in card and "tokens/min" in card
        assert "burn $0.14/h (1h)" in card  # the last hour's spend, not the day's average
        assert "research daily 95% $1.90 of $2.00" in text_of(app, "#alerts")
        totals = text_of(app, "#overview-totals")
        # At 80 columns the container count gives way to the all-containers burn rate.
        assert "today $3.82" in totals and "burn $0.90/h" in totals
        await move_to(pilot, app, "containers", "research")
        assert "research  soft (today 93%)" in text_of(app, "#container-card")


async def test_overview_shows_each_containers_cache_hit_ratio_and_savings(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert [row_text(app, "containers", k)[5] for k in ("app", "research")] == [
            " 23%",
            " 33%",
        ]
        card = text_of(app, "#container-card")
        assert "cache today 23% hit · saved $0.01 · month 24% · saved $0.01" in card
        await move_to(pilot, app, "containers", "batch")  # savings under a cent
        assert "cache today 20% hit · saved $0.0054 · month 19%" in text_of(app, "#container-card")
        # The table still fits 80 columns with room for a vertical scrollbar.
        assert table(app, "containers").virtual_size.width <= SIZE[0] - 2


async def test_overview_says_when_a_container_used_no_prompt_cache(
    console: ConsoleFactory, tmp_path: Path
) -> None:
    database = tmp_path / "local.db"  # not the seeded copy beside it
    append_request(database, "req_local", NOW - 60)
    app, _ = console(database=database)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert row_text(app, "containers", "app")[6] == "-"
        assert "cache no prompt-cache use this month" in text_of(app, "#container-card")


async def test_number_keys_switch_views_and_the_tabs_follow(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, view in (("2", "routing"), ("3", "providers"), ("4", "gpu"), ("1", "overview")):
            await press(pilot, key)
            assert app.query_one(ContentSwitcher).current == view
            assert app.query_one(ViewTabs).active == view
            assert app.focused is not None and app.focused.id == table_id(view)


def table_id(view: str) -> str:
    return {"overview": "containers", "routing": "decisions", "providers": "endpoints"}.get(
        view, "gpus"
    )


async def test_routing_lists_decisions_newest_first_with_the_reason(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        ids = keys(app, "decisions")
        assert len(ids) == 138 and ids[0] == "req_0119" and ids[1] == "req_0118"
        assert cell(app, "decisions", "req_0119", "time") == "12:29:37"
        assert cell(app, "decisions", "req_0119", "container") in {"app", "batch", "support"}
        assert cell(app, "decisions", "req_0119", "reason").startswith("intent=")
        line = text_of(app, "#decision-line")
        assert line.startswith("200 req_0119") and "intent=" in line
        await pilot.press("down")
        assert text_of(app, "#decision-line").startswith("200 req_0118") or "req_0118" in text_of(
            app, "#decision-line"
        )


async def test_new_decisions_arrive_on_top_and_the_selection_stays_put(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await pilot.press("down", "down")
        assert table(app, "decisions").selected_key == "req_0117"
        append_request(seeded_db, "req_new", NOW - 1)
        app.poll_now()
        await settle(pilot)
        assert keys(app, "decisions")[0] == "req_new"
        assert table(app, "decisions").selected_key == "req_0117"
        await pilot.press("home")
        append_request(seeded_db, "req_newer", NOW)
        app.poll_now()
        await settle(pilot)
        assert table(app, "decisions").selected_key == "req_newer"  # the top follows the feed


def append_request(database: Path, request_id: str, ts: float) -> None:
    writer = StoreWriter(database)
    writer.start()
    writer.record_request(
        RequestRecord(
            id=request_id,
            ts=ts,
            container="app",
            key_id="key_app",
            kind="chat",
            requested_model="auto",
            model="llama3.1:8b",
            provider="ollama",
            endpoint="gpu1",
            intent="general",
            strategy="balanced",
            stream=False,
            status=200,
            latency_ms=100.0,
            ttft_ms=None,
            prompt_tokens=10,
            completion_tokens=5,
            reason="auto -> first local model",
        )
    )
    writer.close()


async def test_enter_opens_the_decision_with_scores_attempts_and_body(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await press(pilot, "enter")
        assert isinstance(app.screen, RequestDetail)
        await app.workers.wait_for_complete()
        await pilot.pause()
        rendered = render_plain(app.screen.query_one("#detail-body", Static).content, 100)
        for expected in (
            "req_0119",
            "options (ranked)",
            "latency=0.124",
            "excluded",
            "no endpoint has it",
            "candidates (in order)",
            "attempts",
            "request body (stored, redacted)",
            "Question req_0119: why does add(1) fail?",
        ):
            assert expected in rendered, expected
        await press(pilot, "escape")
        assert not isinstance(app.screen, RequestDetail)


async def test_the_decision_shows_cache_use_session_passthrough_and_dropped_fields(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await move_to(pilot, app, "decisions", "req_0112")  # app, openai, cache reads
        await press(pilot, "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        rendered = render_plain(app.screen.query_one("#detail-body", Static).content, 80)
        assert "auto → openai/gpt-4o@api.openai.com · passed through" in rendered
        assert "cache 2.9k read (74% of input) · 0 written · saved $0.0037" in rendered
        assert "session ses_app_011 kept: stays on the session's provider" in rendered
        assert "dropped" not in rendered
        await press(pilot, "escape")

    with StoreReader(seeded_db) as reader:
        row = reader.get_request("req_0001")  # app on ollama: translated, a field dropped
    rendered = render_plain(render_detail("req_0001", row, None, []), 80)
    assert "· translated" in rendered and "cache " not in rendered
    assert "dropped (the upstream could not carry them): context_management (ollama)" in rendered
    assert "session ses_app_000 kept" in rendered


def test_the_decision_shows_cache_writes_and_a_session_known_only_by_its_column() -> None:
    row = RequestRow(
        "req_x",
        NOW,
        "app",
        None,
        "messages",
        "claude-sonnet-4",
        "claude-sonnet-4",
        "anthropic",
        "api.anthropic.com",
        None,
        None,
        False,
        200,
        900.0,
        None,
        prompt_tokens=12_000,
        completion_tokens=300,
        cached_tokens=0,
        cache_write_tokens=11_500,
        cost_usd=0.05,
        cache_saved_usd=0.0,
        session="ses_9",
    )
    rendered = render_plain(render_detail("req_x", row, None, []), 80)
    assert "cache 0 read (0% of input) · 11.5k written · saved $0" in rendered
    assert "session ses_9" in rendered
    assert "passed through" not in rendered and "translated" not in rendered


def render_plain(renderable: object, width: int) -> str:
    """What a Static shows, as plain text (lines joined as the terminal would wrap them)."""
    if isinstance(renderable, str):
        return renderable
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


async def test_providers_show_health_latency_errors_in_flight_and_drain(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "3")
        assert keys(app, "endpoints") == [
            "ollama/gpu1",
            "ollama/gpu2",
            "openai/api.openai.com",
        ]
        gpu1 = row_text(app, "endpoints", "ollama/gpu1")
        # One name column now (provider/name host:port): health is cell 1.
        assert gpu1[1] == "healthy" and gpu1[2].endswith(("ms", "s")) and gpu1[5] == "2"
        gpu2 = row_text(app, "endpoints", "ollama/gpu2")
        assert gpu2[1] == "drained" and gpu2[6] == "yes"
        await move_to(pilot, app, "endpoints", "ollama/gpu2")
        card = text_of(app, "#endpoint-card")
        assert "last error: connection refused" in card  # not a column at 80
        assert "drained: driver update (by key_admin, 15m ago)" in card


async def test_gpu_view_shows_models_vram_and_the_last_hour(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "4")
        assert keys(app, "gpus") == ["ollama/gpu1", "ollama/gpu2"]
        gpu1 = row_text(app, "gpus", "ollama/gpu1")
        assert "39%" in gpu1[1] and gpu1[2] == "11.3G/24.0G" and gpu1[4] == "2"
        assert gpu1[5] == "llama3.1:8b +1"  # whole names that fit, and how many more
        chart = text_of(app, "#gpu-chart")
        assert "ollama/gpu1 · last hour" in chart and "-60m" in chart and "now" in chart
        assert "deepseek-coder:6.7b  VRAM 4.8G" in text_of(app, "#gpu-models")
        await pilot.press("down")
        await settle(pilot)
        assert "ollama/gpu2 · last hour" in text_of(app, "#gpu-chart")
        assert app.query_one(GpuChart).content_size.height >= 6


# -- actions ------------------------------------------------------------------------------


async def test_d_asks_then_drains_the_selected_endpoint_with_a_reason(
    console: ConsoleFactory,
) -> None:
    app, fake = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "3")
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmDrain)
        await pilot.press(*"kernel upgrade")
        await press(pilot, "enter")
        assert ("POST", "/admin/endpoints/drain", {
            "provider": "ollama", "endpoint": "gpu1", "reason": "kernel upgrade"
        }) in fake.calls  # fmt: skip


async def test_d_on_a_drained_endpoint_undrains_and_esc_cancels(console: ConsoleFactory) -> None:
    app, fake = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "4")
        await press(pilot, "d")
        await press(pilot, "escape")
        assert not any(path.endswith("drain") for _, path, _ in fake.calls)
        await pilot.press("down")
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmDrain) and not app.screen.drained
        await press(pilot, "enter")
        assert ("POST", "/admin/endpoints/undrain", {"provider": "ollama", "endpoint": "gpu2"}) in (
            fake.calls
        )


async def test_b_validates_the_budget_before_sending_it(console: ConsoleFactory) -> None:
    app, fake = console()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "b")
        assert isinstance(app.screen, BudgetEditor) and app.screen.container == "app"
        await pilot.press(*"-3")
        await press(pilot, "enter")
        assert isinstance(app.screen, BudgetEditor)
        assert text_of(app, "#daily-error") == "must not be negative"
        daily = app.screen.query_one("#daily", Input)
        daily.value = "lots"
        await press(pilot, "enter")
        assert "is not an amount" in text_of(app, "#daily-error")
        daily.value = "$7.50"
        app.screen.query_one("#monthly", Input).value = "reset"
        await press(pilot, "enter")
        assert not isinstance(app.screen, BudgetEditor)
        assert ("PUT", "/admin/containers/app/budget", {"daily": "7.50", "monthly": None}) in (
            fake.calls
        )


async def test_r_replays_and_shows_old_and_new_side_by_side(console: ConsoleFactory) -> None:
    app, fake = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await press(pilot, "r")
        assert isinstance(app.screen, ReplayChoice)
        await press(pilot, "down")  # re-route
        await press(pilot, "enter")
        await settle(pilot)
        assert ("POST", "/admin/requests/req_0119/replay", {"mode": "reroute"}) in fake.calls
        assert isinstance(app.screen, ReplayResult)
        shown = " ".join(render_plain(s.content, 40) for s in app.screen.query(Static))
        for expected in ("ORIGINAL", "REPLAY", "openai/gpt-4o", "ollama/llama3.1:8b", "-67%",
                         "add() takes two arguments", "Question req_0119"):  # fmt: skip
            assert expected in shown, expected
        await press(pilot, "escape")
        assert not isinstance(app.screen, ReplayResult)


async def test_replay_to_a_named_provider_and_model(console: ConsoleFactory) -> None:
    app, fake = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await press(pilot, "r")
        await pilot.press("down", "down", "enter")
        provider = app.screen.query_one("#provider", Input)
        assert app.focused is provider
        provider.value = "ollama"
        app.screen.query_one("#model", Input).value = "llama3.1:8b"
        await press(pilot, "enter")
        body = {"mode": "named", "provider": "ollama", "model": "llama3.1:8b"}
        assert ("POST", "/admin/requests/req_0119/replay", body) in fake.calls


async def test_slash_filters_every_view(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "slash")
        assert isinstance(app.screen, FilterEditor)
        app.screen.query_one("#filter-container", Input).value = "research"
        await press(pilot, "enter")
        assert keys(app, "containers") == ["research"]
        await press(pilot, "2")
        assert keys(app, "decisions") and all(
            row_text(app, "decisions", k)[2] == "research" for k in keys(app, "decisions")
        )
        assert "/container=research" in text_of(app, "#daemon-status")
        await press(pilot, "slash")
        await press(pilot, "ctrl+u")
        assert len(keys(app, "decisions")) == 138
        await press(pilot, "slash")
        await pilot.press(*"req_011")
        await press(pilot, "enter")
        assert len(keys(app, "decisions")) == 10
        await press(pilot, "escape")  # on a view, esc clears the filter
        assert len(keys(app, "decisions")) == 138 and not app.filter.active


async def test_text_filter_matches_reason_and_errors(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await press(pilot, "slash")
        await pilot.press(*"model is loading")
        await press(pilot, "enter")
        shown = keys(app, "decisions")
        assert shown and all(row_text(app, "decisions", k)[1] == "502" for k in shown)


async def test_p_pauses_polling_until_pressed_again(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "2")
        await press(pilot, "p")
        assert app.paused and "paused" in text_of(app, "#daemon-status")
        append_request(seeded_db, "req_while_paused", NOW)
        await pilot.pause(0.2)
        assert "req_while_paused" not in keys(app, "decisions")
        await press(pilot, "p")
        assert not app.paused and keys(app, "decisions")[0] == "req_while_paused"


async def test_question_mark_shows_help_and_q_quits(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await press(pilot, "escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_the_command_palette_switches_views(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "ctrl+p")
        await pilot.press(*"View 4")
        await pilot.pause(0.3)
        await press(pilot, "enter")
        assert app.query_one(ContentSwitcher).current == "gpu"
        await press(pilot, "colon")
        await pilot.press(*"Pause polling")
        await pilot.pause(0.3)
        await press(pilot, "enter")
        assert app.paused


# -- read-only, daemon down, no store -----------------------------------------------------


async def test_readonly_hides_every_action(console: ConsoleFactory) -> None:
    app, fake = console(readonly=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert "b" not in footer_keys(app)
        await press(pilot, "b")
        assert not isinstance(app.screen, BudgetEditor)
        for view, key in (("3", "d"), ("4", "d"), ("2", "r")):
            await press(pilot, view)
            assert key not in footer_keys(app)
            await press(pilot, key)
            assert app.screen is app.screen_stack[0]
        assert not [c for c in fake.calls if c[0] != "GET"]
        assert any("Read-only" in str(n.message) for n in app._notifications)


async def test_with_the_daemon_down_history_shows_and_actions_say_why_not(
    console: ConsoleFactory,
) -> None:
    app, _ = console(up=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert "daemon unreachable" in text_of(app, "#daemon-status")
        # Spend from the rollups, budgets from the persisted overrides.
        assert keys(app, "containers") == ["app", "batch", "research", "support"]
        assert "from the store" in text_of(app, "#container-card")
        await press(pilot, "b")
        assert not isinstance(app.screen, BudgetEditor)
        messages = [str(n.message) for n in app._notifications]
        assert any("unreachable at http://omen.test:8080" in m for m in messages)
        await press(pilot, "3")
        assert row_text(app, "endpoints", "ollama/gpu2")[1] == "drained"
        await press(pilot, "d")
        assert not isinstance(app.screen, ConfirmDrain)
        await press(pilot, "2")
        assert len(keys(app, "decisions")) == 138


async def test_a_key_without_admin_scope_disables_actions(console: ConsoleFactory) -> None:
    app, _ = console(admin=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert "no admin access" in text_of(app, "#daemon-status")
        await press(pilot, "b")
        assert not isinstance(app.screen, BudgetEditor)
        assert any("refused the key" in str(n.message) for n in app._notifications)


async def test_a_missing_store_is_explained(console: ConsoleFactory, tmp_path: Path) -> None:
    app, _ = console(database=tmp_path / "nope.db")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        banner = text_of(app, "#banner")
        assert "no store at" in banner and "omen serve" in banner
        await press(pilot, "2")
        assert keys(app, "decisions") == []


async def test_keys_outside_their_view_point_to_it(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await press(pilot, "d")
        await press(pilot, "r")
        messages = [str(n.message) for n in app._notifications]
        assert "Select one in 3 Providers or 4 GPU to drain it" in messages
        assert "Select one in 2 Routing to replay it" in messages


@pytest.mark.parametrize("mouse", [True, False])
def test_run_passes_no_mouse_through(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mouse: bool
) -> None:
    seen: dict[str, object] = {}

    def fake_run(self: OmenConsole, **kwargs: object) -> None:
        seen.update(kwargs, readonly=self.readonly, database=self.database)

    monkeypatch.setattr(OmenConsole, "run", fake_run)
    run(tmp_path / "omen.db", "http://127.0.0.1:8080", None, readonly=True, mouse=mouse)
    assert seen == {"mouse": mouse, "readonly": True, "database": tmp_path / "omen.db"}


# -- names, errors and styles in the detail and replay screens ----------------------------

LONG_ERROR = (
    "The server had an error while processing your request. Sorry about that! You can retry "
    "your request, or contact us through our help center if the error persists."
)


def test_the_detail_keeps_similar_model_names_apart_and_the_last_error_whole() -> None:
    options = [
        {"provider": provider, "model": model, "local": False, "quality": 0.9, "score": 0.3}
        for provider, model in (
            ("ollama", "deepseek-coder-v2:16b-lite-instruct-q4_K_M"),
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
        )
    ]
    for option in options:
        option["components"] = {"cost": 0.1, "latency": 0.2, "quality": 0.3}
    attempts = [
        {"provider": "openai", "endpoint": "api.openai.com", "model": "gpt-4o-mini",
         "status": 500, "ms": 80.0, "error": LONG_ERROR},
    ]  # fmt: skip
    row = RequestRow(
        "req_x", NOW, "app", None, "chat", "auto", "gpt-4o-mini", "openai", "api.openai.com",
        "code", "balanced", False, 500, 90.0, None, prompt_tokens=10, completion_tokens=0,
        decision={"options": options, "attempts": attempts}, error=LONG_ERROR,
    )  # fmt: skip
    for width in (78, 158):
        lines = render_plain(render_detail("req_x", row, None, []), width).splitlines()
        names = [line.split()[1] for line in lines if line.strip()[:2] in ("1 ", "2 ", "3 ")]
        assert "openai/gpt-4o" in names and "openai/gpt-4o-mini" in names, names
        deepseek = next(name for name in names if name.startswith("ollama/"))
        assert deepseek.endswith("q4_K_M") and "…" not in names[1:]  # middle-elided at most
        attempts_part = " ".join(
            "\n".join(lines[next(i for i, x in enumerate(lines) if x == "attempts") :]).split()
        )
        assert LONG_ERROR in attempts_part  # wrapped, never cut
        assert f"error: {LONG_ERROR}" in " ".join(" ".join(lines).split())


def segments_of(renderable: object, width: int = 60) -> list[Segment]:
    console = Console(width=width, file=io.StringIO())
    return [s for s in console.render(renderable) if s.text.strip()]  # type: ignore[arg-type]


def underlined(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments if s.style is not None and s.style.underline)


def test_replay_panels_and_decision_lines_are_not_underlined_throughout() -> None:
    original = {
        "id": "req_1",
        "provider": "openai",
        "model": "gpt-4o",
        "status": 200,
        "latency_ms": 900,
        "cost_usd": 0.0062,
        "reason": "intent=code -> openai",
    }
    replay = {**original, "provider": "ollama", "model": "llama3.1:8b", "cost_usd": 0.0}
    for panel in (side("original", original, None, answer=None),
                  side("replay", replay, original, answer="4")):  # fmt: skip
        segments = segments_of(panel)
        assert underlined(segments).strip() in ("ORIGINAL", "REPLAY")
        assert not any(s.style and s.style.bold for s in segments if "latency" in s.text)
    row = RequestRow(
        "req_y", NOW, "app", None, "chat", "auto", "gpt-4o", "openai", "api.openai.com",
        "code", "balanced", False, 200, 90.0, None, prompt_tokens=10, completion_tokens=5,
        decision={"intent": {"name": "code", "source": "classifier"}, "strategy": "balanced"},
    )  # fmt: skip
    segments = segments_of(render_detail("req_y", row, None, []))
    assert underlined(segments) == "decisionrequest body (stored, redacted)"  # the headings


def test_replay_shows_an_unknown_cost_as_not_known_never_as_zero() -> None:
    text = side("replay", {"provider": "openai", "model": "gpt-4o", "status": 200}, None,
                answer=None).plain  # fmt: skip
    assert "cost     not known" in text and "$0" not in text
    cheap = side("replay", {"status": 200, "cost_usd": 0.00008}, None, answer=None).plain
    assert "cost     $0.00008" in cheap


async def test_help_lists_the_vim_and_page_keys(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "question_mark")
        shown = " ".join(render_plain(s.content, 100) for s in app.screen.query(Static))
        for key in ("j k", "pgup pgdn", "g G", "home end"):
            assert key in shown, key
