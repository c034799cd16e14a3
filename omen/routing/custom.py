"""Intents the operator teaches in config: `[routing.intents.refactor] examples = [...]`,
`keywords = [...]`, routed like any other (`intents.refactor = "anthropic"`).

A prompt has a custom intent when it names one of its keywords (whole words, any case) or
reads like one of its examples: the cosine of word and word-pair counts against the nearest
example reaches `SIMILAR`. Built once per config load (start-up and reload), pure, and cheap
enough for the request path: a prompt is tokenised once, and only the examples sharing a word
with it are compared. Each match names its evidence — the keyword, or the nearest example.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from omen.routing.intent import IntentResult

SIMILAR = 0.45  # cosine to the nearest example that counts as "reads like it"
_WORD = re.compile(r"[a-z0-9][a-z0-9_'+#.-]*")
# Words too common to say anything about what a prompt is for.
_STOP_WORDS = (
    "a an the and or but if of to in on at for with by from as is are was were be been it "
    "its this that these those i you we they he she me my our your their please can could "
    "would should will do does did how what which who why when where there here into about "
    "so not no yes just some any all"
)
_STOP = frozenset(_STOP_WORDS.split())
_HEAD = 4000  # the start of a long prompt says what it is for


def _terms(text: str) -> Counter[str]:
    words = [w.strip(".'") for w in _WORD.findall(text[:_HEAD].lower())]
    words = [w for w in words if w and w not in _STOP]
    terms = Counter(words)
    terms.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    return terms


def _norm(terms: Counter[str]) -> float:
    return math.sqrt(sum(n * n for n in terms.values())) or 1.0


@dataclass(frozen=True, slots=True)
class _Example:
    intent: str
    text: str
    terms: Counter[str]
    norm: float


class CustomIntents:
    def __init__(self, definitions: Mapping[str, tuple[Iterable[str], Iterable[str]]]) -> None:
        """`definitions`: intent name → (examples, keywords)."""
        self.names = tuple(definitions)
        self._keywords: list[tuple[str, str, re.Pattern[str]]] = []
        self._examples: list[_Example] = []
        self._by_word: dict[str, list[int]] = {}
        for name, (examples, keywords) in definitions.items():
            for keyword in keywords:
                pattern = re.compile(r"(?<![\w-])" + re.escape(keyword.lower()) + r"(?![\w-])")
                self._keywords.append((name, keyword, pattern))
            for text in examples:
                terms = _terms(text)
                index = len(self._examples)
                self._examples.append(_Example(name, text, terms, _norm(terms)))
                for term in terms:
                    if " " not in term:
                        self._by_word.setdefault(term, []).append(index)

    def __bool__(self) -> bool:
        return bool(self._keywords or self._examples)

    def match(self, text: str) -> IntentResult | None:
        """The custom intent this text has, with its evidence, or None."""
        if not text:
            return None
        lower = text[:_HEAD].lower()
        for name, keyword, pattern in self._keywords:
            if pattern.search(lower):
                return IntentResult(name, "custom", (f"keyword {keyword!r}",))
        if not self._examples:
            return None
        terms = _terms(text)
        shared = {i for term in terms if " " not in term for i in self._by_word.get(term, ())}
        if not shared:
            return None
        norm = _norm(terms)
        best, best_score = None, 0.0
        for index in shared:
            example = self._examples[index]
            dot = sum(n * example.terms.get(t, 0) for t, n in terms.items())
            score = dot / (norm * example.norm)
            if score > best_score:
                best, best_score = example, score
        if best is None or best_score < SIMILAR:
            return None
        quoted = best.text if len(best.text) <= 40 else best.text[:39] + "…"
        return IntentResult(
            best.intent,
            "custom",
            (f"like {quoted!r} ({best_score:.2f})",),
            ((best.intent, best_score),),
        )
