"""What a request is for (code, reasoning, vision, math, agent, general), which signals said so,
and how hard it looks.

`metadata.intent` from the client always wins. Otherwise the structure decides first (an image
part is vision, tool definitions or tool messages are an agent loop), then a small learned model
(omen/routing/intent_model.py) reads the last user message, and weakly the system prompt. The
features that pushed hardest toward the answer are named, so the route reason can say
`intent=math ("how much", $ amount, "per hour")`. Pure Python over a bounded slice of the text:
well under a millisecond on a typical request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omen.routing.intent_model import HEAD_CHARS, TAIL_CHARS, features, shipped

INTENTS = ("code", "reasoning", "vision", "math", "agent", "general")

# Long prompts are judged by their head and tail: that is where the ask and the pasted
# material's nature show, and it keeps the cost flat for 100 KB contexts.
_HEAD, _TAIL = HEAD_CHARS, TAIL_CHARS


@dataclass(frozen=True, slots=True)
class IntentResult:
    intent: str
    source: str  # "metadata" | "structure" | "text" | "default"
    signals: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()  # text intents by probability, highest first
    difficulty: float = 0.5  # 0 easy .. 1 hard; 0.5 when not judged
    difficulty_label: str = "unknown"  # "easy" | "hard" | "unknown"

    def explain(self) -> str:
        if self.source == "metadata":
            return f"intent={self.intent} (from metadata)"
        if not self.signals:
            return f"intent={self.intent} (no signals)"
        return f"intent={self.intent} ({', '.join(self.signals[:3])})"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") in ("image_url", "image", "input_image")
        for p in content
    )


def has_images(messages: list[Any]) -> bool:
    return any(isinstance(m, dict) and _has_image(m.get("content")) for m in messages)


def _bounded(text: str) -> str:
    if len(text) <= _HEAD + _TAIL:
        return text
    return text[:_HEAD] + "\n" + text[-_TAIL:]


def classify(body: dict[str, Any]) -> IntentResult:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("intent"), str):
        asked = metadata["intent"].strip().lower()
        if asked:
            return IntentResult(asked, "metadata")
    messages = body.get("messages") or []
    if has_images(messages):
        return IntentResult("vision", "structure", ("image part",))
    if body.get("tools") or body.get("functions"):
        return IntentResult("agent", "structure", ("tool definitions",))
    for message in messages:
        if isinstance(message, dict) and (
            message.get("role") in ("tool", "function") or message.get("tool_calls")
        ):
            return IntentResult("agent", "structure", ("tool messages",))
    system = " ".join(
        _text_of(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )
    last_user = next(
        (
            _text_of(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    return classify_text(_bounded(last_user), _bounded(system))


def classify_text(text: str, system: str = "") -> IntentResult:
    """The learned model's reading of a prompt (and, more weakly, its system prompt)."""
    prediction = shipped().predict(features(text, system))
    if not prediction.known:
        return IntentResult("general", "default", (), prediction.probabilities)
    hard = prediction.difficulty
    return IntentResult(
        prediction.intent,
        "text",
        prediction.signals,
        tuple((c, round(p, 4)) for c, p in prediction.probabilities),
        round(hard, 3),
        "hard" if hard >= 0.5 else "easy",
    )
