"""The intent classifier: metadata first, then the request's structure, then weighted text
signals, each named so the route reason can say why; and its accuracy on the labelled set."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from omen.routing import INTENTS, IntentResult, classify

LABELLED = Path(__file__).resolve().parents[1] / "data" / "intents.jsonl"


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


IMAGE_PART = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


# --- metadata ------------------------------------------------------------------------------


def test_metadata_intent_wins_over_everything() -> None:
    body = {
        "metadata": {"intent": "math"},
        "tools": [TOOL],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE_PART]}],
    }

    result = classify(body)

    assert (result.intent, result.source, result.signals) == ("math", "metadata", ())


def test_metadata_intent_is_trimmed_and_lower_cased() -> None:
    result = classify({"metadata": {"intent": "  Code "}, **user("hello")})

    assert result.intent == "code"
    assert result.explain() == "intent=code (from metadata)"


@pytest.mark.parametrize("intent", [None, 7, "", ["code"]])
def test_metadata_intent_that_is_not_a_word_is_ignored(intent: object) -> None:
    result = classify({"metadata": {"intent": intent}, **user("```js\nconsole.log(1)\n```")})

    assert (result.intent, result.source) == ("code", "text")


def test_metadata_that_is_not_an_object_is_ignored() -> None:
    result = classify({"metadata": "code", **user("hi there")})

    assert (result.intent, result.source) == ("general", "text")


def test_blank_metadata_intent_falls_back_to_the_classifier() -> None:
    result = classify({"metadata": {"intent": "   "}, **user("```js\nconsole.log(1)\n```")})

    assert (result.intent, result.source) == ("code", "text")


# --- structure -----------------------------------------------------------------------------


@pytest.mark.parametrize("part_type", ["image_url", "image", "input_image"])
def test_an_image_part_makes_it_vision_whatever_the_text(part_type: str) -> None:
    content = [
        {"type": "text", "text": "```python\ndef f(): pass\n```"},
        {"type": part_type, "image_url": {"url": "https://example.com/a.png"}},
    ]

    result = classify({"messages": [{"role": "user", "content": content}]})

    assert (result.intent, result.source, result.signals) == (
        "vision",
        "structure",
        ("image part",),
    )


def test_an_image_in_an_earlier_message_still_makes_it_vision() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, IMAGE_PART]},
            {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "and its breed?"},
        ]
    }

    assert classify(body).intent == "vision"


def test_image_wins_over_tools() -> None:
    body = {"tools": [TOOL], "messages": [{"role": "user", "content": [IMAGE_PART]}]}

    assert classify(body).intent == "vision"


def test_an_image_url_written_as_text_is_not_vision() -> None:
    assert classify(user("see https://example.com/chart.png")).intent != "vision"


@pytest.mark.parametrize("key", ["tools", "functions"])
def test_tool_definitions_make_it_an_agent(key: str) -> None:
    result = classify({key: [TOOL], **user("Prove that there are infinitely many primes.")})

    assert (result.intent, result.source, result.signals) == (
        "agent",
        "structure",
        ("tool definitions",),
    )


def test_an_empty_tools_list_is_not_an_agent() -> None:
    assert classify({"tools": [], **user("hi")}).intent == "general"


@pytest.mark.parametrize(
    "message",
    [
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "function", "name": "get_weather", "content": '{"temp": 21}'},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f"}}],
        },
    ],
)
def test_tool_messages_make_it_an_agent(message: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": "weather in Oslo?"}, message]}

    result = classify(body)

    assert (result.intent, result.source, result.signals) == (
        "agent",
        "structure",
        ("tool messages",),
    )


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("```python\ndef add(a, b):\n    return a + b\n```\nwhy does mypy complain here?", "code"),
        (
            'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n'
            "KeyError: 'user_id'",
            "code",
        ),
        ("How do I write a SQL query that does SELECT name FROM users GROUP BY team?", "code"),
        ("const total = items.reduce((a, b) => a + b, 0); console.log(total)", "code"),
        ("Solve x^2 - 5x + 6 = 0 and show the roots.", "math"),
        ("Prove by induction that the sum of the first n odd numbers is n².", "math"),
        (r"Evaluate \int_0^1 x^2 \, dx and explain the result.", "math"),
        ("What is the probability of rolling two sixes with two dice?", "math"),
        (
            "What are the trade-offs of moving our team to a four-day week? "
            "Think it through step by step.",
            "reasoning",
        ),
        (
            "Should we build or buy our analytics stack? Weigh the risks and implications.",
            "reasoning",
        ),
        ("Why did the Roman Republic collapse? Analyze the root causes.", "reasoning"),
        ("hi! what's a good name for a golden retriever puppy?", "general"),
        ("What's the capital of Australia?", "general"),
        ("Give me a recipe for banana bread.", "general"),
        ("Translate to French: the function of the heart is to pump blood.", "general"),
    ],
)
def test_clear_text_examples(text: str, intent: str) -> None:
    result = classify(user(text))

    assert result.intent == intent, result


def test_text_result_names_the_signals_strongest_first() -> None:
    result = classify(user("```python\nimport os\nprint(os.getcwd())\n```"))

    assert result.source == "text"
    assert result.signals[0] == "code fence"
    assert 1 < len(result.signals) <= 3


def test_nothing_convincing_is_general_by_default() -> None:
    result = classify(user("qzxv wplk"))

    assert (result.intent, result.source, result.signals) == ("general", "default", ())
    assert classify(user("hello there")).intent == "general"


def test_prose_task_about_code_words_is_general() -> None:
    result = classify(user("Summarize this article about the function of sleep."))

    assert (result.intent, result.source) == ("general", "text")
    assert '"summarize"' in result.signals


def test_the_last_user_message_is_what_is_judged() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "```python\nprint('hi')\n```"},
            {"role": "assistant", "content": "It prints hi."},
            {"role": "user", "content": "thanks! what's a good name for a cat?"},
        ]
    }

    assert classify(body).intent == "general"


def test_a_coding_system_prompt_tips_a_vague_question_toward_code() -> None:
    system = {"role": "system", "content": "You are a senior Python engineer."}
    vague = {"role": "user", "content": "what is the best way to handle this?"}

    alone = dict(classify({"messages": [vague]}).scores)
    tipped = dict(classify({"messages": [system, vague]}).scores)

    assert tipped["code"] > alone["code"] + 0.05


def test_text_parts_of_a_list_content_are_read() -> None:
    content = [{"type": "text", "text": "Solve 3x + 4 = 19"}, {"type": "text", "text": "for x"}]

    assert classify({"messages": [{"role": "user", "content": content}]}).intent == "math"


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"messages": None}, {"messages": [42]}])
def test_empty_or_odd_bodies_are_general(body: dict[str, Any]) -> None:
    assert classify(body).intent == "general"


# --- explain -------------------------------------------------------------------------------


def test_explain_strings() -> None:
    assert IntentResult("code", "metadata").explain() == "intent=code (from metadata)"
    assert IntentResult("general", "default").explain() == "intent=general (no signals)"
    assert IntentResult("vision", "structure", ("image part",)).explain() == (
        "intent=vision (image part)"
    )
    many = IntentResult("code", "text", ("code fence", "python", "shell", "sql"))
    assert many.explain() == "intent=code (code fence, python, shell)"  # three at most


def test_explain_of_a_classified_request() -> None:
    result = classify(user('Traceback (most recent call last):\n  File "x.py", line 1'))

    assert result.explain().startswith("intent=code (stack trace")


# --- long inputs ---------------------------------------------------------------------------


def test_a_500_kb_prompt_is_classified_from_its_head_and_tail() -> None:
    filler = "lorem ipsum dolor sit amet " * 20_000  # ~540 KB of nothing in particular
    head = "Here is the log from our build:\n"
    tail = '\nTraceback (most recent call last):\n  File "build.py", line 9\nValueError: bad'

    result = classify(user(head + filler + tail))

    assert len(filler) > 500_000
    assert result.intent == "code"
    assert "stack trace" in result.signals


def test_a_500_kb_prompt_full_of_signals_returns() -> None:
    prompt = ("```python\ndef f(x):\n    return x ** 2 = 0\n```\nwhy? " * 12_000)[:500_000]

    result = classify(
        {"messages": [{"role": "system", "content": prompt}, {"role": "user", "content": prompt}]}
    )

    assert result.intent in INTENTS
    assert all(score <= 50 for _, score in result.scores)  # each signal counts a few times


# --- the labelled set ----------------------------------------------------------------------


def test_labelled_set_accuracy() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines() if line.strip()]
    total: Counter[str] = Counter()
    right: Counter[str] = Counter()
    misses: list[str] = []
    for row in rows:
        got = classify(row["request"]).intent
        total[row["intent"]] += 1
        if got == row["intent"]:
            right[row["intent"]] += 1
        else:
            misses.append(f"{row['id']}→{got}")

    assert len(rows) >= 300
    assert set(total) == set(INTENTS)
    assert right["vision"] == total["vision"], misses
    assert right["agent"] == total["agent"], misses
    accuracy = sum(right.values()) / len(rows)
    assert accuracy >= 0.85, f"accuracy {accuracy:.3f}; misses: {misses}"
