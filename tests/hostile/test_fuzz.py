"""A seeded fuzzer over every route: type-confused, deeply nested, huge-number bodies.

Bad input is the client's fault: never a 5xx, an error in the route's own shape (Anthropic's
on /v1/messages), and every authenticated request to a proxied route leaves exactly one row.
Plain `random` with a fixed seed per route, so a failure replays exactly.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.hostile.conftest import (
    ADMIN_KEY,
    APP_KEY,
    HELLO,
    Hostile,
    check_reservations_released,
    count_rows,
    db_rows,
    is_anthropic_error,
    is_openai_error,
    rows_for,
    wait_count,
)

PER_ROUTE = 300
DEEP = 300

# --- values ----------------------------------------------------------------------------------

SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    7,
    0.5,
    -0.0,
    1e308,
    -1e308,
    1e-308,
    2**31,
    2**53 + 1,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**30,
    "",
    "x",
    "auto",
    "gpt-4o",
    "user",
    "text",
    "\x00",
    "\u202e\u0000\ufeff",
    "é" * 3,
    "\U0001f600",
    "a" * 5000,
    "1e308",
    "-1",
    "NaN",
    "null",
    "{}",
    "[]",
]


def deep_list(depth: int = DEEP) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int = DEEP) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def weird(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.55 or depth > 2:
        return rng.choice(SCALARS)
    if roll < 0.65:
        return [weird(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.75:
        keys = ["type", "text", "role", "content", "a", "", "url", "id", "name"]
        return {rng.choice(keys): weird(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if roll < 0.85:
        return deep_list(rng.choice([DEEP, 50, 1000]))
    if roll < 0.92:
        return deep_dict(rng.choice([DEEP, 50]))
    return [[rng.randint(-(2**40), 2**40) for _ in range(rng.randint(0, 4))]]


def maybe(rng: random.Random, good: Any, p: float = 0.5) -> Any:
    return good if rng.random() < p else weird(rng)


# --- bodies per route ----------------------------------------------------------------------


def metadata(rng: random.Random) -> Any:
    if rng.random() < 0.3:
        return weird(rng)
    keys = ["container_id", "intent", "priority", "prefer_local", "budget_remaining", "user_id"]
    good = {
        "container_id": "app",
        "intent": "code",
        "priority": "low-cost",
        "prefer_local": True,
        "budget_remaining": 1.0,
        "user_id": "u1",
    }
    return {k: maybe(rng, good[k], 0.3) for k in rng.sample(keys, rng.randint(1, len(keys)))}


def chat_part(rng: random.Random) -> Any:
    choice = rng.randrange(7)
    if choice == 0:
        return {"type": "text", "text": maybe(rng, "hi", 0.3)}
    if choice == 1:
        return {"type": "image_url", "image_url": maybe(rng, {"url": weird(rng)}, 0.5)}
    if choice == 2:
        return {"type": maybe(rng, "text", 0.2), "text": "hi"}
    if choice == 3:
        return {"type": "input_audio", "input_audio": weird(rng)}
    if choice == 4:
        return {"type": "file", "file": weird(rng)}
    return weird(rng)


def chat_message(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return weird(rng)
    message: dict[str, Any] = {
        "role": maybe(rng, rng.choice(["user", "assistant", "system", "tool", "developer"]), 0.5),
        "content": rng.choice(
            [
                "hi",
                weird(rng),
                [chat_part(rng) for _ in range(rng.randint(0, 3))],
            ]
        ),
    }
    if rng.random() < 0.2:
        message["tool_calls"] = maybe(
            rng,
            [
                {
                    "id": weird(rng),
                    "type": "function",
                    "function": {"name": "f", "arguments": weird(rng)},
                }
            ],
            0.2,
        )
    if rng.random() < 0.1:
        message["tool_call_id"] = weird(rng)
    if rng.random() < 0.1:
        message["name"] = weird(rng)
    return message


CHAT_FIELDS = {
    "max_tokens": 16,
    "max_completion_tokens": 16,
    "temperature": 0.5,
    "top_p": 1,
    "n": 1,
    "stream": False,
    "stream_options": {"include_usage": True},
    "stop": ["x"],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "auto",
    "response_format": {"type": "json_object"},
    "logit_bias": {"50256": -100},
    "seed": 1,
    "user": "u",
    "reasoning_effort": "low",
    "parallel_tool_calls": True,
    "presence_penalty": 0,
}


def chat_body(rng: random.Random) -> Any:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": HELLO}
    if rng.random() < 0.5:
        body["messages"] = [chat_message(rng) for _ in range(rng.randint(0, 3))]
    for name in rng.sample(list(CHAT_FIELDS), rng.randint(0, 4)):
        body[name] = maybe(rng, CHAT_FIELDS[name], 0.2)
    if rng.random() < 0.3:
        body["metadata"] = metadata(rng)
    if rng.random() < 0.1:
        body["model"] = weird(rng)
    if rng.random() < 0.05:
        del body["messages"]
    return body


def anthropic_block(rng: random.Random) -> Any:
    choice = rng.randrange(8)
    if choice == 0:
        return {"type": "text", "text": maybe(rng, "hi", 0.2)}
    if choice == 1:
        return {"type": "image", "source": weird(rng)}
    if choice == 2:
        return {"type": "tool_use", "id": weird(rng), "name": "f", "input": weird(rng)}
    if choice == 3:
        return {"type": "tool_result", "tool_use_id": "t1", "content": weird(rng)}
    if choice == 4:
        return {"type": "thinking", "thinking": weird(rng), "signature": weird(rng)}
    if choice == 5:
        return {"type": "document", "source": weird(rng)}
    if choice == 6:
        return {"type": weird(rng)}
    return weird(rng)


def anthropic_message(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return weird(rng)
    return {
        "role": maybe(rng, rng.choice(["user", "assistant"]), 0.5),
        "content": rng.choice(["hi", weird(rng), [anthropic_block(rng) for _ in range(3)]]),
    }


MESSAGES_FIELDS = {
    "system": "be brief",
    "temperature": 0.5,
    "top_k": 5,
    "top_p": 1,
    "stop_sequences": ["x"],
    "stream": False,
    "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "u"},
    "service_tier": "auto",
}


def messages_body(rng: random.Random, *, count: bool = False) -> Any:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": HELLO}
    if not count:
        body["max_tokens"] = maybe(rng, 32, 0.7)
    if rng.random() < 0.6:
        body["messages"] = [anthropic_message(rng) for _ in range(rng.randint(0, 3))]
    for name in rng.sample(list(MESSAGES_FIELDS), rng.randint(0, 4)):
        value = MESSAGES_FIELDS[name]
        if name == "thinking" and rng.random() < 0.5:
            value = {"type": "enabled", "budget_tokens": rng.choice([1e308, -1, 2**64, "x"])}
        elif name == "system" and rng.random() < 0.5:
            value = [anthropic_block(rng)]
        body[name] = maybe(rng, value, 0.3)
    if rng.random() < 0.3:
        body["metadata"] = metadata(rng)
    if rng.random() < 0.1:
        body["model"] = weird(rng)
    return body


def responses_item(rng: random.Random) -> Any:
    choice = rng.randrange(6)
    if choice == 0:
        return {"role": maybe(rng, "user", 0.5), "content": maybe(rng, "hi", 0.5)}
    if choice == 1:
        return {
            "type": "message",
            "role": "user",
            "content": [{"type": maybe(rng, "input_text", 0.5), "text": maybe(rng, "hi", 0.5)}],
        }
    if choice == 2:
        return {"type": "function_call_output", "call_id": weird(rng), "output": weird(rng)}
    if choice == 3:
        return {
            "type": "function_call",
            "call_id": "c",
            "name": weird(rng),
            "arguments": weird(rng),
        }
    if choice == 4:
        return {"type": "reasoning", "summary": weird(rng), "encrypted_content": weird(rng)}
    return weird(rng)


RESPONSES_FIELDS = {
    "instructions": "be brief",
    "max_output_tokens": 32,
    "temperature": 0.5,
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "tool_choice": "auto",
    "reasoning": {"effort": "low"},
    "text": {"format": {"type": "text"}},
    "stream": False,
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "previous_response_id": "resp_1",
    "truncation": "auto",
    "parallel_tool_calls": True,
    "prompt_cache_key": "k",
}


def responses_body(rng: random.Random) -> Any:
    body: dict[str, Any] = {"model": "gpt-4o", "input": "Say hello."}
    if rng.random() < 0.6:
        body["input"] = rng.choice(
            [weird(rng), [responses_item(rng) for _ in range(rng.randint(0, 3))]]
        )
    for name in rng.sample(list(RESPONSES_FIELDS), rng.randint(0, 4)):
        body[name] = maybe(rng, RESPONSES_FIELDS[name], 0.3)
    if rng.random() < 0.3:
        body["metadata"] = metadata(rng)
    if rng.random() < 0.1:
        body["model"] = weird(rng)
    return body


def embeddings_body(rng: random.Random) -> Any:
    body: dict[str, Any] = {"model": "text-embedding-3-small", "input": "hello"}
    body["input"] = rng.choice(
        [
            "hello",
            ["a", "b"],
            [1, 2, 3],
            [[1, 2], [3]],
            [-1],
            [2**64],
            [1e308],
            [],
            [[]],
            [""],
            weird(rng),
        ]
    )
    for name, good in (("encoding_format", "float"), ("dimensions", 4), ("user", "u")):
        if rng.random() < 0.3:
            body[name] = maybe(rng, good, 0.3)
    if rng.random() < 0.4:
        body["metadata"] = rng.choice([True, False, [], "x", 5, deep_dict(), metadata(rng)])
    if rng.random() < 0.1:
        body["model"] = weird(rng)
    return body


# --- raw bodies that are not a JSON object ----------------------------------------------

RAW: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"5",
    b'"x"',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"model": NaN, "messages": []}',
    b'{"model": "gpt-4o", "max_tokens": Infinity, "messages": []}',
    b'{"model": "gpt-4o", "max_tokens": 1e999, "messages": [{"role":"user","content":"hi"}]}',
    b'{"model": "gpt-4o", "max_tokens": ' + b"9" * 5000 + b', "messages": []}',
    b'{"model": "gpt-4o", "model": [], "messages": []}',
    b'{"model": "\xff\xfe", "messages": []}',
    b'{"model": "\\ud800", "messages": [{"role":"user","content":"\\udfff"}]}',
    b"\xef\xbb\xbf{}",
    b"\x00" * 100,
]


def encode(rng: random.Random, body: Any) -> bytes:
    if rng.random() < 0.08:
        return rng.choice(RAW)
    try:
        return json.dumps(body).encode()
    except (ValueError, RecursionError):
        return b"[]"


# --- running and checking --------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    authenticated: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    bad_shapes: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    no_id: int = 0

    def summary(self, route: str) -> str:
        fives = sum(n for s, n in self.statuses.items() if s >= 500)
        return (
            f"{route}: {self.sent} requests, statuses {dict(sorted(self.statuses.items()))}, "
            f"{fives} 5xx, {len(self.bad_shapes)} not in the route's error shape, "
            f"{self.no_id} without x-omen-request-id"
        )


def fire(
    client: httpx.Client,
    method: str,
    path: str,
    content: bytes,
    shape: Callable[[Any], bool],
    tally: Tally,
    *,
    key: str | None = APP_KEY,
    headers: dict[str, str] | None = None,
) -> httpx.Response | None:
    sent: dict[str, Any] = {"content-type": "application/json", **(headers or {})}
    sent = {k: v.encode() if isinstance(v, str) else v for k, v in sent.items()}
    if key:
        sent["authorization"] = f"Bearer {key}".encode()
    try:
        response = client.request(method, path, content=content, headers=sent)
    except httpx.LocalProtocolError:
        return None  # a header value the HTTP client itself will not send: nothing was sent
    except httpx.HTTPError as exc:
        tally.sent += 1
        tally.authenticated += bool(key)
        tally.statuses[0] = tally.statuses.get(0, 0) + 1
        tally.server_errors.append(f"{type(exc).__name__} for {content[:160]!r}")
        return None
    tally.sent += 1
    tally.authenticated += bool(key)
    status = response.status_code
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    if status >= 500:
        tally.server_errors.append(f"{status} {response.text[:160]!r} for {content[:200]!r}")
    if status >= 400:
        try:
            ok = shape(response.json())
        except ValueError:
            ok = False
        if not ok:
            tally.bad_shapes.append(f"{status} {response.text[:120]!r} for {content[:120]!r}")
    request_id = response.headers.get("x-omen-request-id")
    if request_id:
        tally.ids.append(request_id)
    else:
        tally.no_id += 1
    return response


def report(tally: Tally, route: str) -> str:
    lines = [tally.summary(route)]
    lines += [f"  5xx: {e}" for e in tally.server_errors[:4]]
    lines += [f"  shape: {e}" for e in tally.bad_shapes[:3]]
    return "\n".join(lines)


ROUTES: dict[str, tuple[Callable[[random.Random], Any], Callable[[Any], bool]]] = {
    "/v1/chat/completions": (chat_body, is_openai_error),
    "/v1/messages": (messages_body, is_anthropic_error),
    "/v1/responses": (responses_body, is_openai_error),
    "/v1/embeddings": (embeddings_body, is_openai_error),
    "/v1/messages/count_tokens": (lambda rng: messages_body(rng, count=True), is_anthropic_error),
    "/v1/responses/input_tokens": (responses_body, is_openai_error),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("route", list(ROUTES))
def test_fuzzed_bodies_are_never_a_5xx_and_each_leaves_one_row(
    hostile: Hostile, route: str
) -> None:
    h = hostile
    h.warm_up()
    watch = h.watch_memory()
    generate, shape = ROUTES[route]
    rng = random.Random(f"omen-fuzz-{route}")
    tally = Tally()
    before = count_rows(h.omen.database)
    with httpx.Client(base_url=h.omen.url, timeout=15) as client:
        for _ in range(PER_ROUTE):
            fire(client, "POST", route, encode(rng, generate(rng)), shape, tally)
    stored = wait_count(h.omen.database, before + tally.authenticated, timeout=5)
    time.sleep(0.3)
    stored = count_rows(h.omen.database)
    watch.stop()
    summary = report(tally, route)
    print(summary, f"rows {stored - before}/{tally.authenticated}", watch.describe())
    assert not tally.server_errors, summary
    assert not tally.bad_shapes, summary
    assert tally.no_id == 0, f"answers without x-omen-request-id\n{summary}"
    assert stored - before == tally.authenticated, (
        f"{tally.authenticated} authenticated requests left {stored - before} rows\n{summary}"
    )
    dupes = db_rows(h.omen.database, "GROUP BY id HAVING count(*) > 1")
    assert not dupes, f"{len(dupes)} request ids with more than one row"
    check_reservations_released(h.omen)
    watch.check()


@pytest.mark.timeout(120)
def test_fuzzed_headers_and_keys_are_never_a_5xx(hostile: Hostile) -> None:
    h = hostile
    h.warm_up()
    rng = random.Random("omen-fuzz-headers")
    tally = Tally()
    junk = ["", "x", "a" * 4000, "00-zz-zz-01", "\u00e9", "Bearer", "Bearer ", "sk-" + "0" * 200]
    body = json.dumps({"model": "gpt-4o", "messages": HELLO}).encode()
    with httpx.Client(base_url=h.omen.url, timeout=15) as client:
        for i in range(PER_ROUTE // 2):
            headers = {
                name: rng.choice(junk)
                for name in rng.sample(
                    [
                        "traceparent",
                        "tracestate",
                        "anthropic-version",
                        "anthropic-beta",
                        "x-omen-session",
                        "x-claude-code-session-id",
                        "session-id",
                        "content-type",
                        "accept",
                        "accept-encoding",
                    ],
                    rng.randint(1, 4),
                )
            }
            path = rng.choice(["/v1/chat/completions", "/v1/messages"])
            shape = is_anthropic_error if path == "/v1/messages" else is_openai_error
            if i % 3 == 0:  # a broken key: a 401 in the route's shape, no row needed
                key = rng.choice(["", "x", "sk-" + "0" * 500, APP_KEY + "x", APP_KEY[:-1]])
                headers["authorization"] = rng.choice(["", "Basic x", "Bearer " + key, key])
                fire(client, "POST", path, body, shape, tally, key=None, headers=headers)
            else:
                fire(client, "POST", path, body, shape, tally, headers=headers)
    summary = report(tally, "headers")
    print(summary)
    assert not tally.server_errors, summary
    assert not tally.bad_shapes, summary


BUDGET_KEYS = ["daily", "weekly", "monthly", "hourly", "", "__proto__"]


@pytest.mark.timeout(120)
def test_fuzzed_admin_inputs_are_bounded_and_never_a_5xx(hostile: Hostile) -> None:
    """Budgets, drains and replays with weird values; afterwards the container still serves
    (the issue: a `1e308` budget made every request of that container a 500)."""
    h = hostile
    h.dirty = True  # budgets and drains it sets must not reach the next test
    h.warm_up()
    rng = random.Random("omen-fuzz-admin")
    tally = Tally()
    real_id = h.omen and db_rows(h.omen.database, "LIMIT 1")
    known = [r["id"] for r in real_id] if real_id else []
    with httpx.Client(base_url=h.omen.url, timeout=15) as client:
        for i in range(PER_ROUTE):
            kind = i % 3
            if kind == 0:
                body = {rng.choice(BUDGET_KEYS): weird(rng) for _ in range(rng.randint(1, 3))}
                if rng.random() < 0.4:
                    body = {"daily": rng.choice([1e308, -1, 1e10, "1e308", "inf", "-5", 0])}
                container = rng.choice(["app", "app", "nope", "%2e%2e", "a" * 300])
                fire(
                    client,
                    "PUT",
                    f"/admin/containers/{container}/budget",
                    encode(rng, body),
                    is_openai_error,
                    tally,
                    key=ADMIN_KEY,
                )
            elif kind == 1:
                body = {
                    "provider": rng.choice(["openai", weird(rng)]),
                    "endpoint": weird(rng),
                    "reason": weird(rng),
                }
                path = rng.choice(["/admin/endpoints/drain", "/admin/endpoints/undrain"])
                fire(client, "POST", path, encode(rng, body), is_openai_error, tally, key=ADMIN_KEY)
            else:
                target = rng.choice([*known, "req_nope", "%00", "x" * 500])
                body = {
                    k: weird(rng)
                    for k in rng.sample(["mode", "provider", "model"], rng.randint(0, 3))
                }
                fire(
                    client,
                    "POST",
                    f"/admin/requests/{target}/replay",
                    encode(rng, body),
                    is_openai_error,
                    tally,
                    key=ADMIN_KEY,
                )
        # The container still serves and the admin view still renders.
        for path in ("/admin/endpoints/undrain",):
            client.post(
                path,
                json={"provider": "openai", "endpoint": h.upstream.url.removeprefix("http://")},
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
        after = client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": HELLO},
            headers={"authorization": f"Bearer {APP_KEY}"},
        )
        view = client.get("/admin/containers", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    summary = report(tally, "admin")
    print(summary)
    assert not tally.server_errors, summary
    assert not tally.bad_shapes, summary
    assert after.status_code < 500, f"after the admin fuzz a chat request is a {after.status_code}"
    assert view.status_code == 200, f"/admin/containers is a {view.status_code} after the fuzz"
    for entry in view.json()["containers"]:
        for name, value in entry["limits"].items():
            if isinstance(value, float):
                assert value <= 1e9, f"an admin input was not bounded: {name} = {value}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"])
def test_an_oversized_body_is_a_413_in_the_routes_shape(hostile: Hostile, route: str) -> None:
    h = hostile
    shape = is_anthropic_error if route == "/v1/messages" else is_openai_error
    big = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "' + b"a" * (33 << 20)
    big += b'"}]}'
    before = count_rows(h.omen.database)
    response = httpx.post(
        h.omen.url + route,
        content=big,
        headers={"authorization": f"Bearer {APP_KEY}", "content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, (response.status_code, response.text[:200])
    assert shape(response.json()), response.text[:200]
    assert wait_count(h.omen.database, before + 1, timeout=3) == before + 1, (
        "an authenticated oversized request left no row"
    )


# The inputs the issue names, one test each, so a failure reads at a glance.
NAMED: dict[str, tuple[str, Any]] = {
    "role_is_a_list": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": [], "content": "hi"}]},
    ),
    "text_part_is_a_number": (
        "/v1/chat/completions",
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
        },
    ),
    "nesting_1000_deep": (
        "/v1/chat/completions",
        b'{"model": "gpt-4o", "messages": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    ),
    "metadata_300_deep": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "metadata": deep_dict(DEEP)},
    ),
    "max_tokens_1e308": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "max_tokens": 1e308},
    ),
    "max_tokens_negative": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "max_tokens": -1},
    ),
    "budget_remaining_1e308": (
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": HELLO, "metadata": {"budget_remaining": 1e308}},
    ),
    "embeddings_metadata_true": (
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "hi", "metadata": True},
    ),
    "messages_text_block_is_a_number": (
        "/v1/messages",
        {
            "model": "gpt-4o",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}],
        },
    ),
    "messages_role_is_a_list": (
        "/v1/messages",
        {"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": [], "content": "hi"}]},
    ),
    "responses_input_item_is_a_number": ("/v1/responses", {"model": "gpt-4o", "input": [5]}),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(NAMED))
def test_a_bad_input_the_issue_names_is_a_4xx_with_one_row(hostile: Hostile, name: str) -> None:
    h = hostile
    route, body = NAMED[name]
    shape = is_anthropic_error if route == "/v1/messages" else is_openai_error
    tally = Tally()
    with httpx.Client(base_url=h.omen.url, timeout=15) as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = fire(client, "POST", route, content, shape, tally)
    assert response is not None, tally.server_errors
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert shape(response.json()), response.text[:300]
    request_id = response.headers.get("x-omen-request-id")
    assert request_id, f"a {response.status_code} without x-omen-request-id"
    assert len(rows_for(h.omen.database, request_id)) == 1, f"{request_id} has no row"
    check_reservations_released(h.omen)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("value", [1e308, -1, "inf", "1e308", 1e10])
def test_a_budget_of_absurd_size_is_refused_and_the_container_still_serves(
    hostile: Hostile, value: Any
) -> None:
    h = hostile
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    reset = {"daily": None, "weekly": None, "monthly": None}
    httpx.put(f"{h.omen.url}/admin/containers/app/budget", json=reset, headers=admin)
    response = httpx.put(
        f"{h.omen.url}/admin/containers/app/budget", json={"daily": value}, headers=admin
    )
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert is_openai_error(response.json()), response.text[:300]
    chat = httpx.post(
        f"{h.omen.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"authorization": f"Bearer {APP_KEY}"},
    )
    assert chat.status_code == 200, (chat.status_code, chat.text[:300])
    assert httpx.get(f"{h.omen.url}/admin/containers", headers=admin).status_code == 200
