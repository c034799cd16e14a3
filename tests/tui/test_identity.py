"""The console signed in as an operator (`omen login`): the header names who it acts as and
with which role (GET /admin/whoami), a viewer's console hides the actions as `--readonly`
does and says why when a key is pressed, and the token is asked for before every call, so a
refreshed one is what the daemon sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from omen_tui.app import OmenConsole
from omen_tui.client import AdminClient
from omen_tui.model import DaemonState, Filter, Poller
from omen_tui.screens.budget import BudgetEditor
from omen_tui.screens.confirm_drain import ConfirmDrain
from omen_tui.screens.help import HelpScreen
from omen_tui.screens.request_detail import RequestDetail
from omen_tui.widgets.daemon_status import render_status
from tests.tui.conftest import press, settle
from tests.tui.fake_admin import URL, FakeAdmin
from tests.tui.seed import NOW
from tests.tui.test_views import footer_keys, text_of

VIEWER = {"subject": "viewer-1", "email": "ann@example.com", "role": "viewer", "via": "oidc"}
ADMIN = {"subject": "operator-1", "email": "ops@example.com", "role": "admin", "via": "oidc"}


def signed_in_console(
    seeded_db: Path, whoami: dict[str, Any] | None
) -> tuple[OmenConsole, FakeAdmin]:
    fake = FakeAdmin(whoami=whoami)
    app = OmenConsole(
        seeded_db, URL, None, poll_interval=3600, client=fake.client(), clock=lambda: NOW
    )
    return app, fake


@pytest.mark.parametrize("size", [(80, 24), (120, 30)], ids=["80x24", "120x30"])
async def test_the_header_names_the_signed_in_operator_and_role(
    seeded_db: Path, size: tuple[int, int]
) -> None:
    app, fake = signed_in_console(seeded_db, VIEWER)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert "ann@example.com (viewer)" in text_of(app, "#daemon-status")
        await press(pilot, "2")
        await press(pilot, "3")
    asked = [call for call in fake.calls if call[1] == "/admin/whoami"]
    assert len(asked) == 1  # once at start, not every poll


async def test_a_daemon_without_whoami_shows_no_one(seeded_db: Path) -> None:
    app, fake = signed_in_console(seeded_db, None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        status = text_of(app, "#daemon-status")
        assert "daemon up" in status and "·" not in status
    assert ("GET", "/admin/whoami", {}) in fake.calls  # asked, answered 404, tolerated


async def test_an_api_key_has_no_person_to_show(seeded_db: Path) -> None:
    key = {"subject": "key_0123456789ab", "email": None, "role": "admin", "via": "key"}
    app, _ = signed_in_console(seeded_db, key)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert "key_" not in text_of(app, "#daemon-status")
        assert "b" in footer_keys(app)


async def test_a_viewer_sees_no_actions_and_is_told_why(seeded_db: Path) -> None:
    app, fake = signed_in_console(seeded_db, VIEWER)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await settle(pilot)
        assert "b" not in footer_keys(app)
        await press(pilot, "b")
        assert not isinstance(app.screen, BudgetEditor)
        for view, key in (("3", "d"), ("4", "d"), ("2", "r")):
            await press(pilot, view)
            assert key not in footer_keys(app)
            await press(pilot, key)
            assert not isinstance(app.screen, ConfirmDrain)
            assert app.screen is app.screen_stack[0]
        await press(pilot, "enter")  # a decision opens; its replay is hidden too
        assert isinstance(app.screen, RequestDetail)
        assert "r" not in footer_keys(app)
        await press(pilot, "r")
        assert isinstance(app.screen, RequestDetail)
        await press(pilot, "escape")
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert app.screen.hidden == "viewer role"
    assert not [call for call in fake.calls if call[0] != "GET"]
    said = [str(n.message) for n in app._notifications]
    assert said and all("ann@example.com has the viewer role" in m for m in said)
    assert said[0] == (
        "No budget change: ann@example.com has the viewer role, which may look but not act; "
        "an admin group's member may"
    )


async def test_an_admin_signed_in_acts(seeded_db: Path) -> None:
    app, _ = signed_in_console(seeded_db, ADMIN)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert "ops@example.com (admin)" in text_of(app, "#daemon-status")
        await press(pilot, "3")
        assert "d" in footer_keys(app)
        await press(pilot, "d")
        assert isinstance(app.screen, ConfirmDrain)


def test_the_identity_gives_up_its_middle_before_the_role() -> None:
    daemon = DaemonState(
        url=URL, reachable=True, admin=True, user="alice.longname@example.com", role="viewer"
    )
    fits = {
        width: render_status(daemon, paused=False, filt=Filter(), now=NOW, width=width).plain
        for width in (60, 45, 31, 20, 12)
    }
    assert fits == {
        60: "● daemon up · alice.longname@example.com (viewer) 12:30:00",
        45: "● up · alice.longname@example.com (viewer)",
        31: "● up · alice.l…ple.com (viewer)",
        20: "● up · viewer",
        12: "● up",
    }


def test_the_token_is_asked_for_before_every_call() -> None:
    tokens = iter(["at-1", "at-2", None])
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"status": "healthy"})

    client = AdminClient(URL, lambda: next(tokens), transport=httpx.MockTransport(handle))
    for _ in range(3):
        client.health()
    assert seen == ["Bearer at-1", "Bearer at-2", None]


def test_a_refused_credential_is_tried_again_so_a_new_sign_in_is_picked_up(
    seeded_db: Path,
) -> None:
    """Signed in again in another terminal (or given a role): within 30 s the console acts."""
    now = [NOW]
    fake = FakeAdmin(admin=False)
    poller = Poller(seeded_db, fake.client(), tz=ZoneInfo("UTC"), clock=lambda: now[0])
    try:
        assert not poller.fetch("routing", Filter()).daemon.admin
        fake.admin, fake.whoami = True, ADMIN
        now[0] += 10
        assert not poller.fetch("routing", Filter()).daemon.admin  # not asked again yet
        now[0] += 25
        daemon = poller.fetch("routing", Filter()).daemon
        assert daemon.admin and daemon.user == "ops@example.com" and daemon.role == "admin"
    finally:
        poller.close()
