"""Misbehaving clients: one that reads a fast stream 1 byte a second, one whose headers never
finish, one that hangs up before the answer. Omen's memory stays bounded (the stream pump's
buffer applies backpressure to the upstream), slow headers are dropped after a few seconds,
and every request still leaves its row and frees its reservation.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.hostile.conftest import (
    APP_KEY,
    HELLO,
    SLACK_S,
    TIMEOUT_S,
    Hostile,
    check_reservations_released,
    db_rows,
    hostile_config,
    rows_for,
)
from tests.hostile.upstream import HostileUpstream
from tests.integration.conftest import Omen

SLOW_READ_S = 6.0
SLOW_MAX_STREAM_S = 8.0
HEADER_DROP_S = 8.0  # "client headers that never finish are dropped after a few seconds"


def raw_request(port: int, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {APP_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


@pytest.mark.timeout(60)
def test_a_client_reading_one_byte_a_second_keeps_omens_memory_bounded(
    omen_starter: Callable[..., Omen], upstream: HostileUpstream
) -> None:
    omen = omen_starter(
        hostile_config(upstream.url, idle=SLOW_MAX_STREAM_S, max_stream=SLOW_MAX_STREAM_S)
    )
    h = Hostile(omen, upstream)
    h.warm_up()
    watch = h.watch_memory()
    upstream.set("endless")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", omen.port))
    started = time.monotonic()
    read = b""
    try:
        sock.sendall(raw_request(omen.port, {"model": "gpt-4o", "messages": HELLO, "stream": True}))
        while b"\r\n\r\n" not in read:  # the head at once, then the body 1 byte a second
            chunk = sock.recv(1)
            if not chunk:
                break
            read += chunk
        while time.monotonic() - started < SLOW_READ_S and not watch.killed:
            try:
                byte = sock.recv(1)
            except TimeoutError:
                break
            if not byte:
                break
            read += byte
            time.sleep(1.0)
    finally:
        sock.close()
    peak_while_reading = watch.peak
    sent_while_reading = upstream.tally.bytes_sent
    request_id = ""
    for line in read.split(b"\r\n"):
        if line.lower().startswith(b"x-omen-request-id:"):
            request_id = line.split(b":", 1)[1].strip().decode()
    # After the hang-up: the pump stops within max_stream_duration and the row is written.
    rows = rows_for(omen.database, request_id, timeout=SLOW_MAX_STREAM_S + 2) if request_id else []
    watch.stop()
    print(
        f"slow client: {len(read)} bytes read in {SLOW_READ_S:.0f}s; RSS peak while reading "
        f"{peak_while_reading:.0f} MB; {watch.describe()}; the upstream sent "
        f"{sent_while_reading / 1e6:.0f} MB meanwhile, "
        f"{upstream.tally.bytes_sent / 1e6:.0f} MB in all"
    )
    watch.check()
    assert read.startswith(b"HTTP/1.1 200"), read[:200]
    assert len(rows) == 1, (
        f"the slow client's request left {len(rows)} rows {SLOW_MAX_STREAM_S + 2:.0f}s after it "
        f"hung up (the upstream has sent {upstream.tally.bytes_sent / 1e6:.0f} MB: the pump "
        "is still reading it)"
    )
    check_reservations_released(omen)


@pytest.mark.timeout(60)
def test_client_headers_that_never_finish_are_dropped_after_a_few_seconds(
    hostile: Hostile,
) -> None:
    h = hostile
    h.warm_up(1)
    sock = socket.socket()
    sock.settimeout(1.5)
    sock.connect(("127.0.0.1", h.omen.port))
    started = time.monotonic()
    dropped_after = None
    try:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        checked_others = False
        while time.monotonic() - started < HEADER_DROP_S + 2:
            try:
                sock.sendall(b"a")
                if sock.recv(1024) == b"":
                    dropped_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            except OSError:
                dropped_after = time.monotonic() - started
                break
            if not checked_others:  # meanwhile, other clients are served at once
                began = time.monotonic()
                response = httpx.post(
                    f"{h.omen.url}/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": HELLO},
                    headers={"authorization": f"Bearer {APP_KEY}"},
                    timeout=5,
                )
                assert response.status_code == 200
                assert time.monotonic() - began < 2
                checked_others = True
    finally:
        sock.close()
    assert dropped_after is not None, (
        f"a client sending one header byte at a time was still connected after "
        f"{HEADER_DROP_S + 2:.0f}s"
    )
    assert dropped_after <= HEADER_DROP_S, f"dropped only after {dropped_after:.1f}s"


@pytest.mark.timeout(60)
def test_a_client_hanging_up_before_the_answer_leaves_its_row_and_frees_its_reservation(
    hostile: Hostile,
) -> None:
    h = hostile
    h.warm_up()
    h.upstream.set("hang")
    before = {r["id"] for r in db_rows(h.omen.database)}
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{h.omen.url}/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HELLO},
            headers={"authorization": f"Bearer {APP_KEY}"},
            timeout=httpx.Timeout(0.4, connect=2),
        )
    # The upstream call is abandoned within the timeout (not left to hang), and recorded.
    deadline = started + TIMEOUT_S + SLACK_S + 1
    while not h.upstream.fault_ends() and time.monotonic() < deadline:
        time.sleep(0.05)
    ends = h.upstream.fault_ends()
    assert ends and ends[0] - started <= TIMEOUT_S + SLACK_S, (
        "the upstream call of a client that hung up was held past the timeout"
    )
    new: list[dict[str, Any]] = []
    while time.monotonic() < deadline + 2 and not new:
        new = [r for r in db_rows(h.omen.database) if r["id"] not in before]
        time.sleep(0.1)
    assert len(new) == 1, f"the hung-up request left {len(new)} rows"
    assert new[0]["status"] != 200 and new[0]["error"], new[0]
    check_reservations_released(h.omen)
