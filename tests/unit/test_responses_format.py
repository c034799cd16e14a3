"""OpenAI's Responses API (Codex CLI's wire) as translation: requests to chat bodies, chat
completions and chunks back to Responses objects and events the official SDK parses, and the
fake upstream that speaks Responses the way OpenAI does."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from omen.errors import ApiError
from omen.formats.responses import (
    ResponsesEncoder,
    failed_code,
    from_chat,
    to_chat,
    usage_from_responses,
    usage_to_responses,
)
from omen.providers import UpstreamError, Usage
from tests.fakes import (
    CutStream,
    ErrorReply,
    FakeState,
    MidStreamError,
    RunningFake,
    TextReply,
    ToolCall,
    ToolCallReply,
    make_openai_app,
    run_fake,
)
from tests.fakes.responses_shapes import PromptCacheKeys

# Every stream event type the SDK knows, by its `type`: each emitted event is validated against
# exactly the model its type names, so a missing or mistyped field fails the test.
EVENT_MODELS: dict[str, Any] = {
    typing.get_args(model.model_fields["type"].annotation)[0]: model
    for model in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}

NAMESPACE_TOOL = {
    "type": "namespace",
    "name": "mcp__github__",
    "description": "Tools of the github MCP server.",
    "tools": [
        {
            "type": "function",
            "name": "search_issues",
            "description": "Search issues.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            "strict": False,
        },
        {"type": "function", "name": "get_me", "parameters": {"type": "object"}},
    ],
}
APPLY_PATCH = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Use the `apply_patch` tool to edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": 'start: "*** Begin Patch"'},
}
EXEC_COMMAND = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command in a PTY.",
    "parameters": {
        "type": "object",
        "properties": {"cmd": {"type": "string"}},
        "required": ["cmd"],
        "additionalProperties": False,
    },
    "strict": False,
}


def codex_request(**overrides: Any) -> dict[str, Any]:
    """A request shaped like Codex CLI 0.171's (see shared/reference/CODING_AGENTS.md)."""
    body: dict[str, Any] = {
        "model": "gpt-5.1-codex",
        "instructions": "You are Codex, a coding agent.",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "<permissions>never</permissions>"}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "List the files."}],
            },
        ],
        "tools": [EXEC_COMMAND, NAMESPACE_TOOL, APPLY_PATCH, {"type": "web_search"}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a-conversation",
        "client_metadata": {"x-codex-installation-id": "abc"},
    }
    body.update(overrides)
    return body


def chat_of(body: dict[str, Any]) -> dict[str, Any]:
    return to_chat(body)[0]


def refusal(body: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        to_chat(body)
    assert caught.value.status == 400
    assert caught.value.body()["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    return caught.value


# --- request: items ----------------------------------------------------------------------------


def test_string_input_is_one_user_message_after_the_instructions() -> None:
    chat, dropped = to_chat({"model": "m", "instructions": "Be brief.", "input": "Hi"})
    assert chat == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
    }
    assert dropped == []


def test_message_roles_become_chat_roles_and_text_parts_join() -> None:
    chat = chat_of(
        {
            "model": "m",
            "input": [
                {"type": "message", "role": "developer", "content": "rules"},
                {"role": "system", "content": [{"type": "input_text", "text": "more rules"}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "<env>"},
                        {"type": "input_text", "text": "Do it."},
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "Done", "annotations": []},
                        {"type": "output_text", "text": "."},
                    ],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "system", "content": "more rules"},
        {"role": "user", "content": "<env>\nDo it."},
        {"role": "assistant", "content": "Done."},
    ]


def test_user_images_travel_as_image_url_parts() -> None:
    chat, dropped = to_chat(
        {
            "model": "m",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AA",
                            "detail": "high",
                        },
                        {"type": "input_image", "file_id": "file-123"},
                    ],
                }
            ],
        }
    )
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AA", "detail": "high"},
                },
            ],
        }
    ]
    assert dropped == ["input_image file_id"]


def test_an_assistant_turn_with_text_and_calls_is_one_assistant_message() -> None:
    chat, dropped = to_chat(
        codex_request(
            input=[
                {"role": "user", "content": "Look around."},
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "Listing first."}],
                    "encrypted_content": "gAAAA",
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Sure."}],
                },
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "exec_command",
                    "arguments": '{"cmd":"ls"}',
                },
                {
                    "type": "function_call",
                    "call_id": "call_2",
                    "name": "search_issues",
                    "namespace": "mcp__github__",
                    "arguments": '{"q":"bug"}',
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "a.py"},
                {"type": "function_call_output", "call_id": "call_2", "output": "[]"},
                {"type": "reasoning", "summary": [], "encrypted_content": "gAAAB"},
            ]
        )
    )
    assert chat["messages"][1:] == [
        {"role": "user", "content": "Look around."},
        {
            "role": "assistant",
            "content": "Sure.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "mcp__github__search_issues", "arguments": '{"q":"bug"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a.py"},
        {"role": "tool", "tool_call_id": "call_2", "content": "[]"},
    ]
    assert dropped.count("reasoning items") == 1


def test_images_a_tool_returned_follow_the_tool_messages_as_a_user_message() -> None:
    chat = chat_of(
        codex_request(
            input=[
                {"type": "function_call", "call_id": "c1", "name": "view_image", "arguments": "{}"},
                {
                    "type": "function_call",
                    "call_id": "c2",
                    "name": "exec_command",
                    "arguments": "{}",
                },
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [
                        {"type": "input_text", "text": "screenshot"},
                        {"type": "input_image", "image_url": "data:image/png;base64,QQ"},
                    ],
                },
                {"type": "function_call_output", "call_id": "c2", "output": "ok"},
                {"role": "user", "content": "next"},
            ]
        )
    )
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "assistant", "tool", "tool", "user", "user"]
    assert chat["messages"][2]["content"] == "screenshot"
    images = chat["messages"][4]["content"]
    assert images[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ"}}
    assert chat["messages"][5] == {"role": "user", "content": "next"}


def test_custom_tool_calls_travel_as_function_calls_with_one_input_argument() -> None:
    chat = chat_of(
        codex_request(
            input=[
                {
                    "type": "custom_tool_call",
                    "call_id": "call_p",
                    "name": "apply_patch",
                    "input": '*** Begin Patch\n*** Add File: "a.txt"\n*** End Patch',
                },
                {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Success."},
            ]
        )
    )
    call = chat["messages"][1]["tool_calls"][0]
    assert call["function"]["name"] == "apply_patch"
    assert json.loads(call["function"]["arguments"]) == {
        "input": '*** Begin Patch\n*** Add File: "a.txt"\n*** End Patch'
    }
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "call_p", "content": "Success."}


@pytest.mark.parametrize(
    "item_type",
    ["web_search_call", "local_shell_call", "compaction", "mcp_call", "image_generation_call"],
)
def test_items_chat_cannot_carry_are_dropped_and_named(item_type: str) -> None:
    chat, dropped = to_chat(
        {"model": "m", "input": [{"type": item_type, "id": "x"}, {"role": "user", "content": "hi"}]}
    )
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    assert dropped == [f"{item_type} items"]


def test_tools_a_tool_search_loaded_become_callable() -> None:
    chat = chat_of(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "file an issue"},
                {
                    "type": "tool_search_output",
                    "call_id": "ts_1",
                    "execution": "client",
                    "status": "completed",
                    "tools": [NAMESPACE_TOOL],
                },
            ],
        }
    )
    names = [t["function"]["name"] for t in chat["tools"]]
    assert names == ["mcp__github__search_issues", "mcp__github__get_me"]


def test_an_unknown_item_type_is_refused_naming_the_item() -> None:
    error = refusal(
        {"model": "m", "input": [{"role": "user", "content": "a"}] * 3 + [{"type": "foo"}]}
    )
    assert error.message == "input[3]: unknown item type 'foo'"
    assert error.param == "input[3].type"


def test_a_bad_content_part_is_refused_naming_the_part() -> None:
    error = refusal(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "input_video"}]},
            ],
        }
    )
    assert error.message.startswith("input[1].content[0]: unknown content part type 'input_video'")


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ([], "JSON object"),
        ({"input": "hi"}, "`model`"),
        ({"model": 5, "input": "hi"}, "`model`"),
        ({"model": "m"}, "`input`"),
        ({"model": "m", "input": 5}, "`input`"),
        ({"model": "m", "input": [5]}, "input[0]"),
        ({"model": "m", "input": [{}]}, "input[0]"),
        ({"model": "m", "input": [{"type": 3}]}, "input[0]"),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "user", "content": [5]}]}, "input[0].content[0]"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input[0].content[0].text",
        ),
        (
            {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {
                "model": "m",
                "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}],
            },
            "input[0].arguments",
        ),
        (
            {
                "model": "m",
                "input": [{"type": "function_call_output", "call_id": "c", "output": 3}],
            },
            "input[0].output",
        ),
        (
            {"model": "m", "input": [{"type": "custom_tool_call", "call_id": "c", "name": "f"}]},
            "input[0].input",
        ),
        ({"model": "m", "input": [{"type": "tool_search_output", "tools": {}}]}, "input[0].tools"),
        ({"model": "m", "input": "hi", "instructions": ["x"]}, "`instructions`"),
        ({"model": "m", "input": "hi", "tools": {}}, "`tools`"),
        ({"model": "m", "input": "hi", "tools": ["web_search"]}, "tools[0]"),
        (
            {
                "model": "m",
                "input": "hi",
                "tools": [EXEC_COMMAND, APPLY_PATCH, {"type": "function"}],
            },
            "tools[2]",
        ),
        (
            {
                "model": "m",
                "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": "x"}],
            },
            "tools[0].parameters",
        ),
        (
            {
                "model": "m",
                "input": "hi",
                "tools": [{"type": "custom", "name": "f", "format": "x"}],
            },
            "tools[0].format",
        ),
        (
            {
                "model": "m",
                "input": "hi",
                "tools": [{"type": "namespace", "name": "n", "tools": None}],
            },
            "tools[0].tools",
        ),
        (
            {
                "model": "m",
                "input": "hi",
                "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "function"}]}],
            },
            "tools[0].tools[0]",
        ),
        ({"model": "m", "input": "hi", "tool_choice": "sometimes"}, "`tool_choice`"),
        ({"model": "m", "input": "hi", "tool_choice": {"type": "function"}}, "`tool_choice.name`"),
        ({"model": "m", "input": "hi", "parallel_tool_calls": "yes"}, "`parallel_tool_calls`"),
        ({"model": "m", "input": "hi", "reasoning": "high"}, "`reasoning`"),
        ({"model": "m", "input": "hi", "reasoning": {"effort": 3}}, "`reasoning.effort`"),
        ({"model": "m", "input": "hi", "max_output_tokens": 0}, "`max_output_tokens`"),
        ({"model": "m", "input": "hi", "max_output_tokens": True}, "`max_output_tokens`"),
        ({"model": "m", "input": "hi", "temperature": "hot"}, "`temperature`"),
        ({"model": "m", "input": "hi", "metadata": []}, "`metadata`"),
        ({"model": "m", "input": "hi", "prompt_cache_key": 5}, "`prompt_cache_key`"),
        (
            {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema"}}},
            "`text.format`",
        ),
        ({"model": "m", "input": "hi", "text": "json"}, "`text`"),
        ({"model": "m", "input": "hi", "stream": "yes"}, "`stream`"),
        ({"model": "m", "input": "hi", "include": "all"}, "`include`"),
    ],
)
def test_malformed_requests_are_400s_that_say_where(body: Any, names: str) -> None:
    assert names in refusal(body).message


def test_previous_response_id_is_refused_because_omen_is_stateless() -> None:
    error = refusal({"model": "m", "input": "hi", "previous_response_id": "resp_1"})
    assert error.param == "previous_response_id"
    assert "stateless" in error.message
    assert to_chat({"model": "m", "input": "hi", "previous_response_id": None})[1] == []


def test_item_references_are_refused_because_nothing_is_stored() -> None:
    error = refusal({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]})
    assert "input[0]" in error.message and "stateless" in error.message


# --- request: tools and settings ---------------------------------------------------------------


def test_function_namespace_and_custom_tools_become_chat_functions() -> None:
    chat, dropped = to_chat(codex_request())
    tools = {t["function"]["name"]: t["function"] for t in chat["tools"]}
    assert list(tools) == [
        "exec_command",
        "mcp__github__search_issues",
        "mcp__github__get_me",
        "apply_patch",
    ]
    assert tools["exec_command"] == {
        "name": "exec_command",
        "description": "Runs a command in a PTY.",
        "parameters": EXEC_COMMAND["parameters"],
        "strict": False,
    }
    # A namespaced tool without its own description borrows the namespace's.
    assert tools["mcp__github__get_me"]["description"] == "Tools of the github MCP server."
    patch = tools["apply_patch"]["parameters"]
    assert patch["required"] == ["input"]
    assert patch["properties"]["input"]["type"] == "string"
    assert 'start: "*** Begin Patch"' in patch["properties"]["input"]["description"]
    assert "web_search tool" in dropped


def test_namespaces_flatten_the_way_codex_does() -> None:
    tools = [
        {
            "type": "namespace",
            "name": "ns",
            "description": "",
            "tools": [{"type": "function", "name": "read"}],
        },
        {
            "type": "namespace",
            "name": "ns.with.dots",
            "description": "",
            "tools": [{"type": "function", "name": "read"}],
        },
        {
            "type": "namespace",
            "name": "n" * 60,
            "description": "",
            "tools": [{"type": "function", "name": "tool"}],
        },
    ]
    names = [
        t["function"]["name"]
        for t in chat_of({"model": "m", "input": "hi", "tools": tools})["tools"]
    ]
    assert names[0] == "ns__read"
    assert all(len(n) <= 64 and n.replace("_", "").replace("-", "").isalnum() for n in names)
    assert len(set(names)) == 3


def test_a_plain_tool_named_like_a_flattened_one_keeps_its_own_way_back() -> None:
    request = {
        "model": "m",
        "input": [{"type": "function_call", "call_id": "c", "name": "ns__read", "arguments": "{}"}],
        "tools": [
            {
                "type": "namespace",
                "name": "ns",
                "description": "",
                "tools": [{"type": "function", "name": "read"}],
            },
            {"type": "function", "name": "ns__read"},
        ],
    }
    chat = chat_of(request)
    grouped, plain = (t["function"]["name"] for t in chat["tools"])
    assert grouped == "ns__read" and plain != grouped
    assert chat["messages"][0]["tool_calls"][0]["function"]["name"] == plain
    calls = [
        {"id": "c1", "type": "function", "function": {"name": grouped, "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": plain, "arguments": "{}"}},
    ]
    output = from_chat(completion({"role": "assistant", "tool_calls": calls}), Usage(), request)[
        "output"
    ]
    assert [(i["name"], i.get("namespace")) for i in output] == [("read", "ns"), ("ns__read", None)]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("required", "required"),
        ("none", "none"),
        (
            {"type": "function", "name": "exec_command"},
            {"type": "function", "function": {"name": "exec_command"}},
        ),
        (
            {"type": "custom", "name": "apply_patch"},
            {"type": "function", "function": {"name": "apply_patch"}},
        ),
        (
            {"type": "function", "name": "get_me", "namespace": "mcp__github__"},
            {"type": "function", "function": {"name": "mcp__github__get_me"}},
        ),
    ],
)
def test_tool_choice_takes_the_chat_form(choice: Any, expected: Any) -> None:
    assert chat_of(codex_request(tool_choice=choice))["tool_choice"] == expected


def test_hosted_tool_choices_fall_back_to_auto_and_are_named() -> None:
    chat, dropped = to_chat(codex_request(tool_choice={"type": "web_search_preview"}))
    assert chat["tool_choice"] == "auto"
    assert "tool_choice web_search_preview" in dropped


def test_without_carried_tools_chat_gets_no_tool_choice_nor_parallel_flag() -> None:
    chat, dropped = to_chat(
        {
            "model": "m",
            "input": "hi",
            "tools": [{"type": "web_search"}],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
        }
    )
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat
    assert dropped == ["web_search tool"]


def test_settings_map_to_their_chat_fields() -> None:
    chat, dropped = to_chat(
        {
            "model": "m",
            "input": "hi",
            "reasoning": {"effort": "high", "summary": "auto"},
            "max_output_tokens": 512,
            "temperature": 0.2,
            "top_p": 0.9,
            "prompt_cache_key": "conv-1",
            "safety_identifier": "user-hash",
            "user": "u1",
            "metadata": {"intent": "code", "prefer_local": True},
            "service_tier": "flex",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "answer",
                    "schema": {"type": "object"},
                    "strict": True,
                },
                "verbosity": "low",
            },
            "stream": True,
            "store": False,
            "truncation": "disabled",
        }
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "reasoning_effort": "high",
        "max_completion_tokens": 512,
        "temperature": 0.2,
        "top_p": 0.9,
        "prompt_cache_key": "conv-1",
        "safety_identifier": "user-hash",
        "user": "u1",
        "service_tier": "flex",
        "metadata": {"intent": "code", "prefer_local": True},
        "verbosity": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert dropped == []
    json_object = chat_of(
        {"model": "m", "input": "hi", "text": {"format": {"type": "json_object"}}}
    )
    assert json_object["response_format"] == {"type": "json_object"}


def test_fields_chat_cannot_carry_are_named() -> None:
    _, dropped = to_chat(
        {
            "model": "m",
            "input": "hi",
            "store": True,
            "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
            "truncation": "auto",
            "reasoning": {"summary": "detailed"},
            "max_tool_calls": 3,
            "prompt": {"id": "pmpt_1"},
        }
    )
    assert dropped == [
        "reasoning.summary",
        "store",
        "include.reasoning.encrypted_content",
        "include.message.output_text.logprobs",
        "truncation",
        "max_tool_calls",
        "prompt",
    ]


def test_a_codex_turn_names_only_what_chat_cannot_carry() -> None:
    chat, dropped = to_chat(codex_request())
    assert dropped == ["web_search tool", "include.reasoning.encrypted_content"]
    assert chat["messages"][0] == {"role": "system", "content": "You are Codex, a coding agent."}
    assert chat["prompt_cache_key"] == "019a-conversation"
    assert chat["reasoning_effort"] == "medium"
    assert chat["parallel_tool_calls"] is False
    assert chat["stream_options"] == {"include_usage": True}


# --- response: chat.completion → response ------------------------------------------------------


def completion(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": "claude-sonnet-4",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }


def test_a_text_completion_becomes_a_completed_response_the_sdk_parses() -> None:
    usage = Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=100, reasoning_tokens=12)
    body = from_chat(completion({"role": "assistant", "content": "Hello."}), usage, codex_request())
    parsed = Response.model_validate(body)
    assert parsed.id.startswith("resp_") and parsed.object == "response"
    assert parsed.status == "completed" and parsed.error is None
    assert parsed.model == "claude-sonnet-4"
    assert parsed.output_text == "Hello."
    message = body["output"][0]
    assert message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello."}
    ]
    assert body["usage"] == {
        "input_tokens": 120,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
        "output_tokens": 30,
        "output_tokens_details": {"reasoning_tokens": 12},
        "total_tokens": 150,
    }
    assert body["tools"] == codex_request()["tools"]
    assert body["prompt_cache_key"] == "019a-conversation"
    assert "output_text" not in body  # an SDK convenience, not wire


def test_chat_tool_calls_come_back_as_the_items_codex_dispatches() -> None:
    message = {
        "role": "assistant",
        "content": None,
        "reasoning": "I should list and patch.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "mcp__github__get_me", "arguments": "{}"},
            },
            {
                "id": "call_c",
                "type": "function",
                "function": {
                    "name": "apply_patch",
                    "arguments": '{"input": "*** Begin Patch\\n*** End Patch"}',
                },
            },
            {
                "id": "call_d",
                "type": "function",
                "function": {"name": "not_declared", "arguments": "{}"},
            },
        ],
    }
    body = from_chat(completion(message, "tool_calls"), Usage(), codex_request())
    Response.model_validate(body)
    reasoning, *calls = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["summary"] == [{"type": "summary_text", "text": "I should list and patch."}]
    plain, namespaced, custom, unknown = calls
    assert plain["id"].startswith("fc_")
    assert {k: plain[k] for k in ("type", "call_id", "name", "arguments", "status")} == {
        "type": "function_call",
        "call_id": "call_a",
        "name": "exec_command",
        "arguments": '{"cmd":"ls"}',
        "status": "completed",
    }
    assert "namespace" not in plain
    assert (namespaced["name"], namespaced["namespace"]) == ("get_me", "mcp__github__")
    assert custom["type"] == "custom_tool_call" and custom["call_id"] == "call_c"
    assert (custom["name"], custom["input"]) == ("apply_patch", "*** Begin Patch\n*** End Patch")
    assert (unknown["type"], unknown["name"]) == ("function_call", "not_declared")


def test_a_completion_cut_at_the_token_limit_is_incomplete() -> None:
    body = from_chat(
        completion({"role": "assistant", "content": "Hel"}, "length"), Usage(5, 1), {"model": "m"}
    )
    parsed = Response.model_validate(body)
    assert parsed.status == "incomplete"
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == "max_output_tokens"
    assert body["output"][0]["status"] == "incomplete"


def test_usage_round_trips_and_ignores_junk() -> None:
    usage = Usage(
        prompt_tokens=200,
        completion_tokens=40,
        cached_tokens=150,
        reasoning_tokens=8,
        cache_write_tokens=20,
    )
    assert usage_from_responses(usage_to_responses(usage)) == usage
    assert usage_from_responses(None) == Usage()
    junk = {
        "input_tokens": "9",
        "input_tokens_details": [],
        "output_tokens": True,
        "output_tokens_details": {"reasoning_tokens": -1},
    }
    assert usage_from_responses(junk) == Usage()


# --- stream: chunks → events --------------------------------------------------------------------


def chunk(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None, **extra: Any
) -> dict[str, Any]:
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    )
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "claude-sonnet-4",
        "choices": choices,
        **extra,
    }


def parse_stream(raw: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream, each validated by the SDK model its type names."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        event = json.loads(data_line.removeprefix("data: "))
        assert event["type"] == name_line.removeprefix("event: ")
        EVENT_MODELS[event["type"]].model_validate(event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def encode(
    request: dict[str, Any], chunks: list[dict[str, Any]], usage: Usage | None = None
) -> list[dict[str, Any]]:
    encoder = ResponsesEncoder(request)
    raw = b"".join(encoder.chunk(c) for c in chunks) + encoder.done(usage)
    assert encoder.chunk(chunk({"content": "late"})) == b"" and encoder.done(usage) == b""
    return parse_stream(raw)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("response.") for e in events]


def test_a_text_stream_is_the_documented_event_sequence() -> None:
    events = encode(
        codex_request(),
        [
            chunk({"role": "assistant", "content": "", "refusal": None}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo."}),
            chunk({}, "stop"),
            chunk(
                None,
                usage={
                    "prompt_tokens": 50,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 40},
                },
            ),
        ],
    )
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )
    item_id = events[2]["item"]["id"]
    assert all(e["item_id"] == item_id for e in events[3:8])
    assert [e["delta"] for e in events[4:6]] == ["Hel", "lo."]
    assert events[6]["text"] == "Hello."
    final = events[-1]["response"]
    assert final["id"] == events[0]["response"]["id"]
    assert final["status"] == "completed" and final["model"] == "claude-sonnet-4"
    assert final["output"] == [events[8]["item"]]
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 40  # from the usage chunk


def test_tool_calls_streamed_in_pieces_become_function_call_items() -> None:
    events = encode(
        codex_request(),
        [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "exec_command", "arguments": ""},
                        }
                    ],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"cmd":'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "mcp__github__get_me", "arguments": "{}"},
                        }
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ],
        Usage(10, 5),
    )
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    first, second = events[6]["item"], events[10]["item"]
    assert events[2]["item"]["status"] == "in_progress" and events[2]["item"]["arguments"] == ""
    assert (first["call_id"], first["name"], first["arguments"], first["status"]) == (
        "call_1",
        "exec_command",
        '{"cmd":"ls"}',
        "completed",
    )
    assert (second["name"], second["namespace"], second["call_id"]) == (
        "get_me",
        "mcp__github__",
        "call_2",
    )
    assert events[7]["item"]["namespace"] == "mcp__github__"
    assert [e["output_index"] for e in events[2:11]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert events[-1]["response"]["output"] == [first, second]


def test_whole_tool_calls_in_one_delta_each_get_their_item() -> None:
    events = encode(
        {"model": "m", "tools": [EXEC_COMMAND]},
        [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "a",
                            "type": "function",
                            "function": {"name": "exec_command", "arguments": '{"cmd":"ls"}'},
                        },
                        {
                            "index": 1,
                            "id": "b",
                            "type": "function",
                            "function": {"name": "exec_command", "arguments": '{"cmd":"pwd"}'},
                        },
                    ]
                }
            ),
            chunk({}, "tool_calls"),
        ],
    )
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [(i["call_id"], i["arguments"]) for i in done] == [
        ("a", '{"cmd":"ls"}'),
        ("b", '{"cmd":"pwd"}'),
    ]


def test_a_custom_tool_streams_its_decoded_input() -> None:
    pieces = [
        '{"in',
        'put": "*** Begin Patch\\',
        "n+caf\\u00",
        "e9 \\ud83d",
        '\\ude00\\"q\\"',
        '"}',
    ]
    events = encode(
        codex_request(),
        [
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_p",
                            "type": "function",
                            "function": {"name": "apply_patch", "arguments": ""},
                        }
                    ]
                }
            )
        ]
        + [chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces]
        + [chunk({}, "tool_calls")],
    )
    expected = '*** Begin Patch\n+café 😀"q"'
    added = events[2]["item"]
    assert (added["type"], added["name"], added["input"]) == ("custom_tool_call", "apply_patch", "")
    deltas = [e["delta"] for e in events if e["type"] == "response.custom_tool_call_input.delta"]
    assert "".join(deltas) == expected
    assert [e["input"] for e in events if e["type"] == "response.custom_tool_call_input.done"] == [
        expected
    ]
    assert events[-2]["item"]["input"] == expected and events[-2]["item"]["call_id"] == "call_p"


def test_reasoning_streams_as_a_summary_before_the_answer() -> None:
    events = encode(
        codex_request(),
        [
            chunk({"reasoning": "Think"}),
            chunk({"reasoning_content": "ing."}),
            chunk({"content": "Answer."}),
            chunk({}, "stop"),
        ],
    )
    assert types(events)[:9] == [
        "created",
        "in_progress",
        "output_item.added",
        "reasoning_summary_part.added",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.delta",
        "reasoning_summary_text.done",
        "reasoning_summary_part.done",
        "output_item.done",
    ]
    assert events[2]["item"]["type"] == "reasoning" and events[2]["item"]["id"].startswith("rs_")
    assert events[6]["text"] == "Thinking." and events[6]["summary_index"] == 0
    assert events[8]["item"]["summary"] == [{"type": "summary_text", "text": "Thinking."}]
    assert events[9]["output_index"] == 1 and events[9]["item"]["type"] == "message"


def test_a_stream_cut_at_the_token_limit_ends_incomplete() -> None:
    events = encode(
        {"model": "m", "max_output_tokens": 2},
        [chunk({"content": "Hel"}), chunk({}, "length")],
        Usage(3, 2),
    )
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2]["item"]["status"] == "incomplete"


def test_an_empty_stream_still_answers_with_an_empty_message() -> None:
    events = encode({"model": "m"}, [], None)
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert events[-1]["response"]["usage"] is None


def failed(
    error: UpstreamError, chunks: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    encoder = ResponsesEncoder(codex_request())
    raw = b"".join(encoder.chunk(c) for c in chunks or []) + encoder.error(error)
    assert encoder.done(None) == b""
    events = [json.loads(block.split("\ndata: ")[1]) for block in raw.decode().split("\n\n")[:-1]]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_an_error_mid_stream_is_a_failed_response_after_what_was_sent() -> None:
    events = failed(
        UpstreamError(502, "upstream went away", mid_stream=True), [chunk({"content": "Hi"})]
    )
    for event in events:
        EVENT_MODELS[event["type"]].model_validate(event)
    assert types(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "failed",
    ]
    response = events[-1]["response"]
    assert response["status"] == "failed"
    assert response["error"] == {"code": "server_error", "message": "upstream went away"}
    assert response["output"][0]["status"] == "incomplete"


def test_a_rate_limit_tells_codex_when_to_try_again() -> None:
    events = failed(UpstreamError(429, "Rate limit reached for requests.", retry_after=6.2))
    assert types(events) == ["created", "in_progress", "failed"]
    EVENT_MODELS["response.failed"].model_validate(events[-1])
    error = events[-1]["response"]["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"] == "Rate limit reached for requests. Please try again in 7s."
    kept = failed(UpstreamError(429, "Limit hit. Please try again in 1.5s. Visit …"))[-1][
        "response"
    ]["error"]
    assert kept["message"] == "Limit hit. Please try again in 1.5s. Visit …"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UpstreamError(400, "bad", code="context_length_exceeded"), "context_length_exceeded"),
        (
            UpstreamError(400, "prompt is too long: 210000 tokens > 200000 maximum"),
            "context_length_exceeded",
        ),
        (
            UpstreamError(400, "This model's maximum context length is 128000 tokens."),
            "context_length_exceeded",
        ),
        (
            UpstreamError(429, "You exceeded your current quota", code="insufficient_quota"),
            "insufficient_quota",
        ),
        (UpstreamError(429, "daily budget spent", type_="budget_exceeded"), "insufficient_quota"),
        (UpstreamError(429, "slow down"), "rate_limit_exceeded"),
        (UpstreamError(503, "overloaded"), "server_error"),
        (UpstreamError(400, "invalid tool schema"), "server_error"),
    ],
)
def test_failures_carry_the_code_codex_acts_on(error: UpstreamError, code: str) -> None:
    assert failed_code(error) == code
    assert failed(error)[-1]["response"]["error"]["code"] == code


# --- the fake upstream speaks Responses, as the official SDK reads it --------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeState, PromptCacheKeys, RunningFake]]:
    fake, cache = FakeState(api_key="sk-fake"), PromptCacheKeys()
    server = run_fake(make_openai_app(fake, "openai", cache))
    yield fake, cache, server
    server.stop()


@pytest.fixture
def fake(upstream: tuple[FakeState, PromptCacheKeys, RunningFake]) -> FakeState:
    state, cache, _ = upstream
    state.script.clear()
    state.script.default = TextReply()
    state.reset()
    cache.clear()
    return state


@pytest.fixture
def client(
    upstream: tuple[FakeState, PromptCacheKeys, RunningFake], fake: FakeState
) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream[2].url + "/v1", api_key="sk-fake", max_retries=0)


def raw_stream(
    upstream: tuple[FakeState, PromptCacheKeys, RunningFake], **body: Any
) -> list[dict[str, Any]]:
    body = {"model": "gpt-5", "input": "Say hello", "stream": True, **body}
    response = httpx.post(
        upstream[2].url + "/v1/responses",
        json=body,
        headers={"authorization": "Bearer sk-fake"},
        timeout=5,
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_stream(response.content)


def test_the_fake_answers_the_sdk_whole_and_caches_a_resent_prompt(
    client: openai.OpenAI, fake: FakeState
) -> None:
    first = client.responses.create(
        model="gpt-5", input="Say hello", prompt_cache_key="conv-1", store=False
    )
    assert first.status == "completed" and first.output_text == "Hello! How can I help you today?"
    assert first.usage is not None and first.usage.input_tokens_details.cached_tokens == 0
    again = client.responses.create(
        model="gpt-5",
        input=[
            {"role": "user", "content": "Say hello"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Again"},
        ],
        prompt_cache_key="conv-1",
    )
    assert again.usage is not None
    assert 0 < again.usage.input_tokens_details.cached_tokens <= again.usage.input_tokens
    assert fake.requests_to("/v1/responses")[0].json["prompt_cache_key"] == "conv-1"
    Response.model_validate(again.model_dump())


def test_the_fake_streams_events_the_sdk_parses(client: openai.OpenAI, upstream: Any) -> None:
    events = raw_stream(upstream)
    assert types(events)[:4] == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
    ]
    assert types(events)[-4:] == [
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    with client.responses.stream(model="gpt-5", input="Say hello") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.count("response.output_text.delta") == 7
    assert final.output_text == "Hello! How can I help you today?"


def test_the_fake_streams_tool_calls_and_encrypted_reasoning(
    client: openai.OpenAI, fake: FakeState, upstream: Any
) -> None:
    fake.script.push(ToolCallReply([ToolCall("exec_command", {"cmd": "ls -la"}, id="call_x")]))
    events = raw_stream(
        upstream,
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
    )
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    reasoning, call = done
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"].startswith("gAAAA")
    assert reasoning["summary"][0]["type"] == "summary_text"
    assert (call["type"], call["call_id"], call["name"], json.loads(call["arguments"])) == (
        "function_call",
        "call_x",
        "exec_command",
        {"cmd": "ls -la"},
    )
    usage = events[-1]["response"]["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] > 0
    fake.script.push(ToolCallReply())
    whole = client.responses.create(model="gpt-5", input="weather?")
    assert [item.type for item in whole.output] == ["function_call"]


def test_the_fake_cuts_output_at_max_output_tokens(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-5", input="Say hello", max_output_tokens=2)
    assert response.status == "incomplete" and response.output_text == "Hello! How"
    assert (
        response.incomplete_details is not None
        and response.incomplete_details.reason == "max_output_tokens"
    )


def test_the_fake_fails_the_way_openai_does(
    client: openai.OpenAI, fake: FakeState, upstream: Any
) -> None:
    fake.script.push(ErrorReply(429))
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="gpt-5", input="hi")
    fake.script.push(ErrorReply(400))
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-5", input="hi")
    assert caught.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="gpt-5", input="hi", previous_response_id="resp_1")
    fake.script.push(MidStreamError(after_chunks=2, message="boom"))
    events = raw_stream(upstream)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "boom"}
    assert sum(e["type"] == "response.output_text.delta" for e in events) == 2
    fake.script.push(CutStream(after_chunks=1))
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="gpt-5", input="hi", stream=True))
    bad_key = openai.OpenAI(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.responses.create(model="gpt-5", input="hi")
