"""A misbehaving upstream, one behaviour per test, stream and not.

For each: the client gets a clear error in its own shape (never a 500 from Omen for an
upstream's fault) within the configured time + 1 s, exactly one row per request, the quota
reservation released, RSS bounded, and the upstream connection let go of in time.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.hostile.conftest import (
    APP_KEY,
    HELLO,
    MAX_STREAM_S,
    SLACK_S,
    TIMEOUT_S,
    UPSTREAM_KEY,
    Hostile,
    Outcome,
    RssWatch,
    call,
    check_reservations_released,
    finite_retry_after,
    hostile_config,
    is_anthropic_error,
    is_openai_error,
    rows_for,
    stored_ids,
)

PLAIN_BOUND = TIMEOUT_S + SLACK_S  # `timeout` is the whole non-streamed call
STREAM_BOUND = MAX_STREAM_S + SLACK_S  # a stream is bounded by max_stream_duration at most
GAVE_UP = (502, 503, 504)


@dataclass(frozen=True)
class Case:
    behaviour: str
    stream: bool
    expect: str  # "error": the request must fail; "answer": must succeed; "either": not a 500
    bound: float


CASES = {
    # controls: the harness itself, against an upstream that behaves
    "well_behaved": Case("ok", False, "answer", PLAIN_BOUND),
    "well_behaved_stream": Case("ok", True, "answer", STREAM_BOUND),
    "endless_body": Case("endless", False, "error", PLAIN_BOUND),
    "endless_sse_stream": Case("endless", True, "error", STREAM_BOUND),
    "drip_one_byte_per_half_second": Case("drip", False, "error", PLAIN_BOUND),
    "drip_one_byte_per_half_second_stream": Case("drip", True, "error", STREAM_BOUND),
    "hang_without_answering": Case("hang", False, "error", PLAIN_BOUND),
    "hang_without_answering_stream": Case("hang", True, "error", TIMEOUT_S + SLACK_S),
    "gzip_bomb": Case("gzip_bomb", False, "error", PLAIN_BOUND),
    "gzip_bomb_stream": Case("gzip_bomb", True, "error", STREAM_BOUND),
    "1xx_then_200": Case("early_hints", False, "answer", PLAIN_BOUND),
    "1xx_then_200_stream": Case("early_hints", True, "answer", STREAM_BOUND),
    "body_shorter_than_content_length": Case("short_body", False, "error", PLAIN_BOUND),
    "body_shorter_than_content_length_stream": Case("short_body", True, "error", STREAM_BOUND),
    "chunked_cut_short": Case("chunked_cut", False, "error", PLAIN_BOUND),
    "chunked_cut_short_stream": Case("chunked_cut", True, "error", STREAM_BOUND),
    "crlf_in_model": Case("crlf_model", False, "either", PLAIN_BOUND),
    "crlf_in_model_stream": Case("crlf_model", True, "either", STREAM_BOUND),
    "usage_is_a_string": Case("usage_lots", False, "either", PLAIN_BOUND),
    "usage_is_a_string_stream": Case("usage_lots", True, "either", STREAM_BOUND),
    "negative_usage": Case("negative_usage", False, "either", PLAIN_BOUND),
    "negative_usage_stream": Case("negative_usage", True, "either", STREAM_BOUND),
    "retry_after_inf": Case("retry_after_inf", False, "refused", PLAIN_BOUND),
    "retry_after_inf_stream": Case("retry_after_inf", True, "refused", STREAM_BOUND),
    "status_999": Case("status_999", False, "error", PLAIN_BOUND),
    "status_999_stream": Case("status_999", True, "error", STREAM_BOUND),
    "json_list_body": Case("json_list", False, "error", PLAIN_BOUND),
    "json_list_as_first_sse_chunk": Case("json_list", True, "error", STREAM_BOUND),
    "json_list_as_a_later_sse_chunk": Case("json_list_mid", True, "error", STREAM_BOUND),
    "stream_without_terminator": Case("no_terminator", True, "error", STREAM_BOUND),
    "header_block_that_never_ends": Case("huge_headers", False, "error", PLAIN_BOUND),
}


def check_error_answer(outcome: Outcome, stream: bool, shape: Any = is_openai_error) -> None:
    if outcome.status == 200 and stream:
        last = outcome.last_data
        assert isinstance(last, dict) and "error" in last, (
            f"the stream ended without an error event; last data: {str(last)[:300]}"
        )
        assert "[DONE]" not in outcome.events, "a failed stream must not end with [DONE]"
        return
    assert outcome.status in GAVE_UP, (
        f"expected 502/503/504 for an upstream fault, got {outcome.status}: {outcome.body[:300]!r}"
    )
    assert shape(outcome.json()), f"not the route's error shape: {outcome.body[:300]!r}"


def check_answer(outcome: Outcome, stream: bool) -> None:
    assert outcome.status == 200, (
        f"expected the answer, got {outcome.status}: {outcome.body[:300]!r}"
    )
    if stream:
        assert outcome.events and outcome.events[-1] == "[DONE]", outcome.events[-3:]
        text = "".join(outcome.events)
        assert "hostile" in text
    else:
        body = outcome.json()
        assert body["choices"][0]["message"]["content"].startswith("Hello"), body


def check_first(outcome: Outcome, case: Case, watch: RssWatch) -> None:
    """The answer itself: came, in time, and not a 500."""
    assert outcome.transport_error is None, (
        f"Omen dropped the connection ({outcome.transport_error}) after {outcome.elapsed:.1f}s; "
        f"{watch.describe()}"
    )
    assert outcome.status != 500, f"a 500 from Omen for an upstream fault: {outcome.body[:200]!r}"
    assert not outcome.cut_by_test, (
        f"the stream was still going after {outcome.elapsed:.1f}s ({outcome.stream_bytes} bytes)"
    )
    assert outcome.elapsed <= case.bound, (
        f"answered after {outcome.elapsed:.1f}s; the bound is {case.bound:.1f}s"
    )


def check_common(h: Hostile, outcome: Outcome, case: Case, started: float) -> dict[str, Any]:
    """What holds for every behaviour after the answer; returns the request's row."""
    request_id = outcome.request_id
    assert request_id, f"no x-omen-request-id on the answer (status {outcome.status})"
    rows = rows_for(h.omen.database, request_id, timeout=case.bound + 2)
    assert len(rows) == 1, f"expected one row for {request_id}, found {len(rows)}"
    row = rows[0]
    assert row["prompt_tokens"] >= 0 and row["completion_tokens"] >= 0, row
    check_reservations_released(h.omen)
    if case.behaviour == "ok":
        return row
    # The upstream's connection is let go of in time, not held (or pumped) past the bound.
    deadline = started + case.bound + SLACK_S
    while not h.upstream.fault_ends() and time.monotonic() < deadline:
        time.sleep(0.05)
    ends = h.upstream.fault_ends()
    assert ends, f"the upstream connection was still held {case.bound + SLACK_S:.1f}s later"
    assert ends[0] - started <= case.bound + SLACK_S, (
        f"the upstream connection was held for {ends[0] - started:.1f}s"
    )
    return row


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_a_misbehaving_upstream_is_bounded_and_recorded(hostile: Hostile, name: str) -> None:
    case = CASES[name]
    h = hostile
    h.warm_up()
    watch = h.watch_memory()
    h.upstream.set(case.behaviour)
    started = time.monotonic()
    outcome = call(h.omen.url, stream=case.stream, deadline=case.bound + 2)
    time.sleep(0.3)  # memory after, too
    try:
        check_first(outcome, case, watch)
        if case.expect == "error":
            check_error_answer(outcome, case.stream)
        elif case.expect == "answer":
            check_answer(outcome, case.stream)
        elif case.expect == "refused":
            assert outcome.status in (429, *GAVE_UP), (outcome.status, outcome.body[:300])
            assert is_openai_error(outcome.json()), outcome.body[:300]
            assert finite_retry_after(outcome.headers.get("retry-after")), (
                f"retry-after passed on as {outcome.headers.get('retry-after')!r}"
            )
        else:  # either: a sanitised answer or a clear error, never a 500
            if outcome.status != 200:
                check_error_answer(outcome, case.stream)
        for name_, value in outcome.headers.multi_items():
            assert "\r" not in value and "\n" not in value, (name_, value)
        assert "x-injected" not in outcome.headers, "CR/LF from the upstream became a header"
        row = check_common(h, outcome, case, started)
        if case.expect == "error":
            assert row["error"], f"the row does not say it failed: {row}"
            assert row["status"] != 200 or row["level"] == "error", row
        if name == "stream_without_terminator":
            assert "truncat" in (row["error"] or "").lower(), f"not recorded as truncated: {row}"
    finally:
        watch.stop()
    watch.check()


@pytest.mark.timeout(60)
def test_endless_sse_after_the_client_hung_up_is_stopped_and_recorded(hostile: Hostile) -> None:
    h = hostile
    h.warm_up()
    watch = h.watch_memory()
    h.upstream.set("endless")
    started = time.monotonic()
    outcome = call(h.omen.url, stream=True, hang_up_after_events=3, deadline=10)
    assert outcome.status == 200 and outcome.request_id
    # The pump obeys max_stream_duration after the hang-up: the upstream is let go of.
    deadline = started + STREAM_BOUND + 3
    while not h.upstream.fault_ends() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    watch.stop()
    ends = h.upstream.fault_ends()
    assert ends, (
        f"the upstream was still pumped {deadline - started:.0f}s after a hang-up "
        f"({watch.describe()})"
    )
    assert ends[0] - started <= STREAM_BOUND, f"pumped for {ends[0] - started:.1f}s after a hang-up"
    rows = rows_for(h.omen.database, outcome.request_id, timeout=3)
    assert len(rows) == 1, f"expected one row, found {len(rows)}"
    assert rows[0]["client_closed"] == 1, rows[0]
    check_reservations_released(h.omen)
    watch.check()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "route, shape",
    [("/v1/messages", is_anthropic_error), ("/v1/responses", is_openai_error)],
    ids=["messages", "responses"],
)
def test_a_stream_without_terminator_on_other_routes_ends_with_an_error_event(
    hostile: Hostile, route: str, shape: Any
) -> None:
    h = hostile
    h.warm_up()
    h.upstream.set("no_terminator")
    if route == "/v1/messages":
        body = {"model": "gpt-4o", "max_tokens": 50, "messages": HELLO}
    else:
        body = {"model": "gpt-4o", "input": "Say hello."}
    outcome = call(h.omen.url, route, body, stream=True, deadline=STREAM_BOUND + 3)
    assert outcome.transport_error is None and outcome.status != 500
    assert outcome.elapsed <= STREAM_BOUND
    if outcome.status == 200:
        assert outcome.event_names and outcome.event_names[-1] in ("error", "response.failed"), (
            f"the stream ended with {outcome.event_names[-3:]}, not an error event"
        )
        assert "message_stop" not in outcome.event_names
        assert "response.completed" not in outcome.event_names
    else:
        assert outcome.status in GAVE_UP and shape(outcome.json()), outcome.body[:300]
    rows = rows_for(h.omen.database, outcome.request_id or "", timeout=3)
    assert len(rows) == 1 and rows[0]["error"], rows
    check_reservations_released(h.omen)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "behaviour, stream",
    [("echo_key", False), ("echo_key", True), ("echo_key_401", False), ("echo_key_500", False)],
    ids=["400", "400-stream", "401", "500"],
)
def test_an_upstream_error_echoing_omens_upstream_key_never_leaks_it(
    hostile: Hostile, behaviour: str, stream: bool
) -> None:
    h = hostile
    h.warm_up(2)
    h.upstream.set(behaviour)
    outcome = call(h.omen.url, stream=stream, deadline=PLAIN_BOUND + 3)
    assert outcome.status not in (0, 200, 500), (outcome.status, outcome.body[:300])
    seen = h.upstream.seen()
    assert any(UPSTREAM_KEY in str(s.headers) for s in seen), "the harness: Omen sent no key?"
    shown = outcome.body.decode("latin-1") + str(outcome.headers) + "".join(outcome.events)
    assert UPSTREAM_KEY not in shown, "the upstream key reached the client"
    assert outcome.request_id
    assert len(rows_for(h.omen.database, outcome.request_id)) == 1
    providers = httpx.get(f"{h.omen.url}/providers", timeout=5).text
    assert UPSTREAM_KEY not in providers, "the upstream key is on the unauthenticated /providers"
    assert "You sent" not in providers, "/providers shows upstream error text without a key"
    check_reservations_released(h.omen)
    dump = b"".join(p.read_bytes() for p in h.omen.database.parent.glob("omen.db*"))
    assert UPSTREAM_KEY.encode() not in dump, "the upstream key reached the store"
    assert UPSTREAM_KEY not in h.omen.log.read_text(errors="replace"), (
        "the upstream key reached the log"
    )


async def concurrent_posts(port: int, n: int, limit: float) -> list[tuple[int, float, str]]:
    """n connections opened first, then n requests sent at once; (status, seconds, id) each
    (status 0: no answer within ``limit``)."""
    data = json.dumps({"model": "gpt-4o", "messages": HELLO}).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {APP_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data
    connections = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(n))
    )
    go = asyncio.Event()

    async def one(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[int, float, str]:
        await go.wait()
        started = time.monotonic()
        writer.write(request)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limit)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return 0, time.monotonic() - started, ""
        finally:
            elapsed = time.monotonic() - started
            writer.close()
        request_id = ""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"x-omen-request-id:"):
                request_id = line.split(b":", 1)[1].strip().decode()
        return int(head[9:12]), elapsed, request_id

    tasks = [asyncio.create_task(one(r, w)) for r, w in connections]
    await asyncio.sleep(0.1)
    go.set()
    return await asyncio.gather(*tasks)


@pytest.mark.timeout(90)
def test_many_concurrent_requests_to_a_hanging_upstream_are_answered_at_the_timeout(
    omen_starter: Any, upstream: Any
) -> None:
    """The issue: 1,000 concurrent requests were answered at up to 10.9 s with timeout=3s.
    Here 500 at once (the load generator shares the 2 cores: at 1,000 its own lag
    reaches the bound), each answered at the timeout (-0.5 s, +1 s)."""
    omen = omen_starter(hostile_config(upstream.url))
    h = Hostile(omen, upstream)
    h.warm_up(2)
    watch = h.watch_memory()
    upstream.set("hang")
    n = 500
    results = asyncio.run(concurrent_posts(omen.port, n, TIMEOUT_S + 8))
    watch.stop()
    statuses: dict[int, int] = {}
    for status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    times = sorted(elapsed for _, elapsed, _ in results)
    summary = (
        f"{n} at once: statuses {statuses}; answered between {times[0]:.2f}s and "
        f"{times[-1]:.2f}s (median {times[n // 2]:.2f}s); {watch.describe()}"
    )
    print(summary)
    assert set(statuses) <= set(GAVE_UP), summary
    assert times[-1] <= TIMEOUT_S + SLACK_S, summary
    assert times[0] >= TIMEOUT_S - 0.5, summary
    ids = [rid for _, _, rid in results if rid]
    assert len(ids) == n, f"{n - len(ids)} answers without a request id; {summary}"
    deadline = time.monotonic() + 5
    missing = set(ids)
    while missing and time.monotonic() < deadline:
        missing = set(ids) - stored_ids(omen.database)
        time.sleep(0.2)
    assert not missing, f"{len(missing)} of {n} requests left no row; {summary}"
    check_reservations_released(omen)
    watch.check()
