"""What routing learnt (L), what-if re-routing (w), and judging a replay (+ / -), at 80x24 and
160x48, over the seeded store and the canned admin API."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from textual.widgets import Select, Static

from omen.routing.adaptive import MIN_EVIDENCE, Outcome
from omen_store import FeedbackRecord, StoreWriter
from omen_tui.app import OmenConsole
from omen_tui.model.learnt import LEAST, PRIOR_VALUE, Learnt, ordered, widths
from omen_tui.model.learnt import MIN_EVIDENCE as TUI_MIN_EVIDENCE
from omen_tui.screens.help import HelpScreen
from omen_tui.screens.learnt import LearntScreen
from omen_tui.screens.replay_result import ReplayResult
from omen_tui.screens.whatif import WhatIfScreen
from tests.tui import fake_admin
from tests.tui.conftest import ConsoleFactory, press, settle
from tests.tui.seed import NOW

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
sizes = pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())


def plain(renderable: object, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def shown(app: OmenConsole, width: int) -> str:
    return " ".join(plain(s.content, width) for s in app.screen.query(Static))


def notes(app: OmenConsole) -> list[str]:
    return [str(n.message) for n in app._notifications]


def learnt(**counts: float) -> Learnt:
    fields: dict[str, float] = {
        "requests": 0,
        "errors": 0,
        "escalations": 0,
        "latency_ms_sum": 0.0,
        "feedback_n": 0,
        "feedback_sum": 0.0,
    }
    fields.update(counts)
    return Learnt("app", "code", "openai", "gpt-4o", updated=NOW, **fields)  # type: ignore[arg-type]


# -- the formulas ---------------------------------------------------------------------------

CASES = [
    {},
    {"requests": 3},
    {"requests": 10, "errors": 4},
    {"requests": 10, "errors": 1, "escalations": 6},
    {"requests": 2, "errors": 5},  # more errors than requests (retries): never below the prior
    {"requests": 20, "feedback_n": 4, "feedback_sum": 1.0},
    {"feedback_n": 7, "feedback_sum": 6.5},
    {"requests": 4, "feedback_n": 1, "feedback_sum": 0.0},
]


@pytest.mark.parametrize("counts", CASES, ids=[str(c) or "nothing" for c in CASES])
def test_the_consoles_formulas_are_the_routers(counts: dict[str, float]) -> None:
    mine, router = learnt(**counts), Outcome(**counts)  # type: ignore[arg-type]
    assert mine.reliability == pytest.approx(router.reliability)
    assert mine.satisfaction == pytest.approx(router.satisfaction)
    assert mine.value == pytest.approx(router.value)
    assert mine.enough == (router.evidence >= MIN_EVIDENCE)


def test_the_evidence_threshold_and_prior_are_the_routers() -> None:
    assert TUI_MIN_EVIDENCE == MIN_EVIDENCE
    assert pytest.approx(Outcome().value) == PRIOR_VALUE


def test_rows_go_by_container_intent_then_the_best_value_first() -> None:
    worse = learnt(requests=10, errors=5)
    better = learnt(requests=10)
    other = Learnt("batch", "code", "ollama", "llama3.1:8b", 1, 0, 0, 0.0, 0, 0.0, NOW)
    general = Learnt("app", "general", "ollama", "llama3.1:8b", 1, 1, 0, 0.0, 0, 0.0, NOW)
    assert ordered([other, general, worse, better]) == [better, worse, general, other]


@pytest.mark.parametrize("room", [LEAST, 78, 158])
def test_the_learnt_columns_fit_the_terminal(room: int) -> None:
    sized = widths(room, {"container": 27, "intent": 9, "route": 60})
    assert sum(sized.values()) + len(sized) <= room
    assert sized["route"] >= 12 and sized["container"] >= 6


# -- the learnt screen ----------------------------------------------------------------------


def seed_feedback(database: Path) -> tuple[str, str, str, str]:
    """Three verdicts (1, 1, 0) on the answers of the seed's busiest route; returns it."""
    conn = sqlite3.connect(database)
    container, intent, provider, model = conn.execute(
        "SELECT container, intent, provider, model FROM requests WHERE status = 200 "
        "GROUP BY 1, 2, 3, 4 ORDER BY count(*) DESC, 1, 2, 3, 4 LIMIT 1"
    ).fetchone()
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM requests WHERE container = ? AND intent = ? AND provider = ? "
            "AND model = ? AND status = 200 ORDER BY id LIMIT 3",
            (container, intent, provider, model),
        )
    ]
    conn.close()
    writer = StoreWriter(database)
    writer.start()
    for request_id, score in zip(ids, (1.0, 1.0, 0.0), strict=True):
        record = FeedbackRecord(
            NOW, request_id, score, "key_admin", container, intent, provider, model
        )
        writer.record_feedback(record)
    writer.close()
    return container, intent, provider, model


def expected(database: Path, route: tuple[str, str, str, str]) -> Learnt:
    """The route's statistics counted again from the request rows (one attempt each in the
    seed: a 429 or 5xx is an error) and the three verdicts seeded."""
    conn = sqlite3.connect(database)
    requests, errors = conn.execute(
        "SELECT count(*), sum(status >= 429) FROM requests WHERE container = ? AND intent = ? "
        "AND provider = ? AND model = ?",
        route,
    ).fetchone()
    conn.close()
    return Learnt(*route, requests, errors, 0, 0.0, 3, 2.0, NOW)


def learnt_table_rows(app: OmenConsole) -> list[list[str]]:
    table = app.screen.query_one("#learnt")
    rows = []
    for index in range(table.row_count):  # type: ignore[attr-defined]
        cells = table.get_row_at(index)  # type: ignore[attr-defined]
        rows.append([c.plain if isinstance(c, Text) else str(c) for c in cells])
    return rows


@sizes
async def test_L_lists_what_routing_learnt_per_container_intent_and_model(
    console: ConsoleFactory, seeded_db: Path, size: tuple[int, int]
) -> None:
    route = seed_feedback(seeded_db)
    want = expected(seeded_db, route)
    app, _ = console()
    async with app.run_test(size=size) as pilot:
        await press(pilot, "2")
        assert "L" in {b.binding.key for b in app.active_bindings.values() if b.binding.show}
        await press(pilot, "L")
        assert isinstance(app.screen, LearntScreen)
        screen = app.screen
        rows = list(screen.rows.values())
        keys = [(r.container, r.intent, -round(r.value, 9)) for r in rows]
        assert len(rows) > 10 and keys == sorted(keys)
        got = next(r for r in rows if (r.container, r.intent, r.provider, r.model) == route)
        assert (got.requests, got.errors, got.feedback_n, got.feedback_sum) == (
            want.requests,
            want.errors,
            3,
            2.0,
        )
        value = (want.requests - want.errors + 2) / (want.requests + 2) * (2.0 + 1.5) / (3 + 2)
        assert got.value == pytest.approx(value)

        table = learnt_table_rows(app)
        index = rows.index(got)
        cells = table[index]
        assert cells[0] == route[0] and cells[1] == route[1]
        assert cells[3].strip() == str(want.requests)
        assert cells[4].strip() == f"{(1 - want.errors / want.requests) * 100:.0f}%"
        assert cells[6] == "0.67 (3)"
        assert cells[7].strip() == f"{value:.2f}"
        assert cells[8] == "yes"
        # Columns fit the terminal; every name fits its column, middle-elided if need be.
        columns = list(screen.query_one("#learnt").columns.values())  # type: ignore[attr-defined]
        assert sum(c.width for c in columns) <= size[0] - 2
        for row in table:
            for text, column in zip(row, columns, strict=True):
                assert len(text) <= column.width - 1, (text, column.width)

        # The selected row's value, worked out.
        screen.query_one("#learnt").move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.pause()
        line = plain(screen.query_one("#learnt-line", Static).content, size[0])
        assert f"reliability ({want.requests}−{want.errors}+2)/({want.requests}+2)" in line
        assert "satisfaction (2+1.5)/(3+2) = 0.70" in line
        assert f"= {value:.2f}" in line

        await press(pilot, "escape")
        assert not isinstance(app.screen, LearntScreen)


async def test_learnt_says_when_a_model_has_too_little_evidence(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await press(pilot, "2")
        await press(pilot, "L")
        screen = app.screen
        assert isinstance(screen, LearntScreen)
        thin = [r for r in screen.rows.values() if not r.enough]
        assert thin and all(r.requests + r.feedback_n < 5 for r in thin)
        index = list(screen.rows.values()).index(thin[0])
        assert learnt_table_rows(app)[index][8] == f"{thin[0].evidence}/5"
        screen.query_one("#learnt").move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.pause()
        line = plain(screen.query_one("#learnt-line", Static).content, 80)
        assert f"{thin[0].evidence} of 5 outcomes: routing counts it 0.75" in line


async def test_learnt_reads_the_store_with_the_daemon_down(console: ConsoleFactory) -> None:
    app, fake = console(up=False)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await press(pilot, "2")
        await press(pilot, "L")
        assert isinstance(app.screen, LearntScreen)
        assert len(learnt_table_rows(app)) == len(app.screen.rows) > 10
        assert "What routing learnt" in shown(app, 80)
        assert not [c for c in fake.calls if c[1] != "/health"]


async def test_learnt_explains_a_missing_store(console: ConsoleFactory, tmp_path: Path) -> None:
    app, _ = console(database=tmp_path / "nope.db")
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await press(pilot, "2")
        await press(pilot, "L")
        assert "cannot read what routing learnt: no store at" in shown(app, 80)


# -- what-if ------------------------------------------------------------------------------------


@sizes
async def test_w_shows_actual_vs_whatif_per_container_and_in_total(
    console: ConsoleFactory, size: tuple[int, int]
) -> None:
    app, fake = console()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        await press(pilot, "w")
        assert isinstance(app.screen, WhatIfScreen)
        assert ("GET", "/admin/whatif", {"since": "24h"}) in fake.calls
        result = plain(app.screen.query_one("#whatif-result", Static).content, size[0] - 4)
        lines = result.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= size[0] - 4
        app_line = next(line for line in lines if line.startswith("app "))
        assert app_line.split() == ["app", "31", "4", "$1.21→$0.88", "42%→55%",
                                    "910ms→840ms", "0.86→0.84"]  # fmt: skip
        total = next(line for line in lines if line.startswith("TOTAL"))
        assert total.split() == ["TOTAL", "61", "16", "$3.07→$1.19", "31%→67%",
                                 "1.1s→727ms", "0.88→0.83"]  # fmt: skip
        long_name = "research-and-development-eu"
        if size[0] >= 120:
            assert any(line.startswith(long_name) for line in lines)
        else:
            assert any(line.startswith("research-") and "…" in line.split()[0] for line in lines)
        assert not any(line.startswith("idle") for line in lines)  # no requests: no row
        assert "59 `auto` decisions ranked again, 16 would have gone elsewhere" in " ".join(
            line.strip() for line in lines
        )
        await press(pilot, "escape")
        assert not isinstance(app.screen, WhatIfScreen)


async def test_the_whatif_form_asks_the_daemon_again(console: ConsoleFactory) -> None:
    app, fake = console()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "w")
        screen = app.screen
        screen.query_one("#whatif-strategy", Select).value = "cost-optimized"
        await settle(pilot)
        assert fake.calls[-1] == (
            "GET",
            "/admin/whatif",
            {"since": "24h", "strategy": "cost-optimized"},
        )
        screen.query_one("#whatif-local", Select).value = "on"
        screen.query_one("#whatif-period", Select).value = "7d"
        await settle(pilot)
        asked = [c[2] for c in fake.calls if c[1] == "/admin/whatif"]
        assert asked[-1] == {"since": "7d", "strategy": "cost-optimized", "prefer_local": "true"}
        screen.query_one("#whatif-strategy", Select).value = "decided"
        screen.query_one("#whatif-local", Select).value = "configured"
        await settle(pilot)
        asked = [c[2] for c in fake.calls if c[1] == "/admin/whatif"]
        assert asked[-1] == {"since": "7d"}
        assert "TOTAL" in shown(app, 80)


@pytest.mark.parametrize(
    ("up", "admin", "words"),
    [
        (False, True, "The daemon is unreachable at http://omen.test:8080"),
        (True, False, "No admin access: what-if is an admin route"),
    ],
    ids=["daemon-down", "no-admin"],
)
async def test_whatif_says_why_it_cannot_answer(
    console: ConsoleFactory, up: bool, admin: bool, words: str
) -> None:
    app, _ = console(up=up, admin=admin)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "w")
        assert isinstance(app.screen, WhatIfScreen)
        text = " ".join(shown(app, 200).split())
        assert words in text and "TOTAL" not in text


async def test_whatif_says_when_the_period_had_no_requests(console: ConsoleFactory) -> None:
    app, fake = console()
    fake.whatif = {
        "containers": {},
        "total": {"requests": 0, "rerouted": 0, "changed": 0, "unchanged": 0, "skipped": 0},
    }
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "w")
        assert "No served requests in this period" in shown(app, 80)


# -- judging a replay ---------------------------------------------------------------------------


async def open_replay(pilot: object, app: OmenConsole) -> None:
    await press(pilot, "2")  # type: ignore[arg-type]
    await press(pilot, "r")  # type: ignore[arg-type]
    await press(pilot, "enter")  # type: ignore[arg-type]
    assert isinstance(app.screen, ReplayResult)


def feedback_calls(fake: fake_admin.FakeAdmin) -> list[tuple[str, float]]:
    return [(c[2]["request_id"], c[2]["score"]) for c in fake.calls if c[1] == "/v1/feedback"]


@sizes
async def test_plus_judges_the_replay_better_and_minus_worse(
    console: ConsoleFactory, size: tuple[int, int]
) -> None:
    app, fake = console()
    async with app.run_test(size=size, notifications=True) as pilot:
        await open_replay(pilot, app)
        footer = {b.binding.key for b in app.active_bindings.values() if b.binding.show}
        assert {"plus", "minus"} <= footer
        await press(pilot, "plus")
        assert feedback_calls(fake) == [("req_replay", 1.0), ("req_0119", 0.0)]
        assert (
            "Replay judged better: feedback 1 for req_replay (ollama/llama3.1:8b), "
            "0 for req_0119 (openai/gpt-4o)"
        ) in notes(app)
        await press(pilot, "minus")  # a later verdict replaces the earlier one
        assert feedback_calls(fake)[2:] == [("req_replay", 0.0), ("req_0119", 1.0)]
        assert any(n.startswith("Replay judged worse") for n in notes(app))
        assert isinstance(app.screen, ReplayResult)


async def test_a_refused_verdict_says_which_half_was_recorded(console: ConsoleFactory) -> None:
    app, fake = console()
    fake.feedback_refused = {"req_0119"}
    async with app.run_test(size=SIZES["80x24"], notifications=True) as pilot:
        await open_replay(pilot, app)
        await press(pilot, "plus")
        assert feedback_calls(fake) == [("req_replay", 1.0), ("req_0119", 0.0)]
        messages = notes(app)
        assert any("no answered request 'req_0119'" in m for m in messages)
        assert "Only feedback 1 for req_replay was recorded" in messages
        assert not any(m.startswith("Replay judged") for m in messages)


async def test_a_replay_without_an_answer_is_not_judged(
    console: ConsoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = {**fake_admin.REPLAY["replay"], "status": 502, "provider": None, "answer": None}
    monkeypatch.setattr(fake_admin, "REPLAY", {**fake_admin.REPLAY, "replay": failed})
    app, fake = console()
    async with app.run_test(size=SIZES["80x24"], notifications=True) as pilot:
        await open_replay(pilot, app)
        await press(pilot, "minus")
        assert feedback_calls(fake) == []
        assert "the replay got no answer; feedback is for answers" in notes(app)


# -- help -----------------------------------------------------------------------------------------


async def test_help_lists_the_learning_keys(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZES["160x48"]) as pilot:
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = shown(app, 120)
        for words in ("what routing learnt", "what-if — re-route", "the replay was better / worse"):
            assert words in text, words
