"""Snapshots of every view at 80x24 and 160x48 over the seeded store, clock frozen.

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`
and look at the SVGs under __snapshots__/ before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.conftest import ConsoleFactory, press

Snap = Callable[..., bool]
SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


def keys(*sequence: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        await press(pilot)  # the first poll
        for key in sequence:
            await press(pilot, key)

    return run_before


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize(
    "view", ["1", "2", "3", "4"], ids=["overview", "routing", "providers", "gpu"]
)
def test_view(
    snap_compare: Snap, console: ConsoleFactory, view: str, size: tuple[int, int]
) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=size, run_before=keys(view))


def test_overview_with_the_daemon_down(snap_compare: Snap, console: ConsoleFactory) -> None:
    app, _ = console(up=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys())


def test_decision_detail(snap_compare: Snap, console: ConsoleFactory) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("2", "enter"))


def test_decision_detail_with_cache_and_session(
    snap_compare: Snap, console: ConsoleFactory
) -> None:
    app, _ = console()
    down = ["down"] * 7  # req_0112: the app's agent session, OpenAI, cache reads
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("2", *down, "enter"))


def test_replay_comparison(snap_compare: Snap, console: ConsoleFactory) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("2", "r", "enter"))


def test_budget_dialog(snap_compare: Snap, console: ConsoleFactory) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("b"))


def test_drain_dialog(snap_compare: Snap, console: ConsoleFactory) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("3", "d"))


def test_help(snap_compare: Snap, console: ConsoleFactory) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("question_mark"))


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_audit_trail(snap_compare: Snap, console: ConsoleFactory, size: tuple[int, int]) -> None:
    app, _ = console()
    assert snap_compare(app, terminal_size=size, run_before=keys("A", "j", "j"))
