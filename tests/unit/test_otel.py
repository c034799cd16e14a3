"""Optional OpenTelemetry spans join the client's W3C trace; without an exporter they are off."""

from __future__ import annotations

import pytest

from omen.telemetry import trace as w3c
from omen.telemetry.otel import NO_TRACING, Tracing

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")


def test_spans_continue_the_clients_trace() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("omen"))
    context = w3c.continue_trace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    token = w3c.current.set(context)
    try:
        with tracing.span("omen.route", container="app", model=None):
            pass
    finally:
        w3c.current.reset(token)
    (span,) = exporter.get_finished_spans()
    assert span.name == "omen.route"
    assert f"{span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent is not None and f"{span.parent.span_id:016x}" == context.span_id
    assert dict(span.attributes or {}) == {"container": "app"}  # None values are dropped


def test_without_an_exporter_spans_are_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert Tracing.from_environment().tracer is None
    with NO_TRACING.span("omen.route") as span:
        assert span is None


def test_malformed_or_missing_traceparent_starts_a_new_trace() -> None:
    for header in (None, "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "ff-abc"):
        context = w3c.continue_trace(header)
        assert len(context.trace_id) == 32 and context.trace_id != "0" * 32
    kept = w3c.continue_trace("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "a=1")
    assert (kept.trace_id, kept.flags, kept.state) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00",
        "a=1",
    )
    assert kept.headers() == {"traceparent": kept.traceparent(), "tracestate": "a=1"}
