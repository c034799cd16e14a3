"""The Routing view as an operator over SSH reads it: the reason on screen at 80×24, columns
that fill 160×48 without cutting words, vim keys, and a cursor that stays where it was put."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot

from omen_store import StoreReader
from omen_tui.app import OmenConsole
from omen_tui.screens.request_detail import RequestDetail
from omen_tui.views.routing import RoutingView
from omen_tui.widgets.live_table import LiveTable
from tests.fakes import FakeState, make_ollama_app, run_fake
from tests.integration.conftest import Omen
from tests.tui.conftest import ConsoleFactory, press, settle
from tests.tui.seed import NOW
from tests.tui.test_against_daemon import chat, two_ollamas
from tests.tui.test_tmux import Tmux
from tests.tui.test_views import append_request, keys

NARROW, WIDE = (80, 24), (160, 48)


def screen_text(app: OmenConsole) -> str:
    """What the terminal shows, as text (the compositor's frame, as a screenshot takes it)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


def words(text: str) -> str:
    return " ".join(text.split())


def decisions(app: OmenConsole) -> LiveTable:
    return app.query_one("#decisions", LiveTable)


def routing(app: OmenConsole) -> RoutingView:
    return app.query_one(RoutingView)


async def open_routing(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await press(pilot, "2")


@pytest.mark.parametrize("size", [NARROW, WIDE], ids=["80x24", "160x48"])
async def test_the_selected_rows_whole_reason_is_on_screen(
    console: ConsoleFactory, size: tuple[int, int]
) -> None:
    app, _ = console()
    async with app.run_test(size=size) as pilot:
        await open_routing(pilot)
        for step in ("j", "j", "j"):
            row = routing(app).selected
            assert row is not None and len(row.reason) > 100
            assert words(row.reason) in words(screen_text(app)), screen_text(app)
            await press(pilot, step)
        # A failed request: its error and its reason, both whole.
        await move_to(pilot, app, "req_0056")
        failed = routing(app).selected
        assert failed is not None and failed.error
        shown = words(screen_text(app))
        assert words(failed.error) in shown
        assert words(failed.reason) in shown


async def move_to(pilot: Pilot[None], app: OmenConsole, key: str) -> None:
    table = decisions(app)
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()


async def test_at_80_columns_cost_and_reason_are_columns_and_nothing_scrolls_sideways(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await open_routing(pilot)
        table = decisions(app)
        labels = [str(column.label) for column in table.ordered_columns]
        assert labels[:4] == ["time", "st", "container", "intent"]
        assert "cost" in labels and labels[-1] == "reason"
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert not table.show_horizontal_scrollbar
        reason = str(table.get_cell("req_0119", "reason"))
        assert "…" in reason and reason.startswith("intent=") and reason.endswith("$0.0006")


async def test_at_160_columns_intents_are_whole_and_the_reason_takes_the_rest(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    app, _ = console()
    async with app.run_test(size=WIDE) as pilot:
        await open_routing(pilot)
        table = decisions(app)
        with StoreReader(seeded_db) as reader:
            stored = {row.id: row for row in reader.recent_requests(limit=300)}
        for key in keys(app, "decisions"):
            assert str(table.get_cell(key, "intent")) == stored[key].intent
            route = str(table.get_cell(key, "route"))
            if stored[key].provider:
                assert route == f"{stored[key].provider}/{stored[key].model}@{stored[key].endpoint}"
        labels = [str(column.label) for column in table.ordered_columns]
        assert {"lat", "tok", "session"} <= set(labels) and labels[-1] == "reason"
        # The columns fill the width: the reason ends at the scrollbar, not at column 135.
        assert table.virtual_size.width == table.scrollable_content_region.width
        assert str(table.get_cell("req_0112", "session")) == "ses_app_011"
        line = next(line for line in screen_text(app).splitlines() if line.startswith(" 12:29:37"))
        assert line.rstrip().endswith("$0.0006") and len(line.rstrip()) >= 155


async def test_vim_keys_and_pages_move_the_cursor(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await open_routing(pilot)
        table = decisions(app)
        await press(pilot, "j", "j")
        assert table.cursor_row == 2
        await press(pilot, "k")
        assert table.cursor_row == 1
        await press(pilot, "G")
        assert table.cursor_row == table.row_count - 1
        await press(pilot, "g")
        assert table.cursor_row == 0
        await press(pilot, "pagedown")
        page = table.cursor_row
        assert page > 5
        await press(pilot, "pagedown")
        assert table.cursor_row > page
        await press(pilot, "pageup")
        assert table.cursor_row == page


async def test_the_cursor_stays_on_its_row_as_rows_arrive_even_on_top(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await open_routing(pilot)
        table = decisions(app)
        await press(pilot, "j", "k")  # back on the top row, by hand: not following
        assert table.selected_key == "req_0119"
        append_request(seeded_db, "req_new", NOW - 1)
        app.poll_now()
        await settle(pilot)
        assert keys(app, "decisions")[0] == "req_new"
        assert table.selected_key == "req_0119" and table.cursor_row == 1
        assert "200 req_0119" in screen_text(app)  # the strip follows the same row
        await press(pilot, "g")  # on purpose: follow the feed
        append_request(seeded_db, "req_newer", NOW)
        app.poll_now()
        await settle(pilot)
        assert table.selected_key == "req_newer"


async def test_after_a_filter_the_cursor_is_on_the_newest_match(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await open_routing(pilot)
        await press(pilot, "pagedown", "j", "j")
        assert decisions(app).cursor_row > 5
        await press(pilot, "slash")
        await pilot.press(*"model is loading")
        await press(pilot, "enter")
        shown = keys(app, "decisions")
        assert len(shown) >= 2
        assert decisions(app).cursor_row == 0 and decisions(app).selected_key == shown[0]
        assert shown == sorted(shown, reverse=True)  # req_ ids grow with time: newest on top


async def test_enter_opens_the_highlighted_row_though_rows_arrive_before_it_is_handled(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    async with app.run_test(size=NARROW) as pilot:
        await open_routing(pilot)
        table, view = decisions(app), routing(app)
        assert table.following and table.selected_key == "req_0119"
        # Enter, and before its message is handled a poll puts a newer row on top (the
        # cursor, following the feed, moves onto it): the request opened is the one Enter
        # was pressed on.
        table.action_select_cursor()
        view._rows["req_race"] = replace(view._rows["req_0119"], id="req_race", ts=NOW)
        view._show()
        assert table.selected_key == "req_race"
        await settle(pilot)
        assert isinstance(app.screen, RequestDetail) and app.screen.request_id == "req_0119"
        await press(pilot, "escape")
        # Enter on a row below the top, with rows arriving: the same row opens.
        await press(pilot, "j", "j")
        highlighted = table.selected_key
        await press(pilot, "enter")
        assert isinstance(app.screen, RequestDetail)
        assert app.screen.request_id == highlighted == "req_0118"


# -- the real `omen tui` in tmux ------------------------------------------------------------


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux(f"omen-routing-test-{os.getpid()}")
    yield session
    session("kill-server")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_in_tmux_at_80x24_the_selected_decisions_reason_is_on_screen(
    omen_factory: Callable[..., Omen], tmux: Tmux
) -> None:
    """The strip under the table, seen in a real terminal: what an operator over SSH sees."""
    fakes = [FakeState(models=["llama3.1:8b"]) for _ in range(2)]
    with run_fake(make_ollama_app(fakes[0])) as a, run_fake(make_ollama_app(fakes[1])) as b:
        omen = omen_factory(two_ollamas(a.url, b.url))
        for _ in range(3):
            request_id = chat(omen, model="auto").headers["x-omen-request-id"]
        deadline = time.monotonic() + 10
        row = None
        while row is None or not row.reason:
            assert time.monotonic() < deadline, "the request never reached the store"
            time.sleep(0.1)
            with StoreReader(omen.database) as reader:
                row = reader.get_request(request_id)
        env = omen.env | {"TERM": "xterm-256color", "TZ": "UTC"}
        command = f"{sys.executable} -m omen tui --config {omen.config} --no-mouse"
        subprocess.run(
            ["tmux", "-L", tmux.socket, "new-session", "-d", "-s", "omen", "-x", "80", "-y", "24",
             command],
            env=env, cwd=omen.config.parent, check=True, timeout=10,
        )  # fmt: skip
        tmux.wait_for("q Quit")
        tmux.keys("2")
        screen = tmux.wait_for(request_id)
        assert len(row.reason) > 40 and words(row.reason) in words(screen), (row.reason, screen)
        assert max(len(line) for line in screen.splitlines()) <= 80
        tmux.keys("q")
