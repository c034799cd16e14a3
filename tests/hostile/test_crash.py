"""kill -9 and SIGTERM under load: how many acknowledged requests are missing from the store.

A raw-socket load generator keeps a few hundred requests a second going against a fast fake
upstream (its own process), remembers the `x-omen-request-id` of every 200 it has fully read,
kills or stops Omen mid-load, starts it again on the same database and counts the
acknowledged requests without a row. SIGTERM: none lost. kill -9: at most one flush interval
of them (rate × writer_flush_interval) plus a little slack for the batch being written.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.hostile.conftest import (
    APP_KEY,
    RssWatch,
    free_port,
    hostile_config,
    stop_quietly,
    stored_ids,
)
from tests.integration.conftest import ROOT, Omen, start_omen

FLUSH_S = 0.1  # the writer's default flush interval
CONNECTIONS = 32
LOAD_S = 4.0
STOP_AT_S = 3.0  # the signal goes this far into the load
SLACK = 25  # the batch being written at the moment of the kill


@dataclass
class Load:
    acked: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, request id)
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    signalled_at: float = 0.0
    started_at: float = 0.0

    def rate_before_signal(self) -> float:
        """Acknowledged requests per second over the last second before the signal."""
        window = [t for t, _ in self.acked if self.signalled_at - 1.0 <= t < self.signalled_at]
        return float(len(window))

    def ids(self) -> set[str]:
        return {rid for _, rid in self.acked}


def request_bytes(port: int) -> bytes:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}]}'
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {APP_KEY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def one_connection(port: int, request: bytes, stop_at: float, load: Load) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        load.failed += 1
        return
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            status = int(head[9:12])
            length, request_id = 0, ""
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-omen-request-id":
                    request_id = value.strip().decode()
            await asyncio.wait_for(reader.readexactly(length), 5)
            load.statuses[status] = load.statuses.get(status, 0) + 1
            if status == 200 and request_id:
                load.acked.append((time.monotonic(), request_id))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        load.failed += 1
    finally:
        writer.close()


async def run_load(port: int, pid: int, sig: int) -> Load:
    load = Load(started_at=time.monotonic())
    request = request_bytes(port)
    stop_at = load.started_at + LOAD_S

    def send_signal() -> None:
        load.signalled_at = time.monotonic()
        os.kill(pid, sig)

    asyncio.get_running_loop().call_later(STOP_AT_S, send_signal)
    await asyncio.gather(
        *(one_connection(port, request, stop_at, load) for _ in range(CONNECTIONS))
    )
    return load


@pytest.fixture
def fast_upstream() -> Iterator[str]:
    """The hostile upstream in its well-behaved mode, as a process of its own (uvloop)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile.upstream", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/v1/models", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.kill()
        process.wait(5)


def loaded_omen(tmp_path: Path, upstream: str) -> Omen:
    return start_omen(
        tmp_path,
        hostile_config(upstream, timeout=5),
        server_extra=f'writer_flush_interval = "{int(FLUSH_S * 1000)}ms"',
    )


def run_and_signal(tmp_path: Path, upstream: str, sig: int) -> tuple[Load, set[str], str]:
    omen = loaded_omen(tmp_path, upstream)
    watch = RssWatch(omen.process.pid)
    try:
        load = asyncio.run(run_load(omen.port, omen.process.pid, sig))
        try:
            omen.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            omen.process.kill()
            omen.process.wait(5)
            raise AssertionError(f"Omen did not exit within 20 s of signal {sig}") from None
    finally:
        watch.stop()
        omen.stopped = True
    log = omen.log.read_text(errors="replace")
    # Start again on the same database: it must open, and it is what a restart would see.
    again = start_omen(tmp_path, hostile_config(upstream, timeout=5))
    try:
        stored = stored_ids(omen.database)
    finally:
        stop_quietly(again)
    figures = (
        f"{len(load.acked)} acknowledged in {LOAD_S:.0f}s ({load.rate_before_signal():.0f} req/s "
        f"before the signal), statuses {load.statuses}, {load.failed} connections cut; "
        f"{watch.describe()}"
    )
    return load, stored, figures + "\n" + log[-600:]


@pytest.mark.timeout(90)
def test_sigterm_under_load_loses_no_acknowledged_request(
    tmp_path: Path, fast_upstream: str
) -> None:
    load, stored, figures = run_and_signal(tmp_path, fast_upstream, signal.SIGTERM)
    lost = load.ids() - stored
    print(f"SIGTERM: {len(lost)} lost; {figures.splitlines()[0]}")
    assert load.rate_before_signal() >= 50, f"the load did not get going: {figures}"
    assert not lost, f"{len(lost)} acknowledged requests lost to SIGTERM; {figures}"


@pytest.mark.timeout(90)
def test_kill_9_under_load_loses_at_most_one_flush_interval(
    tmp_path: Path, fast_upstream: str
) -> None:
    load, stored, figures = run_and_signal(tmp_path, fast_upstream, signal.SIGKILL)
    lost = load.ids() - stored
    rate = load.rate_before_signal()
    bound = rate * FLUSH_S + SLACK
    print(f"kill -9: {len(lost)} lost (bound {bound:.0f}); {figures.splitlines()[0]}")
    assert rate >= 50, f"the load did not get going: {figures}"
    assert len(lost) <= bound, (
        f"{len(lost)} acknowledged requests lost to kill -9 at {rate:.0f} req/s; one flush "
        f"interval ({FLUSH_S}s) is {rate * FLUSH_S:.0f}, the bound {bound:.0f}; {figures}"
    )
