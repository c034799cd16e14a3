"""A fleet (issue 14): two `omen serve` processes, instances "a" and "b", on one PostgreSQL
store and one Redis prefix, in front of two fake Ollama boxes and a fake OpenAI.

Each test gets a fresh database (tests.pg_support) and Redis prefix (tests.redis_support);
both skip the test when their server is not there (and fail it where CI requires them).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from omen_store import DrainChange, RequestRecord, StoreReader, StoreWriter
from omen_store.batch import Batch
from omen_store.pg import COMMIT_ORDER_LOCK, PgConnection
from tests.fakes import FakeState, TextReply, make_ollama_app, make_openai_app, run_fake
from tests.integration.conftest import ADMIN_KEY, APP_KEY, UPSTREAM_KEY, Omen, omen_env, start_omen
from tests.pg_support import pg_database
from tests.redis_support import redis_prefix, redis_url_or_skip

FLEET_REFRESH = 0.5  # server.fleet_refresh of both instances
FLUSH = 0.05  # server.writer_flush_interval (conftest's start_omen)
# A change made through one instance is in the store within a flush interval and taken by
# the other within one refresh after that; the rest is slack for a loaded machine.
APPLIES_WITHIN = FLUSH + FLEET_REFRESH + 0.5
MODEL = "llama3.1:8b"
HELLO = [{"role": "user", "content": "Say hello"}]
# What one gpt-4o answer costs: 100 × $0.0025/1k + 50 × $0.01/1k.
ANSWER_COST = 0.00075


@dataclass
class Boxes:
    gpu1: FakeState
    gpu2: FakeState
    openai: FakeState
    config: str


@pytest.fixture
def boxes() -> Iterator[Boxes]:
    """Two Ollama endpoints of one provider (round-robin, so which one served is certain)
    and a priced OpenAI for spend and budgets."""
    gpu1 = FakeState(models=[MODEL], loaded=[MODEL])
    gpu2 = FakeState(models=[MODEL], loaded=[MODEL])
    oai = FakeState(models=["gpt-4o"], api_key=UPSTREAM_KEY)
    oai.script.default = TextReply("w " * 50, prompt_tokens=100, completion_tokens=50)
    with (
        run_fake(make_ollama_app(gpu1)) as one,
        run_fake(make_ollama_app(gpu2)) as two,
        run_fake(make_openai_app(oai)) as cloud,
    ):
        config = f"""
[auth]
api_keys = [{{ key = "env:TEST_ADMIN_KEY", scope = "admin" }}]

[providers.ollama]
endpoints = [{{ url = "{one.url}", name = "gpu-1" }}, {{ url = "{two.url}", name = "gpu-2" }}]
models = ["{MODEL}"]
load_balancing = "round-robin"
health_check_interval = "1h"

[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{cloud.url}/v1"
models = ["gpt-4o"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "1h"

[containers.app]
api_key = "env:TEST_APP_KEY"

[containers.app.budget]
daily = "10.00"
"""
        yield Boxes(gpu1, gpu2, oai, config)


@dataclass
class FleetRig:
    """Starts instances of one fleet: one store, one Redis prefix, a folder each."""

    database: str
    redis_url: str
    prefix: str
    tmp_path: Path
    config: str
    started: list[Omen] = field(default_factory=list)

    def start(self, instance: str) -> Omen:
        home = self.tmp_path / instance
        home.mkdir(exist_ok=True)
        omen = start_omen(
            home,
            self.config,
            extra_env={
                "OMEN_DATABASE": self.database,
                "OMEN_INSTANCE": instance,
                # A PostgreSQL store's spill file lives in the state folder: keep it here.
                "XDG_STATE_HOME": str(self.tmp_path / "state"),
            },
            server_extra=(
                f'fleet_refresh = "{int(FLEET_REFRESH * 1000)}ms"\n'
                f'redis_url = "{self.redis_url}"\nredis_prefix = "{self.prefix}"'
            ),
        )
        self.started.append(omen)
        return omen

    def pair(self) -> tuple[Omen, Omen]:
        return self.start("a"), self.start("b")

    def stop_all(self) -> None:
        failures: list[AssertionError] = []
        for omen in self.started:  # every daemon, even when one of them stops badly
            try:
                omen.stop()
            except AssertionError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


@pytest.fixture
def fleet(request: pytest.FixtureRequest, tmp_path: Path, boxes: Boxes) -> Iterator[FleetRig]:
    redis_url = redis_url_or_skip()
    with pg_database() as database:
        rig = FleetRig(
            database, redis_url, redis_prefix(request.node.name[:40]), tmp_path, boxes.config
        )
        try:
            yield rig
        finally:
            rig.stop_all()  # before the database is dropped under them


# --- helpers --------------------------------------------------------------------------------


def chat(omen: Omen, model: str = MODEL) -> httpx.Response:
    return httpx.post(
        f"{omen.url}/v1/chat/completions",
        json={"model": model, "messages": HELLO},
        headers={"authorization": f"Bearer {APP_KEY}"},
        timeout=10,
    )


def admin(omen: Omen, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(
        method,
        f"{omen.url}{path}",
        json=body,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def endpoint(omen: Omen, name: str) -> dict[str, Any]:
    listing = admin(omen, "GET", "/admin/endpoints")
    return next(e for e in listing["endpoints"] if e["endpoint"] == name)


def container(omen: Omen, name: str = "app") -> dict[str, Any]:
    listing = admin(omen, "GET", "/admin/containers")
    return next(c for c in listing["containers"] if c["container"] == name)


def wait_until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` holds; fails after `timeout` (polls every 20 ms)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            pytest.fail(f"not within {timeout:.2f} s")
        time.sleep(0.02)
    return time.monotonic() - began


def spread(boxes: Boxes, omen: Omen, count: int) -> tuple[int, int]:
    """Send `count` chats through `omen`, one after another; how many each box served."""
    gpu1, gpu2 = boxes.gpu1.served, boxes.gpu2.served
    for _ in range(count):
        assert chat(omen).status_code == 200
    return boxes.gpu1.served - gpu1, boxes.gpu2.served - gpu2


def logs(database: str, *args: str) -> list[dict[str, Any]]:
    """`omen logs --db <url> --json ...` as an operator runs it: a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "omen", "logs", "--db", database, "--json", *args],
        capture_output=True,
        text=True,
        env=omen_env(),
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]


def request(request_id: str, of: str = "app") -> RequestRecord:
    """A stored request of container `of`, as a daemon would record it."""
    return RequestRecord(
        id=request_id,
        ts=time.time(),
        container=of,
        key_id="key",
        kind="chat",
        requested_model=MODEL,
        model=MODEL,
        provider="ollama",
        endpoint="gpu-1",
        intent="chat",
        strategy="balanced",
        stream=False,
        status=200,
        latency_ms=12.0,
        ttft_ms=None,
        prompt_tokens=5,
        completion_tokens=7,
    )


def stored_requests(database: str, count: int, timeout: float = 5.0) -> int:
    """Wait until the shared store holds `count` requests (each writer commits within its
    flush interval); returns how many it holds."""
    with StoreReader(database) as reader:
        deadline = time.monotonic() + timeout
        while True:
            held = len(reader.recent_requests(limit=count + 100))
            if held >= count or time.monotonic() > deadline:
                return held
            time.sleep(0.05)


# --- the acceptance tests -------------------------------------------------------------------


def test_logs_list_every_request_of_both_instances_once_with_its_instance(
    fleet: FleetRig,
) -> None:
    a, b = fleet.pair()
    served_by: dict[str, str] = {}
    for i in range(20):  # interleaved: a, b, a, b, ... through the official SDK
        omen, name = (a, "a") if i % 2 == 0 else (b, "b")
        with omen.client() as client:
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO)  # type: ignore[arg-type]
        assert raw.parse().choices[0].message.content
        served_by[raw.headers["x-omen-request-id"]] = name
    assert len(served_by) == 20
    assert stored_requests(fleet.database, 20) == 20
    rows = logs(fleet.database, "--limit", "100")
    counts = Counter(row["id"] for row in rows)
    assert counts == Counter(served_by.keys())  # every request of both, each exactly once
    assert {row["id"]: row["instance"] for row in rows} == served_by
    assert {row["container"] for row in rows} == {"app"}
    assert [row["ts"] for row in rows] == sorted(row["ts"] for row in rows)  # oldest first


def test_logs_instance_filter_lists_one_instance_of_the_fleet() -> None:
    """`omen logs --instance NAME` (a documented option) keeps that instance's rows only."""
    with pg_database() as database:
        for name in ("a", "b"):
            writer = StoreWriter(database, instance=name, flush_interval=0.01)
            writer.start()
            for n in range(3):
                writer.record_request(request(f"req-{name}-{n}"))
            writer.close()
        assert len(logs(database)) == 6
        only_a = logs(database, "--instance", "a")
        assert sorted(row["id"] for row in only_a) == ["req-a-0", "req-a-1", "req-a-2"]
        assert {row["instance"] for row in only_a} == {"a"}


def test_a_drain_through_one_instance_applies_on_the_other_within_a_refresh(
    fleet: FleetRig, boxes: Boxes
) -> None:
    a, b = fleet.pair()
    assert spread(boxes, b, 4) == (2, 2)  # round-robin: before the drain, B uses both boxes

    drained = admin(
        a,
        "POST",
        "/admin/endpoints/drain",
        {"provider": "ollama", "endpoint": "gpu-1", "reason": "maintenance"},
    )
    assert drained["drained"] is True
    took = wait_until(lambda: endpoint(b, "gpu-1")["drained"], APPLIES_WITHIN)
    print(f"drain through a seen on b after {took:.3f} s")
    view = endpoint(b, "gpu-1")
    assert (view["status"], view["drain_reason"]) == ("drained", "maintenance")
    assert spread(boxes, b, 6) == (0, 6)

    # And back: an undrain through B applies on A.
    assert admin(b, "POST", "/admin/endpoints/undrain", {"provider": "ollama", "endpoint": "gpu-1"})
    took = wait_until(lambda: not endpoint(a, "gpu-1")["drained"], APPLIES_WITHIN)
    print(f"undrain through b seen on a after {took:.3f} s")
    assert endpoint(a, "gpu-1")["status"] == "healthy"
    assert spread(boxes, a, 4) == (2, 2)
    # Both changes are in the shared store, each named by the instance that made it.
    with StoreReader(fleet.database) as reader:
        row = reader.drains()[("ollama", "gpu-1")]
    assert (row.drained, row.instance) == (False, "b")


def test_a_budget_override_through_one_instance_applies_on_the_other(
    fleet: FleetRig,
) -> None:
    a, b = fleet.pair()
    assert chat(b, "openai/gpt-4o").status_code == 200  # $0.00075 spent
    changed = admin(a, "PUT", "/admin/containers/app/budget", {"daily": "0.0001"})
    assert changed["after"]["daily"] == 0.0001

    def b_has_it() -> bool:
        return bool(container(b)["budget_overrides"] == {"daily": 0.0001})

    took = wait_until(b_has_it, APPLIES_WITHIN)
    print(f"budget override through a seen on b after {took:.3f} s")
    assert container(b)["limits"]["budget_daily"] == 0.0001
    refused = chat(b, "openai/gpt-4o")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_daily"

    # Back to the configured budget through B; A follows.
    admin(b, "PUT", "/admin/containers/app/budget", {"daily": None})
    took = wait_until(lambda: container(a)["budget_overrides"] == {}, APPLIES_WITHIN)
    print(f"budget reset through b seen on a after {took:.3f} s")
    assert container(a)["limits"]["budget_daily"] == 10.0
    assert chat(a, "openai/gpt-4o").status_code == 200


def test_spend_survives_restarting_both_instances(fleet: FleetRig) -> None:
    a, b = fleet.pair()
    for i in range(6):
        assert chat((a, b)[i % 2], "openai/gpt-4o").status_code == 200
    spend = container(a)["spend"]
    assert spend["daily"] == pytest.approx(6 * ANSWER_COST)
    assert container(b)["spend"] == spend  # one set of counters for the fleet
    usage = container(a)["usage"]
    assert stored_requests(fleet.database, 6) == 6

    a.stop()  # SIGTERM, as systemd would; both flush their store
    b.stop()
    a, b = fleet.pair()
    assert container(a)["spend"] == spend
    assert container(b)["spend"] == spend
    assert container(b)["usage"] == usage
    # The store agrees: six requests, both instances' spend.
    with StoreReader(fleet.database) as reader:
        stored = reader.spend_window("app", time.time() - 3600)
    assert stored.requests == 6
    assert stored.cost_usd == pytest.approx(spend["daily"])


def test_each_instance_shows_the_others_view_of_every_endpoint(fleet: FleetRig) -> None:
    a, b = fleet.pair()
    assert admin(a, "GET", "/admin/endpoints")["instance"] == "a"
    assert admin(b, "GET", "/admin/endpoints")["instance"] == "b"

    def views_of_both() -> bool:
        entries = admin(a, "GET", "/admin/endpoints")["endpoints"]
        return all({v["instance"] for v in e["instances"]} == {"a", "b"} for e in entries)

    # B's startup probe is in the store within a flush; A reads it within a refresh.
    wait_until(views_of_both, APPLIES_WITHIN + 1.0)
    for entry in admin(a, "GET", "/admin/endpoints")["endpoints"]:
        views = {v["instance"]: v for v in entry["instances"]}
        assert views["b"]["healthy"] is True, entry
        assert views["b"]["checked_at"] > time.time() - 60
        assert views["b"]["error"] is None
        assert set(views["b"]) >= {"latency_ms", "in_flight"}


def test_following_the_shared_store_misses_no_row_a_slow_writer_commits_late() -> None:
    """`omen logs -f` (and the console) follow `recent_requests(after_rowid=...)`. On
    PostgreSQL `seq` is handed out at insert and rows become visible at commit; every writer
    therefore takes one advisory lock per batch (store.writer._write), so a batch that is slow
    to commit (an instance waiting on the network) holds the others back rather than letting
    their later seqs become visible first. Without the lock a follower missed 6,400 and 7,455
    of 90,000 rows of three bench writers."""
    with pg_database() as database:
        busy = StoreWriter(database, instance="b", flush_interval=0.01)
        busy.start()  # creates the tables
        follower = StoreReader(database)
        slow = PgConnection(database, name="slow instance")
        try:
            mark = follower.max_rowid()
            slow.execute("BEGIN")
            slow.execute("SELECT pg_advisory_xact_lock(?)", (COMMIT_ORDER_LOCK,))
            late = Batch(keep_bodies=False, instance="a")
            late.add(request("late-0", of="other"))
            late.write(slow)  # seq handed out now, row visible at COMMIT
            for n in range(2500):
                busy.record_request(request(f"busy-{n}"))
            assert not busy.flush(timeout=1)  # held back by the slow instance's batch
            followed: list[str] = []

            def poll() -> None:  # as the reader asks: after the largest rowid seen
                nonlocal mark
                while rows := follower.recent_requests(after_rowid=mark, limit=1000):
                    followed.extend(row.id for row in rows)
                    mark = max(mark, rows[-1].rowid)

            poll()
            assert followed == []
            slow.execute("COMMIT")
            assert busy.flush(timeout=30)
            poll()
            assert followed == ["late-0", *(f"busy-{n}" for n in range(2500))]
        finally:
            slow.close()
            follower.close()
            busy.close()


def test_logs_follow_prints_a_row_committed_late_once_and_nothing_twice() -> None:
    """`omen logs -f` on the shared store: rows held back behind a slow instance's batch are
    printed once each when they land, and what was printed before is not printed again."""
    with pg_database() as database:
        busy = StoreWriter(database, instance="b", flush_interval=0.01)
        busy.start()
        lines: list[dict[str, Any]] = []
        follow = subprocess.Popen(
            [sys.executable, "-m", "omen", "logs", "--db", database, "--json", "-f"],
            stdout=subprocess.PIPE,
            text=True,
            env=omen_env(),
        )
        reading = threading.Thread(
            target=lambda: lines.extend(orjson.loads(line) for line in follow.stdout or ()),
            daemon=True,
        )
        reading.start()
        slow = PgConnection(database, name="slow instance")
        try:
            busy.record_request(request("first"))
            assert busy.flush()
            wait_until(lambda: len(lines) == 1, 20)  # `omen logs -f` is up and following
            slow.execute("BEGIN")
            slow.execute("SELECT pg_advisory_xact_lock(?)", (COMMIT_ORDER_LOCK,))
            late = Batch(keep_bodies=False, instance="a")
            late.add(request("late", of="other"))
            late.write(slow)
            for n in range(10):
                busy.record_request(request(f"busy-{n}"))
            assert not busy.flush(timeout=1)
            slow.execute("COMMIT")
            assert busy.flush()
            wait_until(lambda: len(lines) == 12, 5)
            time.sleep(4 * 0.5)  # a few more polls of `omen logs -f`
        finally:
            slow.close()
            follow.terminate()
            follow.wait(timeout=10)
            reading.join(timeout=10)
            busy.close()
        printed = Counter(line["id"] for line in lines)
        assert printed == Counter(["first", "late", *(f"busy-{n}" for n in range(10))])


def test_an_undrain_made_later_applies_even_from_an_instance_whose_clock_is_behind(
    fleet: FleetRig,
) -> None:
    """Each instance takes a drains row only when its `ts` (the writing instance's wall clock)
    is newer than the last change it took; the store keeps the last one written. Instance
    "c" here runs 2 s behind (NTP off, a VM resumed): its undrain, made after A's drain, is
    what the store holds, but A never takes it and stays drained until restarted."""
    a = fleet.start("a")
    admin(a, "POST", "/admin/endpoints/drain", {"provider": "ollama", "endpoint": "gpu-1"})
    time.sleep(FLUSH * 4)  # A's drain is in the store
    skewed = StoreWriter(fleet.database, instance="c")
    skewed.start()
    skewed.record_drain(DrainChange(time.time() - 2.0, "ollama", "gpu-1", False, None, "ops"))
    skewed.close()
    with StoreReader(fleet.database) as reader:
        row = reader.drains()[("ollama", "gpu-1")]
    assert (row.drained, row.instance) == (False, "c")  # the store: undrained, by c
    wait_until(lambda: not endpoint(a, "gpu-1")["drained"], APPLIES_WITHIN)
