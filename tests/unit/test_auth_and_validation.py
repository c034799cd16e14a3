"""Who is calling (KeyRing, bearer_token, is_loopback) and whether what they sent is a chat or
embeddings body Omen can pass on (check_chat, check_embeddings: a 400 naming the `param`)."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import pytest

from omen import auth
from omen.auth import KeyRing, bearer_token, is_loopback
from omen.config import OmenConfig, load_config
from omen.errors import ApiError
from omen.http.validate import check_chat, check_embeddings

ADMIN_KEY = "sk-omen-admin-0123456789"
USER_KEY = "sk-omen-user-0123456789"
BOUND_KEY = "sk-omen-bound-0123456789"
GAME_KEY = "sk-omen-game-0123456789"

CONFIG = f"""
[auth]
api_keys = [
  {{ key = "{ADMIN_KEY}", scope = "admin" }},
  {{ key = "{USER_KEY}" }},
  {{ key = "{BOUND_KEY}", container = "web" }},
  {{ key = "env:OMEN_TEST_UNSET_KEY" }},
]

[containers.web]

[containers.game]
api_key = "{GAME_KEY}"
"""


def config_from(tmp_path: Path, text: str) -> OmenConfig:
    path = tmp_path / "omen.toml"
    path.write_text(text)
    return load_config(path, env={}).config


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return KeyRing(config_from(tmp_path, CONFIG))


# --- KeyRing -----------------------------------------------------------------------------


def test_admin_key_has_admin_scope_for_any_container(ring: KeyRing) -> None:
    principal = ring.authenticate(ADMIN_KEY)

    assert principal is not None
    assert (principal.scope, principal.container) == ("admin", None)


def test_user_key_has_user_scope(ring: KeyRing) -> None:
    principal = ring.authenticate(USER_KEY)

    assert principal is not None
    assert (principal.scope, principal.container) == ("user", None)


def test_api_key_with_a_container_is_bound_to_it(ring: KeyRing) -> None:
    principal = ring.authenticate(BOUND_KEY)

    assert principal is not None
    assert (principal.scope, principal.container) == ("user", "web")


def test_container_key_acts_as_a_user_of_that_container(ring: KeyRing) -> None:
    principal = ring.authenticate(GAME_KEY)

    assert principal is not None
    assert (principal.scope, principal.container) == ("user", "game")


@pytest.mark.parametrize(
    "presented", ["sk-nobody", "", ADMIN_KEY[:-1], ADMIN_KEY + " ", ADMIN_KEY.upper()]
)
def test_unknown_key_is_none(ring: KeyRing, presented: str) -> None:
    assert ring.authenticate(presented) is None


def test_key_id_is_a_digest_prefix_never_the_key(ring: KeyRing) -> None:
    ids = {key: ring.authenticate(key) for key in (ADMIN_KEY, USER_KEY, BOUND_KEY, GAME_KEY)}

    key_ids = [p.key_id for p in ids.values() if p is not None]
    assert len(set(key_ids)) == 4
    for key, principal in ids.items():
        assert principal is not None and principal.key_id is not None
        assert principal.key_id.startswith("key_") and len(principal.key_id) == 16
        assert key not in principal.key_id
        assert key[-8:] not in principal.key_id


def test_key_ring_holds_digests_not_keys(ring: KeyRing) -> None:
    held = repr(vars(ring)) if hasattr(ring, "__dict__") else repr(ring)

    for key in (ADMIN_KEY, USER_KEY, BOUND_KEY, GAME_KEY):
        assert key not in held
        assert auth.key_digest(key).hex()[:12] in held  # what it holds is the digest


def test_every_known_key_is_compared_even_after_a_match(
    ring: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)

    assert ring.authenticate(ADMIN_KEY) is not None  # the first entry matches
    assert len(compared) == 4  # ...and the other three are still compared
    assert all(presented == auth.key_digest(ADMIN_KEY) for _, presented in compared)


def test_key_from_an_unset_env_variable_admits_nobody(ring: KeyRing) -> None:
    assert ring.authenticate("") is None
    assert ring.authenticate("env:OMEN_TEST_UNSET_KEY") is None


def test_config_without_keys_gives_an_empty_ring(tmp_path: Path) -> None:
    empty = KeyRing(config_from(tmp_path, "[server]\nbind = '127.0.0.1:8080'\n"))

    assert empty.empty is True
    assert empty.authenticate("anything") is None


def test_config_with_keys_gives_a_ring_that_is_not_empty(ring: KeyRing) -> None:
    assert ring.empty is False


# --- bearer_token ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer sk-abc", None, "sk-abc"),
        ("bearer sk-abc", None, "sk-abc"),
        ("BEARER sk-abc", None, "sk-abc"),
        ("Bearer   sk-abc  ", None, "sk-abc"),
        ("Bearer sk-abc", "sk-other", "sk-abc"),
        (None, "sk-anthropic-style", "sk-anthropic-style"),
        ("Basic dXNlcjpwYXNz", "sk-fallback", "sk-fallback"),
        ("Bearer ", "sk-fallback", "sk-fallback"),
        ("Basic dXNlcjpwYXNz", None, None),
        ("sk-abc", None, None),
        (None, None, None),
        (None, "", None),
    ],
)
def test_bearer_token(
    authorization: str | None, x_api_key: str | None, expected: str | None
) -> None:
    assert bearer_token(authorization, x_api_key) == expected


# --- is_loopback -------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host) is True


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "[::]", "192.168.1.10", "10.0.0.1", "example.com", ""]
)
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert is_loopback(host) is False


# --- check_chat ----------------------------------------------------------------------------


def valid_chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], **fields}


def refused_param(check: Any, body: dict[str, Any]) -> str | None:
    with pytest.raises(ApiError) as caught:
        check(body)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    return caught.value.param


def test_missing_model_is_a_missing_required_parameter() -> None:
    with pytest.raises(ApiError) as caught:
        check_chat({"messages": [{"role": "user", "content": "Hi"}]})

    assert (caught.value.status, caught.value.param) == (400, "model")
    assert caught.value.code == "missing_required_parameter"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": 4, "messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": "  ", "messages": [{"role": "user", "content": "Hi"}]}, "model"),
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": "Hi"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": ["Hi"]}, "messages[0]"),
        ({"model": "gpt-4o", "messages": [{"content": "Hi"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            {
                "model": "gpt-4o",
                "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": 7}],
            },
            "messages[1].content",
        ),
        (
            valid_chat(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]),
            "messages[0].content[0]",
        ),
        (
            valid_chat(messages=[{"role": "user", "content": ["just text"]}]),
            "messages[0].content[0]",
        ),
        (
            valid_chat(
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]
            ),
            "messages[0].content[0].image_url",
        ),
        (
            valid_chat(
                messages=[
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"u": 1}}]}
                ]
            ),
            "messages[0].content[0].image_url.url",
        ),
        (
            valid_chat(messages=[{"role": "tool", "content": "21C"}]),
            "messages[0].tool_call_id",
        ),
        (
            valid_chat(messages=[{"role": "assistant", "tool_calls": {"id": "c"}}]),
            "messages[0].tool_calls",
        ),
        (valid_chat(stream="yes"), "stream"),
        (valid_chat(stream_options=True), "stream_options"),
        (valid_chat(max_tokens=0), "max_tokens"),
        (valid_chat(max_tokens="100"), "max_tokens"),
        (valid_chat(max_tokens=True), "max_tokens"),
        (valid_chat(max_completion_tokens=-5), "max_completion_tokens"),
        (valid_chat(n=0), "n"),
        (valid_chat(seed=1.5), "seed"),
        (valid_chat(temperature="hot"), "temperature"),
        (valid_chat(top_p=None, presence_penalty=[1]), "presence_penalty"),
        (valid_chat(tools={"type": "function"}), "tools"),
        (valid_chat(tools=["get_weather"]), "tools[0]"),
        (valid_chat(tools=[{"type": "function"}]), "tools[0].function"),
        (valid_chat(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
        (valid_chat(metadata="intent=code"), "metadata"),
    ],
)
def test_bad_chat_body_is_400_naming_the_param(body: dict[str, Any], param: str) -> None:
    assert refused_param(check_chat, body) == param


def test_valid_chat_with_tools_images_and_tool_messages_is_accepted() -> None:
    body = {
        "model": "llama3.2",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this was taken?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_completion_tokens": 256,
        "temperature": 0,
        "top_p": 0.9,
        "seed": -1,
        "metadata": {"intent": "weather"},
    }

    check_chat(body)  # raises on refusal


def test_unknown_fields_and_nulls_are_left_to_the_upstream() -> None:
    check_chat(valid_chat(max_tokens=None, temperature=None, logit_bias={"50256": -100}))


def test_tool_call_that_is_not_an_object_is_400() -> None:
    body = valid_chat(messages=[{"role": "assistant", "tool_calls": ["get_weather"]}])

    param = refused_param(check_chat, body)

    assert param is not None and param.startswith("messages[0].tool_calls")


def test_response_format_that_is_not_an_object_is_400() -> None:
    assert refused_param(check_chat, valid_chat(response_format="json")) == "response_format"


# --- check_embeddings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hello"}, "model"),
        ({"model": ["text-embedding-3-small"], "input": "hello"}, "model"),
        ({"model": "text-embedding-3-small"}, "input"),
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": 42}, "input"),
        ({"model": "text-embedding-3-small", "input": {"text": "hi"}}, "input"),
        ({"model": "text-embedding-3-small", "input": ["hi", 3]}, "input"),
    ],
)
def test_bad_embeddings_body_is_400_naming_the_param(body: dict[str, Any], param: str) -> None:
    assert refused_param(check_embeddings, body) == param


@pytest.mark.parametrize(
    "value", ["hello", ["hello", "world"], [101, 7592, 102]], ids=["string", "strings", "tokens"]
)
def test_valid_embeddings_input_is_accepted(value: Any) -> None:
    check_embeddings({"model": "nomic-embed-text", "input": value})  # raises on refusal
