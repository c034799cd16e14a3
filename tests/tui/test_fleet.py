"""One console for a fleet: several Omen instances on one PostgreSQL store (tests/tui/seed.py's
`seed_fleet`: instance a the whole seed, b its own hour of requests and its own probes, which
find ollama/gpu1 down), and several daemons to act through, the first one stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from omen.cli import main
from omen_store import HealthSample, StoreWriter
from omen_tui.app import OmenConsole
from omen_tui.client import AdminClient, AdminError
from omen_tui.model import DaemonState, Filter, Poller
from omen_tui.screens.endpoint_instances import EndpointInstances
from omen_tui.screens.request_detail import RequestDetail
from omen_tui.views.providers import health_label
from omen_tui.widgets.daemon_status import render_status
from tests.pg_support import pg_database
from tests.tui.conftest import press, settle
from tests.tui.fake_admin import FakeAdmin, fleet_client
from tests.tui.seed import NOW, seed_fleet
from tests.tui.test_views_80 import line_with, on_screen, row_of, screen

NARROW, WIDE = (80, 24), (160, 48)
A, B = "http://a.test:8080", "http://b.test:8080"


@pytest.fixture(scope="module")
def fleet_db() -> Iterator[str]:
    """The fleet's store, seeded once: the tests read it (actions go to fake daemons)."""
    with pg_database() as url:
        yield seed_fleet(url)


def fleet_console(url: str, daemons: dict[str, FakeAdmin]) -> OmenConsole:
    client = fleet_client(daemons)
    return OmenConsole(url, client.urls, None, poll_interval=3600, client=client, clock=lambda: NOW)


def daemons(*, a_up: bool = True, b_up: bool = True) -> dict[str, FakeAdmin]:
    return {A: FakeAdmin(up=a_up, instance="a"), B: FakeAdmin(up=b_up, instance="b")}


# -- 2 Routing ---------------------------------------------------------------------------------


async def test_at_80_the_instance_is_in_the_strip_and_from_120_in_a_column(fleet_db: str) -> None:
    app = fleet_console(fleet_db, daemons())
    async with app.run_test(size=NARROW) as pilot:
        await press(pilot, "2")
        header = line_with(app, " time ")
        assert "instance" not in header and "reason" in header  # the reason keeps its room
        assert "200 req_0119  openai/gpt-4o-mini@api.openai.com  on a" in line_with(app, "req_0119")
    for size, route in (((120, 30), "provider/model"), (WIDE, "provider/model@endpoint")):
        app = fleet_console(fleet_db, daemons())
        async with app.run_test(size=size) as pilot:
            await press(pilot, "2")
            # At 120 the endpoint in the route gives way to the instance, not the reason.
            header = line_with(app, " time ").split()
            assert header[:6] == ["time", "st", "instance", "container", "intent", route]
            assert row_of(app, "12:28:50").split()[2] == "b"  # b_req_0039
            assert row_of(app, "12:29:37").split()[2] == "a"  # req_0119


async def test_the_instance_filter_asks_the_store_for_that_instances_requests(
    fleet_db: str,
) -> None:
    app = fleet_console(fleet_db, daemons())
    async with app.run_test(size=WIDE) as pilot:
        await press(pilot, "2")
        reader = app.poller.store()
        asked: list[dict[str, Any]] = []
        recent = reader.recent_requests

        def spy(**kwargs: Any) -> Any:
            asked.append(kwargs)
            return recent(**kwargs)

        reader.recent_requests = spy  # type: ignore[method-assign]
        await press(pilot, "slash", *"i:b", "enter")
        assert app.filter == Filter(instance="b")
        assert asked and all(call["instance"] == "b" for call in asked)
        assert "40 decisions" in line_with(app, "decisions")
        assert "/instance=b" in screen(app)[0]
        # One instance left: its column steps aside for the reason.
        assert "instance" not in line_with(app, " time ")
        await press(pilot, "escape")
        assert "178 decisions" in line_with(app, "decisions")


async def test_the_request_detail_says_which_instance_served_it(fleet_db: str) -> None:
    app = fleet_console(fleet_db, daemons())
    async with app.run_test(size=NARROW) as pilot:
        await press(pilot, "2", "down", "down", "enter")  # b_req_0039 (12:28:50)
        assert isinstance(app.screen, RequestDetail)
        await settle(pilot)
        assert "b_req_0039" in line_with(app, "served by b")


# -- 3 Providers -------------------------------------------------------------------------------


async def test_providers_show_what_the_instances_agree_on_and_each_ones_view(
    fleet_db: str,
) -> None:
    app = fleet_console(fleet_db, daemons())
    async with app.run_test(size=NARROW) as pilot:
        await press(pilot, "3")
        assert "down on b" in row_of(app, "ollama/gpu1")
        assert "healthy 2/2" in row_of(app, "openai/api.openai.com")
        assert "drained" in row_of(app, "ollama/gpu2")  # one drain, fleet-wide
        assert "1 degraded" in line_with(app, "healthy")
        # The card under the table: each instance's newest probe of the selected endpoint.
        card = line_with(app, "\n a up")
        assert "· b down: connect timeout from b" in card
        await press(pilot, "enter")
        assert isinstance(app.screen, EndpointInstances)
        assert on_screen(app, "ollama/gpu1 — each instance's view")
        assert " a         healthy    12ms   1m ago   2 " in line_with(app, " a    ")
        assert " b         unhealthy  -      45s ago  0     connect timeout" in line_with(
            app, "unhealthy"
        )
        await press(pilot, "escape")
        await press(pilot, "down", "enter")  # ollama/gpu2
        assert on_screen(app, "drained (fleet-wide): driver update by key_admin via a")


def test_the_instance_filter_shows_that_instances_view_and_in_flight_adds_up(
    fleet_db: str,
) -> None:
    poller = Poller(fleet_db, fleet_client(daemons()), tz=ZoneInfo("UTC"), clock=lambda: NOW)
    try:
        fleet = poller.fetch("providers", Filter()).providers
        only_b = poller.fetch("providers", Filter(instance="b")).providers
    finally:
        poller.close()
    assert fleet is not None and only_b is not None
    # a (talked to) has 1 in flight to OpenAI by its own count, b's last probe says 1.
    assert {e.key: e.in_flight for e in fleet.endpoints}["openai/api.openai.com"] == 2
    health = {e.key: (e.health, [v.instance for v in e.instances]) for e in only_b.endpoints}
    assert health["ollama/gpu1"] == ("unhealthy", ["b"])
    assert health["openai/api.openai.com"] == ("healthy", ["b"])


def test_an_instance_that_stopped_probing_is_shown_but_no_longer_counts() -> None:
    with pg_database() as url:
        seed_fleet(url)
        writer = StoreWriter(url, instance="c")  # retired an hour ago, gpu1 down from there
        writer.start()
        writer.record_health(
            HealthSample(NOW - 3600, "openai", "api.openai.com", False, None, "dns failure")
        )
        writer.close()
        poller = Poller(url, FakeAdmin(up=False).client(), tz=ZoneInfo("UTC"), clock=lambda: NOW)
        try:
            providers = poller.fetch("providers", Filter()).providers
        finally:
            poller.close()
    assert providers is not None
    openai = next(e for e in providers.endpoints if e.provider == "openai")
    assert [(v.instance, v.fresh) for v in openai.instances] == [
        ("a", True),
        ("b", True),
        ("c", False),
    ]
    # The daemon is down, yet a and b probed lately: their word stands; c's does not count.
    assert (openai.health, health_label(openai)) == ("healthy", "healthy 2/2")


# -- actions through any live daemon --------------------------------------------------------


async def test_actions_go_to_the_first_daemon_that_answers_and_move_on_when_it_stops(
    fleet_db: str,
) -> None:
    fleet = daemons(a_up=False)
    app = fleet_console(fleet_db, fleet)
    async with app.run_test(size=NARROW, notifications=True) as pilot:
        await press(pilot, "3")
        assert "● daemon up on b" in screen(app)[0]
        await press(pilot, "d")
        await press(pilot, "enter")  # confirm the drain of ollama/gpu1
        assert ("POST", "/admin/endpoints/drain") in [c[:2] for c in fleet[B].calls]
        assert fleet[A].calls == []
        # b stops, a is back: the next poll finds a, and says so.
        fleet[B].up, fleet[A].up = False, True
        app.poll_now()
        await settle(pilot)
        assert "● daemon up on a" in screen(app)[0]
        messages = [str(n.message) for n in app._notifications]
        assert f"Actions now go to a ({A}): {B} stopped answering" in messages
        await press(pilot, "d")
        await press(pilot, "enter")
        assert ("POST", "/admin/endpoints/drain") in [c[:2] for c in fleet[A].calls]


def test_a_read_is_asked_of_the_next_daemon_but_an_action_that_may_have_arrived_is_not() -> None:
    arrived: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        arrived.append(f"{request.method} {request.url.host}")
        if request.url.host == "a.test":  # reached a, which never answered
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(200, json={"status": "healthy", "instance": "b", "endpoints": []})

    client = AdminClient(f"{A},{B}", "sk-admin", transport=httpx.MockTransport(handle))
    with pytest.raises(AdminError, match="it may have been done"):
        client.drain("ollama", "gpu1")
    assert arrived == ["POST a.test"]  # not sent to b as well
    assert client.endpoints() == []
    assert (client.base_url, client.instance) == (B, "b")
    assert arrived[1:] == ["GET a.test", "GET b.test"]
    client.drain("ollama", "gpu1")  # now b is the one talked to
    assert arrived[-1] == "POST b.test"


def test_every_daemon_down_says_where_each_was_tried() -> None:
    client = fleet_client(daemons(a_up=False, b_up=False))
    with pytest.raises(AdminError) as failed:
        client.health()
    assert failed.value.unreachable
    assert failed.value.message.startswith(f"daemon unreachable at {A} (")
    assert f"; {B} (" in failed.value.message


def test_the_header_names_the_instance_and_shortens_it_before_the_state() -> None:
    daemon = DaemonState(A, reachable=True, admin=True, instance="omen-eu-west-1")
    fits = [render_status(daemon, paused=False, filt=Filter(), now=NOW, width=w).plain
            for w in (40, 22, 16, 6)]  # fmt: skip
    assert fits == [
        "● daemon up on omen-eu-west-1 12:30:00",
        "● up on omen-eu-west-1",
        "● up on omen…t-1",
        "● up",
    ]


def test_the_filter_line_takes_instance_container_and_provider_words() -> None:
    assert Filter.parse("i:b llama3.1:8b Container:app") == Filter(
        container="app", instance="b", text="llama3.1:8b"
    )
    assert Filter.parse("timeout", instance=" a ").describe() == 'instance=a "timeout"'


def test_omen_tui_takes_several_daemon_urls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("omen_tui.app.run", lambda **kwargs: seen.update(kwargs))
    db = str(tmp_path / "omen.db")
    assert main(["tui", "--db", db, "--url", f"{A}/,{B}", "--url", "http://c.test:8080"]) == 0
    assert seen["url"] == [A, B, "http://c.test:8080"]
