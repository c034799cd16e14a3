"""Fixtures for the console's tests: a seeded store, a canned or real daemon, settled pilots."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import Input

from omen_tui.app import OmenConsole
from tests.integration.conftest import omen_factory, upstreams  # noqa: F401  (fixtures)
from tests.tui.fake_admin import FakeAdmin
from tests.tui.seed import NOW, seed_store


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Times render in the local zone; make it UTC so text is the same everywhere."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blinking cursor makes screenshots depend on timing (Harlequin does the same)."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_store(tmp_path_factory.mktemp("seed") / "omen.db")


@pytest.fixture
def seeded_db(tmp_path: Path, seeded_template: Path) -> Path:
    """A private copy of the seeded store (tests may write to it)."""
    target = tmp_path / "omen.db"
    target.write_bytes(seeded_template.read_bytes())
    return target


ConsoleFactory = Callable[..., tuple[OmenConsole, FakeAdmin]]


@pytest.fixture
def console(seeded_db: Path) -> ConsoleFactory:
    """An OmenConsole over the seeded store, its clock frozen at the seed's NOW."""

    def make(
        *, up: bool = True, admin: bool = True, readonly: bool = False, database: Path | None = None
    ) -> tuple[OmenConsole, FakeAdmin]:
        fake = FakeAdmin(up=up, admin=admin)
        client = fake.client()
        app = OmenConsole(
            database or seeded_db,
            client.base_url,
            None,
            readonly=readonly,
            poll_interval=3600,
            client=client,
            clock=lambda: NOW,
        )
        return app, fake

    return make


async def settle(pilot: Pilot[None]) -> None:
    """Wait until no poll is running or due, and the UI has caught up."""
    app = pilot.app
    assert isinstance(app, OmenConsole)
    for _ in range(500):
        # An action worker waiting on a dialog waits for the operator, not for us.
        asking = isinstance(app.screen, ModalScreen)
        busy = [w for w in app.workers if w.is_running and not (asking and w.group == "actions")]
        if busy:
            await asyncio.wait([asyncio.ensure_future(w.wait()) for w in busy], timeout=0.05)
        await pilot.pause()
        if not busy and not app.is_polling:
            break
    await pilot.pause()


async def press(pilot: Pilot[None], *keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot)
