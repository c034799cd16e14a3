"""Learning from outcomes (`routing.adaptive`): the options that meet the quality threshold are
reordered by what happened after earlier decisions for the same container and intent.

An option's value is its reliability — answers that were not errors and did not make the
request move on, with a prior of two good answers — times the clients' satisfaction — the mean
feedback score, with a prior of two verdicts at 0.75. Options whose values fall in the same
`BAND` keep the strategy's order (a cheaper model is not dropped for a rounding error), and an
option with fewer than `MIN_EVIDENCE` outcomes counts at the priors' value (as a model with a
clean record and no feedback does): the strategy's word stands until there is something to
learn from, and feedback can lift a model above that. A share `explore` of requests puts
another option that meets the threshold first, so a model that had a bad hour can earn its
place back. Pure: the caller passes the statistics and the random draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from omen.routing.strategies import Option

MIN_EVIDENCE = 5
BAND = 0.1


@dataclass(frozen=True, slots=True)
class Outcome:
    requests: int = 0
    errors: int = 0
    escalations: int = 0
    latency_ms_sum: float = 0.0
    feedback_n: int = 0
    feedback_sum: float = 0.0

    @property
    def reliability(self) -> float:
        bad = min(self.requests, max(self.errors, self.escalations))
        return (self.requests - bad + 2) / (self.requests + 2)

    @property
    def satisfaction(self) -> float:
        return (self.feedback_sum + 1.5) / (self.feedback_n + 2)

    @property
    def value(self) -> float:
        return self.reliability * self.satisfaction

    @property
    def evidence(self) -> int:
        return self.requests + self.feedback_n

    def describe(self) -> str:
        words = (
            [f"ok {1 - self.errors / self.requests:.0%} of {self.requests}"]
            if self.requests
            else []
        )
        if self.feedback_n:
            words.append(f"feedback {self.feedback_sum / self.feedback_n:.2f} of {self.feedback_n}")
        return ", ".join(words) or "no outcomes yet"


_UNKNOWN = Outcome()


def adapt(
    ranked: list[Option],
    outcomes: Mapping[tuple[str, str], Outcome],
    *,
    quality_threshold: float,
    explore: float,
    draw: float,
    pick: float,
) -> tuple[list[Option], str]:
    """`ranked` reordered by outcomes within the threshold, and the words for the reason
    ("" when nothing changed). `draw` and `pick` are uniform in [0, 1)."""
    good = [o for o in ranked if o.quality >= quality_threshold]
    if len(good) < 2:
        return ranked, ""
    if draw < explore:
        choice = good[1 + min(len(good) - 2, int(pick * (len(good) - 1)))]
        return (
            [choice, *(o for o in ranked if o is not choice)],
            f"adaptive: exploring {choice.provider}/{choice.model} ({explore:.0%} of requests)",
        )

    def band(option: Option) -> int:
        seen = outcomes.get((option.provider, option.model))
        if seen is None or seen.evidence < MIN_EVIDENCE:
            seen = _UNKNOWN  # the priors alone, until there is enough to go on
        return math.floor(seen.value / BAND + 1e-9)

    learnt = sorted(good, key=lambda o: -band(o))  # stable: the strategy's order within a band
    moved = next((i for i, (a, b) in enumerate(zip(learnt, good, strict=True)) if a is not b), None)
    if moved is None:
        return ranked, ""
    slots = iter(learnt)
    reordered = [next(slots) if o.quality >= quality_threshold else o for o in ranked]
    first, passed = learnt[moved], good[moved]
    seen_first = outcomes.get((first.provider, first.model), Outcome())
    seen_passed = outcomes.get((passed.provider, passed.model), Outcome())
    return reordered, (
        f"adaptive: {first.provider}/{first.model} ({seen_first.describe()}) over "
        f"{passed.provider}/{passed.model} ({seen_passed.describe()})"
    )
