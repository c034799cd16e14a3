"""The console's store queries on a fleet's PostgreSQL store: every statement its polls send to
the request table is served by an index, never by a walk of the whole table.

The store is small, so sequential scans are priced out (`enable_seqscan = off`): the planner
then picks one only where no index can answer, which is what a million rows would pay for.
tests/unit/test_console_queries.py holds the same watch over SQLite; bench/console.py's
`--explain` prints the plans on a million rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omen_tui.model import VIEWS, Filter, Poller
from tests.pg_support import pg_database
from tests.tui.fake_admin import FakeAdmin
from tests.tui.seed import NOW, seed_fleet

Sent = dict[str, Sequence[Any]]


@pytest.fixture(scope="module")
def fleet_url() -> Iterator[str]:
    with pg_database() as url:
        yield seed_fleet(url)


def console_statements(url: str) -> tuple[Sent, Any]:
    """What a console's polls send about requests: every view twice (the second poll is the
    incremental one), the routing feed under each kind of filter, and a request's detail."""
    poller = Poller(url, FakeAdmin(up=False).client(), tz=ZoneInfo("UTC"), clock=lambda: NOW)
    reader = poller.store()
    conn: Any = reader._conn
    send = conn.execute
    sent: Sent = {}

    def recording(statement: str, params: Sequence[Any] = ()) -> Any:
        if " FROM requests" in statement:
            sent.setdefault(" ".join(statement.split()), params)
        return send(statement, params)

    conn.execute = recording
    for view in VIEWS:
        for _ in range(2):
            poller.fetch(view, Filter())
    for filt in (
        Filter(container="app"),
        Filter(provider="openai"),
        Filter(instance="b"),
        Filter(container="app", instance="a"),
    ):
        poller.reset_feed()
        for _ in range(2):
            poller.fetch("routing", filt)
    reader.get_request("req_0119")
    reader.replays_of("req_0119")
    conn.execute = send
    send("SET enable_seqscan = off")
    return sent, poller


def test_every_console_query_on_requests_is_served_by_an_index(fleet_url: str) -> None:
    sent, poller = console_statements(fleet_url)
    try:
        plans = {
            statement: "\n".join(row[0] for row in poller.store()._all(f"EXPLAIN {statement}", p))
            for statement, p in sent.items()
        }
    finally:
        poller.close()
    assert len(plans) >= 10  # the feed, its follow-ups and filters, sessions, latencies, detail
    assert any("instance = " in statement for statement in plans)
    scans = {statement: plan for statement, plan in plans.items() if "Seq Scan" in plan}
    assert scans == {}


def test_the_instance_filter_reads_that_instance_only(fleet_url: str) -> None:
    poller = Poller(fleet_url, FakeAdmin(up=False).client(), tz=ZoneInfo("UTC"))
    try:
        routing = poller.fetch("routing", Filter(instance="b")).routing
    finally:
        poller.close()
    assert routing is not None
    assert len(routing.rows) == 40
    assert {row.instance for row in routing.rows} == {"b"}
    assert routing.instances == {"a", "b"}  # the fleet, for the view's instance column
