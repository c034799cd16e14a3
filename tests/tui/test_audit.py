"""The audit trail (A): who did what — a key, or a signed-in operator and the role they acted
as — newest first, at 80x24 and 160x48, over the seeded store; read-only, so there in
`--readonly` and for a viewer; read again while open; one bounded, indexed read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import Static

from omen_store import AuditRecord, AuditRow, StoreWriter
from omen_tui.app import OmenConsole
from omen_tui.model.audit import AUDIT_LIMIT, LEAST, change, who, widths
from omen_tui.screens.audit import AuditScreen
from omen_tui.screens.help import HelpScreen
from omen_tui.screens.replay_result import ReplayResult
from tests.tui.conftest import ConsoleFactory, press, settle
from tests.tui.fake_admin import URL, FakeAdmin
from tests.tui.seed import NOW
from tests.tui.test_identity import VIEWER
from tests.tui.test_learning_views import plain
from tests.tui.test_views import footer_keys

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}
sizes = pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())

ADA = "ada@example.com (admin)"


def audit_rows(app: OmenConsole) -> list[list[str]]:
    table = app.screen.query_one("#audit")
    rows = []
    for index in range(table.row_count):  # type: ignore[attr-defined]
        cells = table.get_row_at(index)  # type: ignore[attr-defined]
        rows.append([c.plain if isinstance(c, Text) else str(c) for c in cells])
    return rows


def strip(app: OmenConsole, width: int) -> str:
    return plain(app.screen.query_one("#audit-line", Static).content, width)


def summary(app: OmenConsole, width: int) -> str:
    return plain(app.screen.query_one("#audit-summary", Static).content, width)


def add_audit(database: Path, *records: AuditRecord) -> None:
    writer = StoreWriter(database)
    writer.start()
    for record in records:
        writer.record_audit(record)
    assert writer.flush()
    writer.close()


# -- what a row says --------------------------------------------------------------------------


def test_a_change_names_only_what_changed() -> None:
    assert change({"drained": False, "reason": None}, {"drained": True, "reason": "dust"}) == (
        "drained false→true, reason -→dust"
    )
    assert change({"daily": 5.0}, {"daily": 5.0}) == "(no change)"
    assert change(None, {"request_id": "rep_1", "status": 200}) == "-→request_id=rep_1 status=200"
    assert change({"endpoints": 3}, None) == "endpoints=3→-"
    assert change(None, None) == ""


def test_who_names_the_role_a_signed_in_operator_acted_as() -> None:
    ada = AuditRow(1, NOW, "ada@example.com", "drain", "gpu1", None, None, None, role="admin")
    key = AuditRow(2, NOW, "key_admin", "drain", "gpu1", None, None, None)
    assert who(ada) == ADA
    assert who(key) == "key_admin"


@pytest.mark.parametrize("room", [LEAST - 1, LEAST, 78, 158])
def test_the_audit_columns_fit_the_terminal_and_the_change_goes_first(room: int) -> None:
    sized = widths(room, {"who": len(ADA), "action": 12, "target": 40})
    assert sum(sized.values()) + len(sized) <= room
    assert sized["who"] >= 10 and sized["time"] == 11
    assert ("change" in sized) == (room >= LEAST)
    if room >= 78:
        assert sized["who"] == len(ADA) and sized["action"] == 12  # who and what: whole


# -- the screen -------------------------------------------------------------------------------


@sizes
async def test_A_lists_who_did_what_newest_first(
    console: ConsoleFactory, size: tuple[int, int]
) -> None:
    app, _ = console()
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert "A" in footer_keys(app)
        await press(pilot, "A")
        assert isinstance(app.screen, AuditScreen)
        screen = app.screen
        rows = list(screen.rows.values())
        assert [r.ts for r in rows] == sorted((r.ts for r in rows), reverse=True)

        table = audit_rows(app)
        # time, who (role), action, target: the seed's operator, its key and the daemon.
        assert table[0][:4] == ["03-04 12:25", ADA, "replay", "req_0112"]
        assert table[1][:4] == ["03-04 12:20", ADA, "key_create", "key_5f2a9c01d4e7"]
        assert table[2][:4] == ["03-04 12:15", "key_admin", "drain", "ollama/gpu2"]
        assert ["03-04 12:00", ADA, "undrain", "ollama/gpu1"] in [r[:4] for r in table]
        assert ["03-04 10:30", "key_admin", "budget", "app"] in [r[:4] for r in table]
        assert ["03-04 12:10", "omen", "budget_alert", "research"] in [r[:4] for r in table]
        assert not [r for r in table if "(viewer)" in r[1]]  # a viewer cannot act
        assert "9 newest" in summary(app, size[0])
        assert "by 1 operator, 1 key" in summary(app, size[0])

        # Every column fits the terminal, every value its column.
        columns = list(screen.query_one("#audit").columns.values())  # type: ignore[attr-defined]
        assert [c.key.value for c in columns] == ["time", "who", "action", "target", "change"]
        assert sum(c.width for c in columns) <= size[0] - 2
        for row in table:
            for text, column in zip(row, columns, strict=True):
                assert len(text) <= column.width - 1, (text, column.width)
        if size[0] >= 120:  # room for the change whole
            assert table[2][4] == "drained false→true, reason -→driver update"
        else:
            assert "…" in table[2][4]

        # The strip under the table has the selected row whole.
        line = strip(app, size[0])
        assert "2026-03-04 12:25:00 UTC  replay req_0112" in line
        assert "by ada@example.com, signed in as admin" in line
        assert "mode=reroute" in line
        await press(pilot, "j", "j")
        line = strip(app, size[0])
        assert "drain ollama/gpu2" in line and "by API key key_admin" in line
        assert "drained false→true, reason -→driver update" in line
        assert "detail: driver update" in line
        await press(pilot, "k")
        assert "key_create key_5f2a9c01d4e7" in strip(app, size[0])
        await press(pilot, "G")
        assert "budget app" in strip(app, size[0]) and "daily -→5.0" in strip(app, size[0])
        await press(pilot, "g")
        assert "replay req_0112" in strip(app, size[0])
        await press(pilot, "A")  # already open: no second one
        assert len(app.screen_stack) == 2

        await press(pilot, "escape")
        assert not isinstance(app.screen, AuditScreen)
        assert app.screen is app.screen_stack[0]


async def test_A_opens_the_audit_trail_over_a_replay_comparison(console: ConsoleFactory) -> None:
    app, _ = console()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "2", "r", "enter")
        assert isinstance(app.screen, ReplayResult)
        assert "A" not in footer_keys(app)  # its footer is full at 80 columns: quit stays
        await press(pilot, "A")
        assert isinstance(app.screen, AuditScreen)
        await press(pilot, "escape")
        assert isinstance(app.screen, ReplayResult)


async def test_the_audit_trail_is_there_in_readonly(console: ConsoleFactory) -> None:
    app, fake = console(readonly=True)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        assert "A" in footer_keys(app) and "b" not in footer_keys(app)
        await press(pilot, "A")
        assert isinstance(app.screen, AuditScreen)
        assert audit_rows(app)[0][1] == ADA
    assert not [call for call in fake.calls if call[0] != "GET"]


async def test_a_viewer_reads_the_audit_trail(seeded_db: Path) -> None:
    fake = FakeAdmin(whoami=VIEWER)
    app = OmenConsole(
        seeded_db, URL, None, poll_interval=3600, client=fake.client(), clock=lambda: NOW
    )
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        assert app.viewer and "A" in footer_keys(app)
        await press(pilot, "A")
        assert isinstance(app.screen, AuditScreen)
        table = audit_rows(app)
        assert {r[1] for r in table} >= {ADA, "key_admin"}
        assert not [r for r in table if "(viewer)" in r[1]]
    assert not [call for call in fake.calls if call[0] != "GET"]


async def test_the_audit_trail_reads_the_store_with_the_daemon_down(
    console: ConsoleFactory,
) -> None:
    app, fake = console(up=False)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "A")
        assert len(audit_rows(app)) == 9
    assert not [call for call in fake.calls if call[1] != "/health"]


async def test_the_audit_trail_explains_a_missing_store(
    console: ConsoleFactory, tmp_path: Path
) -> None:
    app, _ = console(database=tmp_path / "nope.db")
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "A")
        assert "cannot read the audit trail: no store at" in summary(app, 80)


async def test_the_audit_trail_reads_again_while_open(
    console: ConsoleFactory, seeded_db: Path
) -> None:
    app, _ = console()
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        app.poll_interval = 0.05  # the screen reads at the console's pace
        await press(pilot, "A")
        assert len(audit_rows(app)) == 9
        add_audit(
            seeded_db,
            AuditRecord(NOW + 60, "grace@example.com", "budget", "batch", {}, {}, None, "admin"),
        )
        for _ in range(100):
            await asyncio.sleep(0.02)
            await pilot.pause()
            if len(audit_rows(app)) == 10:
                break
        assert audit_rows(app)[0][1:4] == ["grace@example.com (admin)", "budget", "batch"]
        assert "grace@example.com, signed in as admin" in strip(app, 80)  # following the top

        app.paused = True  # `p`: the screen stops reading too
        add_audit(seeded_db, AuditRecord(NOW + 120, "key_admin", "drain", "x/y", None, None, None))
        await asyncio.sleep(0.3)
        await pilot.pause()
        assert len(audit_rows(app)) == 10
        app.paused = False
        for _ in range(100):
            await asyncio.sleep(0.02)
            await pilot.pause()
            if len(audit_rows(app)) == 11:
                break
        assert audit_rows(app)[0][1:4] == ["key_admin", "drain", "x/y"]


async def test_the_audit_read_is_bounded_and_served_by_the_index(
    console: ConsoleFactory,
) -> None:
    app, _ = console()
    sent: list[tuple[str, list[Any]]] = []
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        reader = app.poller.store()
        read = reader._all

        def recording(sql: str, params: Any) -> list[tuple[Any, ...]]:
            sent.append((sql, list(params)))
            return read(sql, params)

        reader._all = recording  # type: ignore[method-assign]
        await press(pilot, "A")
        statements = [(sql, params) for sql, params in sent if "FROM audit" in sql]
        assert len(statements) == 1
        sql, params = statements[0]
        assert sql.endswith("ORDER BY ts DESC LIMIT ?") and params == [AUDIT_LIMIT]
        plan = " ".join(str(row[-1]) for row in read(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "USING INDEX audit_ts" in plan and "TEMP B-TREE" not in plan


async def test_help_names_the_audit_trail(console: ConsoleFactory) -> None:
    app, _ = console(readonly=True)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await settle(pilot)
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = " ".join(plain(s.content, 80) for s in app.screen.query(Static))
        assert "audit trail: who (a key, or an operator and role) did what" in text
        assert "hidden" not in text.split("audit trail")[1].split("\n")[0]
