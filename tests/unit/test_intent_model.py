"""The learned intent model as shipped: it loads from the package, reads clear prompts right
(phrasings written for this test, not lines from the training data), fixes the old rules'
known failures, explains itself, leaves the structural rules in charge, and is deterministic
and cheap."""

from __future__ import annotations

import time
from typing import Any

import pytest

from omen.routing import intent_model
from omen.routing.intent import classify, classify_text
from omen.routing.intent_model import CLASSES, MODEL_PATH, features, load, shipped


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_the_shipped_model_loads_from_package_data() -> None:
    model = shipped()

    assert MODEL_PATH.parent == __import__("pathlib").Path(intent_model.__file__).parent
    assert MODEL_PATH.stat().st_size < 8 * 1024 * 1024
    assert model.classes == CLASSES
    assert len(model.weights) > 5_000
    assert all(len(w) == len(CLASSES) + 1 for w in list(model.weights.values())[:100])


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Any) -> None:
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"not a model")

    with pytest.raises(ValueError, match="not an intent model"):
        load(bogus)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        (
            "My Flask endpoint returns 500 on POST.\n```python\n@app.post('/items')\n"
            "def add():\n    return request.json['name']\n```",
            "code",
        ),
        ("how do i get the last 3 lines of a file with tail in bash", "code"),
        (
            "Jenna buys four notebooks at three dollars each and pays with a twenty. "
            "How much change does she get?",
            "math",
        ),
        ("Find all real x such that x^2 - 7x + 12 = 0.", "math"),
        (
            "What if Newton had never published the Principia? How would physics have "
            "developed without it?",
            "reasoning",
        ),
        (
            "Kim is older than Lee. Lee is older than Max. Max is older than Ned. "
            "Who is the second oldest?",
            "reasoning",
        ),
        ("Write a short thank-you note to my neighbour for watering my plants.", "general"),
        ("Who was the first woman to win a Nobel Prize?", "general"),
    ],
)
def test_clear_prompts_of_each_intent(text: str, intent: str) -> None:
    result = classify(user(text))

    assert result.intent == intent, result
    assert result.source == "text"


def test_a_word_problem_without_symbols_is_math() -> None:
    text = (
        "A baker makes forty loaves each morning and sells all but six of them. "
        "How many loaves does she sell in a week?"
    )

    assert classify_text(text).intent == "math"


def test_series_in_prose_is_not_math() -> None:
    text = "I loved the first series of The Crown. Can you recommend a similar TV series?"

    assert classify_text(text).intent != "math"


def test_a_date_is_not_division() -> None:
    text = "My flight on 3/11/2002 was cancelled. Write a complaint letter to the airline."

    result = classify_text(text)

    assert result.intent != "math"
    assert "arithmetic" not in result.signals


def test_explanations_name_the_features_that_decided() -> None:
    result = classify_text(
        "Sam earns $18 per hour and works 35 hours a week. How much does he make in a month?"
    )

    assert result.intent == "math"
    assert 1 <= len(result.signals) <= 3
    assert result.explain().startswith("intent=math (")
    assert all(isinstance(s, str) and s for s in result.signals)


def test_a_code_fence_leads_the_explanation() -> None:
    result = classify_text("```python\nimport os\nprint(os.getcwd())\n```")

    assert result.intent == "code"
    assert result.signals[0] == "code fence"


def test_scores_are_probabilities_over_the_text_intents() -> None:
    result = classify_text("Prove that the product of two odd numbers is odd.")

    assert {name for name, _ in result.scores} == set(CLASSES)
    assert sum(p for _, p in result.scores) == pytest.approx(1.0, abs=1e-3)
    assert result.scores[0][0] == result.intent


def test_difficulty_is_a_probability_with_a_label() -> None:
    easy = classify_text("What is 7 plus 5?")
    hard = classify_text(
        r"Let $p$ be a prime with $p \equiv 1 \pmod 4$. Prove that $p$ can be written as a sum"
        r" of two squares, and find the number of ordered pairs $(a,b)$ with $a^2+b^2=p^3$."
    )

    assert 0.0 <= easy.difficulty <= 1.0 and 0.0 <= hard.difficulty <= 1.0
    assert easy.difficulty < hard.difficulty
    assert easy.difficulty_label == "easy" and hard.difficulty_label == "hard"


def test_structural_rules_still_win_and_leave_difficulty_unknown() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    math_text = "Solve 3x + 4 = 19 for x."

    vision = classify({"messages": [{"role": "user", "content": [image]}], "tools": [tool]})
    agent = classify({"tools": [tool], **user(math_text)})
    asked = classify({"metadata": {"intent": "general"}, **user(math_text)})

    assert (vision.intent, vision.difficulty_label, vision.difficulty) == ("vision", "unknown", 0.5)
    assert (agent.intent, agent.source) == ("agent", "structure")
    assert (asked.intent, asked.source) == ("general", "metadata")


def test_deterministic() -> None:
    text = "Should we rewrite the billing service in Go or keep Python? Weigh the risks."

    first, second = classify_text(text), classify_text(text)
    reloaded = load(MODEL_PATH).predict(features(text))

    assert first == second
    assert reloaded.intent == first.intent
    assert tuple(reloaded.signals) == first.signals


def test_unknown_words_only_are_general_by_default() -> None:
    result = classify_text("zzqx vprtl")

    assert (result.intent, result.source, result.signals) == ("general", "default", ())


def test_a_typical_prompt_classifies_well_under_a_millisecond() -> None:
    body = user("Write a Python function that merges two sorted lists, with tests.")
    classify(body)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        classify(body)
        times.append(time.perf_counter() - t0)

    assert sorted(times)[100] < 0.001
