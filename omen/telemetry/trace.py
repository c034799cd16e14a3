"""W3C trace context: continue the client's trace, hand it to the upstream, name it in the store.

The HTTP layer parses `traceparent` (or starts a trace when there is none) and sets the
request's context; the provider transport adds `traceparent`/`tracestate` to every upstream
call made under it — stream pumps too, since tasks copy the context they start in.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str  # 32 hex
    span_id: str  # 16 hex: Omen's own span, the upstream call's parent
    flags: str = "01"
    state: str | None = None

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> dict[str, str]:
        headers = {"traceparent": self.traceparent()}
        if self.state:
            headers["tracestate"] = self.state
        return headers


current: ContextVar[TraceContext | None] = ContextVar("omen_trace", default=None)


def _hex(value: str, length: int) -> bool:
    if len(value) != length or value == "0" * length:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


def continue_trace(traceparent: str | None, tracestate: str | None = None) -> TraceContext:
    """The client's trace with a new span for Omen, or a new trace if none (or malformed)."""
    span = os.urandom(8).hex()
    if traceparent:
        parts = traceparent.strip().lower().split("-")
        if len(parts) >= 4 and parts[0] != "ff" and _hex(parts[1], 32) and _hex(parts[2], 16):
            flags = parts[3][:2] if len(parts[3]) >= 2 else "01"
            return TraceContext(parts[1], span, flags, tracestate or None)
    return TraceContext(os.urandom(16).hex(), span)


def upstream_headers() -> dict[str, str]:
    context = current.get()
    return context.headers() if context is not None else {}
