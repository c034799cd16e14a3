"""Optional OpenTelemetry spans: routing, limits, the upstream call, the store write.

Off unless the OpenTelemetry SDK is installed (`pip install 'omen[otel]'`) and an exporter is
configured the standard way (`OTEL_EXPORTER_OTLP_ENDPOINT`, or `OTEL_TRACES_EXPORTER=console`).
Spans join the request's W3C trace (omen.telemetry.trace), so the operator's tracing backend
shows client → Omen → provider as one trace. Without the SDK every call here is a no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omen.telemetry import trace as w3c

log = logging.getLogger("omen.otel")

try:  # the SDK is an optional extra
    from opentelemetry import trace as ot_trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
except ImportError:  # pragma: no cover - exercised where the extra is absent
    ot_trace = None  # type: ignore[assignment]


class Tracing:
    def __init__(self, tracer: Any | None) -> None:
        self.tracer = tracer

    @classmethod
    def from_environment(cls) -> Tracing:
        """Spans only when the SDK is here and an exporter is configured."""
        if ot_trace is None:
            return cls(None)
        exporter = os.environ.get("OTEL_TRACES_EXPORTER", "")
        if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or exporter):
            return cls(None)
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

            provider = TracerProvider()
            if exporter == "console":
                processor = BatchSpanProcessor(ConsoleSpanExporter())
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                processor = BatchSpanProcessor(OTLPSpanExporter())
            provider.add_span_processor(processor)
            ot_trace.set_tracer_provider(provider)
        except ImportError as exc:
            log.warning("OpenTelemetry exporter unavailable, no spans: %s", exc)
            return cls(None)
        return cls(ot_trace.get_tracer("omen"))

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        if self.tracer is None or ot_trace is None:
            yield None
            return
        context = None
        request = w3c.current.get()
        if request is not None:
            parent = SpanContext(
                trace_id=int(request.trace_id, 16),
                span_id=int(request.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(request.flags, 16)),
            )
            context = ot_trace.set_span_in_context(NonRecordingSpan(parent))
        clean = {k: v for k, v in attributes.items() if v is not None}
        with self.tracer.start_as_current_span(name, context=context, attributes=clean) as span:
            yield span


NO_TRACING = Tracing(None)
