"""FakeState: everything one fake upstream knows — its models, key, script, what it was sent,
and how many inference requests it is serving right now.

The fake's server thread writes it; the test's thread reads it and sets the script.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.behaviour import Script


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. ``headers`` keys are lower-case; ``json`` is the
    parsed body, or ``None`` when the body was empty or not JSON."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class FakeState:
    """The state of one fake upstream.

    ``models`` empty means "any model exists". ``loaded`` is what Ollama's ``/api/ps`` lists.
    ``api_key=None`` accepts any (or no) key. ``record=False`` skips request recording, for
    benchmarks. ``in_flight``/``max_in_flight``/``served`` count inference requests only
    (chat and embeddings), not model listings or health probes.
    """

    models: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    api_key: str | None = None
    script: Script = field(default_factory=Script)
    record: bool = True
    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    served: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def remember(self, request: RecordedRequest) -> None:
        """Keep ``request`` for the test to inspect (no-op when ``record`` is off)."""
        if self.record:
            with self._lock:
                self.requests.append(request)

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.served += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def request_finished(self) -> None:
        with self._lock:
            self.in_flight -= 1

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent recorded request; raises ``IndexError`` when there is none."""
        with self._lock:
            return self.requests[-1]

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path equals ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        """Forget recorded requests and counters (not models, key or script)."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight
            self.served = 0
