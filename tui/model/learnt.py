"""What routing learnt (`routing.adaptive`): the store's outcome statistics per container,
intent and model, with the value the router reorders options by.

The console may not import the router, so the two formulas are written out here;
tests/tui/test_learning_views.py pins them to `omen.routing.adaptive.Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass

from omen_store import OutcomeRow, StoreReader

MIN_EVIDENCE = 5  # outcomes (requests + verdicts) before routing goes by them, not the priors
PRIOR_VALUE = 0.75  # what an option counts at until then: reliability 1 × satisfaction 0.75


@dataclass(frozen=True, slots=True)
class Learnt:
    """One (container, intent, provider, model): its outcomes and what they are worth."""

    container: str
    intent: str
    provider: str
    model: str
    requests: int
    errors: int
    escalations: int
    latency_ms_sum: float
    feedback_n: int
    feedback_sum: float
    updated: float

    @property
    def route(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def reliability(self) -> float:
        """Answers that were neither errors nor moved on from, with a prior of two good ones."""
        bad = min(self.requests, max(self.errors, self.escalations))
        return (self.requests - bad + 2) / (self.requests + 2)

    @property
    def satisfaction(self) -> float:
        """The clients' mean verdict, with a prior of two verdicts at 0.75."""
        return (self.feedback_sum + 1.5) / (self.feedback_n + 2)

    @property
    def value(self) -> float:
        return self.reliability * self.satisfaction

    @property
    def evidence(self) -> int:
        return self.requests + self.feedback_n

    @property
    def enough(self) -> bool:
        """Whether routing goes by this value; below MIN_EVIDENCE it counts at the priors'."""
        return self.evidence >= MIN_EVIDENCE

    @property
    def ok_share(self) -> float | None:
        return 1 - self.errors / self.requests if self.requests else None

    @property
    def feedback_mean(self) -> float | None:
        return self.feedback_sum / self.feedback_n if self.feedback_n else None


def learnt(row: OutcomeRow) -> Learnt:
    return Learnt(
        row.container,
        row.intent,
        row.provider,
        row.model,
        row.requests,
        row.errors,
        row.escalations,
        row.latency_ms_sum,
        row.feedback_n,
        row.feedback_sum,
        row.updated,
    )


def ordered(rows: list[Learnt]) -> list[Learnt]:
    """By container, intent, then the best value first: the order the router would try."""
    return sorted(rows, key=lambda r: (r.container, r.intent, -r.value, r.provider, r.model))


def read_learnt(reader: StoreReader) -> list[Learnt]:
    """Every outcome row in the store (one per container, intent and model: a few hundred)."""
    return ordered([learnt(row) for row in reader.outcomes()])


# -- the table's columns -------------------------------------------------------------------

FIXED = {"requests": 5, "ok": 4, "escalations": 3, "feedback": 9, "value": 5, "enough": 6}
NAMES = ("container", "intent", "route")  # flexible: room goes to them in this order
MINIMUM = {"container": 6, "intent": 6, "route": 12}
CAPS = {"container": 16, "intent": 14, "route": 44}  # longer names are middle-elided
LEAST = sum(FIXED.values()) + sum(MINIMUM.values()) + len(FIXED) + len(NAMES)  # 65 cells


def widths(room: int, widest: dict[str, int]) -> dict[str, int]:
    """Content widths of the learnt table for `room` cells, each column followed by a one-cell
    gap: the figures keep theirs, the names share the rest up to what they need (their
    longest value or label, capped), in NAMES order; a wide terminal leaves the rest empty."""
    left = room - sum(FIXED.values()) - len(FIXED) - len(NAMES)
    sized = dict(MINIMUM)
    left -= sum(sized.values())
    for name in NAMES:
        want = max(MINIMUM[name], min(widest.get(name, 0), CAPS[name]))
        extra = max(0, min(left, want - sized[name]))
        sized[name] += extra
        left -= extra
    return {**{name: sized[name] for name in NAMES}, **FIXED}
