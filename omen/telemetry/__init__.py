"""Telemetry: Prometheus metrics, W3C trace context, optional OpenTelemetry spans."""
