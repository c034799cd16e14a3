"""The daemon's copy of the outcome statistics (`routing.adaptive`) and of recent requests'
routes, for `POST /v1/feedback`.

The store keeps the statistics by trigger (store.rollups) from the same rows; this copy is
read from it at start-up and follows each recorded request in memory, so routing never waits
on the disk. `observe` counts exactly what the trigger counts.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from omen.routing.adaptive import Outcome
from omen_store import OutcomeRow

_RECENT = 50_000  # request ids whose route is remembered for feedback without a store read


@dataclass(frozen=True, slots=True)
class Route:
    """What one request was routed to, as feedback must credit it."""

    container: str
    intent: str
    provider: str
    model: str


class OutcomeBook:
    def __init__(self) -> None:
        self._stats: dict[tuple[str, str], dict[tuple[str, str], Outcome]] = {}
        self._recent: OrderedDict[str, Route] = OrderedDict()
        self._verdicts: OrderedDict[str, float] = OrderedDict()

    def load(self, rows: Iterable[OutcomeRow]) -> None:
        for row in rows:
            self._stats.setdefault((row.container, row.intent), {})[(row.provider, row.model)] = (
                Outcome(
                    row.requests,
                    row.errors,
                    row.escalations,
                    row.latency_ms_sum,
                    row.feedback_n,
                    row.feedback_sum,
                )
            )

    def view(self, container: str, intent: str) -> Mapping[tuple[str, str], Outcome]:
        return self._stats.get((container, intent), {})

    def observe(
        self,
        request_id: str,
        container: str,
        intent: str | None,
        kind: str,
        attempts: Iterable[Mapping[str, Any]],
    ) -> None:
        """Count one recorded request's attempts (see store.rollups.OUTCOME_TRIGGER)."""
        if intent is None or kind in ("embeddings", "count_tokens"):
            return
        tries = [a for a in attempts if a.get("status") != 499 and a.get("provider")]
        table = self._stats.setdefault((container, intent), {})
        for index, attempt in enumerate(tries):
            key = (str(attempt["provider"]), str(attempt["model"]))
            status = int(attempt["status"])
            failed = status >= 429
            seen = table.get(key, Outcome())
            table[key] = replace(
                seen,
                requests=seen.requests + 1,
                errors=seen.errors + failed,
                escalations=seen.escalations + (failed and index < len(tries) - 1),
                latency_ms_sum=seen.latency_ms_sum
                + (float(attempt.get("ms") or 0) if status < 400 else 0.0),
            )
            if not failed and status < 400:
                self.remember(request_id, Route(container, intent, key[0], key[1]))

    def remember(self, request_id: str, route: Route) -> None:
        self._recent[request_id] = route
        self._recent.move_to_end(request_id)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def route_of(self, request_id: str) -> Route | None:
        return self._recent.get(request_id)

    def verdict(self, request_id: str) -> float | None:
        """The last feedback score given here for a request (since start-up)."""
        return self._verdicts.get(request_id)

    def feedback(self, request_id: str, route: Route, score: float, previous: float | None) -> None:
        """A verdict on an answer; `previous` is the one it replaces, if any."""
        self._verdicts[request_id] = score
        self._verdicts.move_to_end(request_id)
        while len(self._verdicts) > _RECENT:
            self._verdicts.popitem(last=False)
        table = self._stats.setdefault((route.container, route.intent), {})
        seen = table.get((route.provider, route.model), Outcome())
        if previous is None:
            seen = replace(
                seen, feedback_n=seen.feedback_n + 1, feedback_sum=seen.feedback_sum + score
            )
        else:
            seen = replace(seen, feedback_sum=seen.feedback_sum + score - previous)
        table[(route.provider, route.model)] = seen

    def rows(self) -> list[tuple[str, str, str, str, Outcome]]:
        """Everything learnt, for the console and tests."""
        return [
            (container, intent, provider, model, outcome)
            for (container, intent), table in sorted(self._stats.items())
            for (provider, model), outcome in sorted(table.items())
        ]
