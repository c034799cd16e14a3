"""Real parts for the hostile suite: `omen serve` as a process on a real SQLite file, in front
of the raw-socket misbehaving upstream of `tests/hostile/upstream.py`.

Every helper is bounded: sockets and subprocesses have timeouts, and an RSS watchdog kills an
Omen that grows past ``HARD_RSS_MB`` over its steady state (so a memory bug fails the test
instead of taking the machine down with it).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from omen.config.model import ProviderConfig
from tests.hostile.upstream import HostileUpstream
from tests.integration.conftest import (
    ADMIN_KEY,
    APP_KEY,
    OTHER_KEY,
    UPSTREAM_KEY,
    Omen,
    free_port,
    start_omen,
)

__all__ = [
    "ADMIN_KEY",
    "APP_KEY",
    "OTHER_KEY",
    "UPSTREAM_KEY",
    "free_port",
]

# The bound: no upstream or client behaviour takes RSS more than this over steady state.
RSS_BOUND_MB = 300
# Past this the watchdog kills Omen: the test has failed anyway, and the box is shared.
HARD_RSS_MB = 1200

TIMEOUT_S = 1.0  # the provider's `timeout` in these tests: the whole non-streamed call
FIRST_BYTE_S = 1.0
IDLE_S = 1.0
MAX_STREAM_S = 3.0
SLACK_S = 1.0  # the issue: never a hang past the configured time + 1 s

TOKENS_PER_DAY = 50_000_000  # a quota, so reservations are made and must be released

HELLO = [{"role": "user", "content": "Say hello."}]


# --- configuration ------------------------------------------------------------------------


def supported(key: str) -> bool:
    """Whether this build knows a provider key (unknown keys are config errors, and the
    stream time bounds are what issue 11 adds)."""
    return key in ProviderConfig.model_fields


def stream_bounds(
    *,
    first_byte: float = FIRST_BYTE_S,
    idle: float = IDLE_S,
    max_stream: float = MAX_STREAM_S,
    max_response_size: str | None = None,
) -> str:
    lines = []
    for key, value in (
        ("first_byte_timeout", f'"{first_byte}s"'),
        ("idle_timeout", f'"{idle}s"'),
        ("max_stream_duration", f'"{max_stream}s"'),
        ("max_response_size", f'"{max_response_size}"' if max_response_size else None),
    ):
        if value is not None and supported(key):
            lines.append(f"{key} = {value}")
    return "\n".join(lines)


def hostile_config(
    upstream_url: str,
    *,
    timeout: float = TIMEOUT_S,
    provider_extra: str = "",
    keys: bool = True,
    **bounds: Any,
) -> str:
    auth = '[auth]\napi_keys = [{ key = "env:TEST_ADMIN_KEY", scope = "admin" }]\n' if keys else ""
    containers = (
        f"""
[containers.app]
api_key = "env:TEST_APP_KEY"

[containers.app.quotas]
max_tokens_per_day = {TOKENS_PER_DAY}
"""
        if keys
        else ""
    )
    return f"""
{auth}
[routing]
cooldown = "1s"

[providers.openai]
api_key = "env:TEST_UPSTREAM_KEY"
base_url = "{upstream_url}/v1"
models = ["gpt-4o"]
embedding_models = ["text-embedding-3-small"]
cost_per_1k_input_tokens = 0.0025
cost_per_1k_output_tokens = 0.01
health_check_interval = "1h"
timeout = "{timeout}s"
connect_timeout = "1s"
{stream_bounds(**bounds)}
{provider_extra}
{containers}
"""


# --- memory -------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


class RssWatch:
    """Samples an Omen's RSS every 50 ms; kills it past the hard limit."""

    def __init__(self, pid: int, baseline: float | None = None) -> None:
        self.pid = pid
        self.baseline = baseline if baseline is not None else rss_mb(pid)
        self.peak = self.baseline
        self.last = self.baseline
        self.killed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-watch")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            now = rss_mb(self.pid)
            if now == 0.0:
                return  # the process is gone
            self.last = now
            self.peak = max(self.peak, now)
            if now - self.baseline > HARD_RSS_MB and not self.killed:
                self.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        now = rss_mb(self.pid)
        if now:
            self.last = now
            self.peak = max(self.peak, now)

    @property
    def growth(self) -> float:
        return self.peak - self.baseline

    def describe(self) -> str:
        killed = f" (killed by the watchdog past +{HARD_RSS_MB} MB)" if self.killed else ""
        return (
            f"RSS baseline {self.baseline:.0f} MB, peak {self.peak:.0f} MB "
            f"(+{self.growth:.0f}), last {self.last:.0f} MB{killed}"
        )

    def check(self) -> None:
        assert not self.killed and self.growth <= RSS_BOUND_MB, (
            f"memory not bounded: {self.describe()}; the bound is +{RSS_BOUND_MB} MB"
        )


# --- the store ----------------------------------------------------------------------------


def db_rows(database: Path, where: str = "", args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    if not database.exists():
        return []
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM requests {where}", args)]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def rows_for(database: Path, request_id: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The rows with this id, once the writer has had time to commit them (and a little
    more, so a second row would show)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = db_rows(database, "WHERE id = ?", (request_id,))
        if rows:
            time.sleep(0.2)
            return db_rows(database, "WHERE id = ?", (request_id,))
        time.sleep(0.05)
    return rows


def count_rows(database: Path) -> int:
    if not database.exists():
        return 0
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def stored_ids(database: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute("SELECT id FROM requests")}
    finally:
        conn.close()


def wait_count(database: Path, count: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        now = count_rows(database)
        if now >= count or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


# --- limits -------------------------------------------------------------------------------


def tokens_counted(omen: Omen, container: str = "app") -> float | None:
    try:
        response = httpx.get(
            f"{omen.url}/admin/containers",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=5,
        )
        for entry in response.json()["containers"]:
            if entry["container"] == container:
                return float(entry["usage"]["tokens_day"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return None


def tokens_recorded(database: Path, container: str = "app") -> int:
    return sum(
        int(r["prompt_tokens"]) + int(r["completion_tokens"])
        for r in db_rows(database, "WHERE container = ?", (container,))
    )


def check_reservations_released(omen: Omen, timeout: float = 4.0) -> None:
    """The quota counter comes back to what the rows say was really used."""
    deadline = time.monotonic() + timeout
    counted, recorded = None, None
    while time.monotonic() < deadline:
        counted, recorded = tokens_counted(omen), tokens_recorded(omen.database)
        if counted is not None and counted == recorded:
            return
        time.sleep(0.1)
    assert counted == recorded, (
        f"quota reservation not released: the counter says tokens_day={counted}, "
        f"the rows say {recorded}"
    )
    assert counted is not None and counted >= 0


# --- Omen ---------------------------------------------------------------------------------


@dataclass
class Hostile:
    """An Omen in front of a hostile upstream, with its memory watched."""

    omen: Omen
    upstream: HostileUpstream
    watch: RssWatch | None = None
    baseline: float = 0.0
    dirty: bool = False  # set by a test that leaves the daemon unfit for the next one

    @property
    def pid(self) -> int:
        return self.omen.process.pid

    def warm_up(self, n: int = 2) -> float:
        """A few good requests of each kind, then the steady-state RSS."""
        behaviour = self.upstream.behaviour
        self.upstream.set("ok")
        deadline = time.monotonic() + 5  # an endpoint may still be cooling from a fault
        with httpx.Client(base_url=self.omen.url, timeout=10, headers=auth()) as client:
            done = 0
            while done < n:
                body = {"model": "gpt-4o", "messages": HELLO, "stream": bool(done % 2)}
                status = client.post("/v1/chat/completions", json=body).status_code
                if status == 200:
                    done += 1
                elif time.monotonic() > deadline:
                    raise AssertionError(f"warm-up: a good upstream answered {status}")
                else:
                    time.sleep(0.2)
        self.upstream.set(behaviour)
        self.upstream.reset()
        time.sleep(0.2)
        self.baseline = rss_mb(self.pid)
        return self.baseline

    def watch_memory(self) -> RssWatch:
        self.watch = RssWatch(self.pid, self.baseline or None)
        return self.watch


def auth(key: str = APP_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def stop_quietly(omen: Omen, timeout: float = 15.0) -> None:
    """SIGTERM and wait; kill past the timeout. No assertions: the tests assert."""
    omen.stopped = True
    process = omen.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def omen_starter(tmp_path: Path) -> Iterator[Callable[..., Omen]]:
    started: list[Omen] = []

    def start(config_text: str, **kwargs: Any) -> Omen:
        instance = start_omen(tmp_path, config_text, **kwargs)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        stop_quietly(instance)


@pytest.fixture
def upstream() -> Iterator[HostileUpstream]:
    with HostileUpstream("ok") as up:
        yield up


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


class SharedOmen:
    """One Omen and one hostile upstream for a module's tests, started afresh (new database)
    after a test that failed or disturbed it, so one broken behaviour cannot leak into the
    next test while passing tests cost no start-up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.upstream = HostileUpstream("ok").start()
        self.omen: Omen | None = None
        self.starts = 0

    def get(self) -> Hostile:
        if self.omen is None or self.omen.process.poll() is not None:
            self.restart()
        assert self.omen is not None
        self.upstream.set("ok")
        return Hostile(self.omen, self.upstream)

    def restart(self) -> None:
        self.discard()
        self.starts += 1
        where = self.root / f"omen-{self.starts}"
        where.mkdir()
        self.omen = start_omen(where, hostile_config(self.upstream.url))

    def discard(self) -> None:
        if self.omen is not None:
            stop_quietly(self.omen, timeout=5)
            self.omen = None

    def close(self) -> None:
        self.discard()
        self.upstream.stop()


@pytest.fixture(scope="module")
def shared_omen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedOmen]:
    shared = SharedOmen(tmp_path_factory.mktemp("hostile"))
    yield shared
    shared.close()


@pytest.fixture
def hostile(shared_omen: SharedOmen, request: pytest.FixtureRequest) -> Iterator[Hostile]:
    h = shared_omen.get()
    yield h
    if h.watch is not None:
        h.watch.stop()
    if request.node.stash.get(FAILED, True) or h.dirty:
        shared_omen.discard()


# --- reading answers ----------------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    headers: httpx.Headers
    body: bytes  # a plain answer, or the first 64 KiB of a stream
    events: list[str]  # SSE `data:` payloads (the last 200)
    event_names: list[str]
    elapsed: float
    stream_bytes: int = 0
    cut_by_test: bool = False  # the stream was still going at the test's deadline
    transport_error: str | None = None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-omen-request-id")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def last_data(self) -> Any:
        for data in reversed(self.events):
            if data.strip():
                if data.strip() == "[DONE]":
                    return "[DONE]"
                try:
                    return json.loads(data)
                except ValueError:
                    return data
        return None


def call(
    url: str,
    path: str = "/v1/chat/completions",
    body: Any = None,
    *,
    key: str = APP_KEY,
    stream: bool = False,
    deadline: float = 15.0,
    headers: dict[str, str] | None = None,
    hang_up_after_events: int | None = None,
) -> Outcome:
    """One request; a stream is read until it ends, ``deadline`` passes, or after
    ``hang_up_after_events`` events (then the client hangs up)."""
    if body is None:
        body = {"model": "gpt-4o", "messages": HELLO}
    if stream:
        body = {**body, "stream": True}
    sent_headers = {**auth(key), **(headers or {})}
    started = time.monotonic()
    timeout = httpx.Timeout(deadline, connect=5)
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", url + path, json=body, headers=sent_headers) as response,
        ):
            is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
            if not is_sse:
                raw = response.read()
                return Outcome(
                    response.status_code,
                    response.headers,
                    raw,
                    [],
                    [],
                    time.monotonic() - started,
                )
            events: list[str] = []
            names: list[str] = []
            head = bytearray()
            total = 0
            cut = False
            for line in response.iter_lines():
                total += len(line) + 1
                if len(head) < 65536:
                    head += line.encode() + b"\n"
                if line.startswith("data:"):
                    events.append(line[5:].strip())
                    if len(events) > 400:
                        del events[:200]
                elif line.startswith("event:"):
                    names.append(line[6:].strip())
                    if len(names) > 400:
                        del names[:200]
                if hang_up_after_events is not None and len(events) >= hang_up_after_events:
                    break
                if time.monotonic() - started > deadline:
                    cut = True
                    break
            return Outcome(
                response.status_code,
                response.headers,
                bytes(head),
                events,
                names,
                time.monotonic() - started,
                total,
                cut,
            )
    except httpx.HTTPError as exc:
        return Outcome(
            0,
            httpx.Headers(),
            b"",
            [],
            [],
            time.monotonic() - started,
            transport_error=f"{type(exc).__name__}: {exc}",
        )


# --- error shapes -------------------------------------------------------------------------


def is_openai_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and bool(error["message"])
        and isinstance(error.get("type"), str)
        and "param" in error
        and "code" in error
    )


def is_anthropic_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(body, dict)
        and body.get("type") == "error"
        and isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
        and bool(error["message"])
    )


def finite_retry_after(value: str | None) -> bool:
    if value is None:
        return True
    try:
        seconds = float(value)
    except ValueError:
        return False
    return math.isfinite(seconds) and 0 <= seconds <= 86400 and value.strip().isdigit()
