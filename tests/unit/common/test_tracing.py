"""Tracing is off unless the standard OpenTelemetry variables ask for it (services/common/tracing.py);
off, it makes no spans, adds no interceptors and puts no ids on log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.common import tracing
from services.common.logging import JsonFormatter, RequestIdFilter


@pytest.mark.parametrize(
    ("environ", "endpoint"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, "http://collector:4317"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317",
            },
            "http://traces:4317",
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "http://localhost:4317"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, None),
    ],
)
def test_the_otlp_endpoint_comes_from_the_standard_variables(
    environ: dict[str, str], endpoint: str | None
) -> None:
    assert tracing.otlp_endpoint(environ) == endpoint


def test_without_an_endpoint_tracing_stays_off_and_costs_nothing() -> None:
    assert not tracing.configure_tracing("test", {})
    assert not tracing.enabled()
    assert tracing.server_interceptors() == []
    assert tracing.client_interceptors() is None
    assert tracing.current_traceparent() == ""
    with tracing.span("nothing", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        assert tracing.log_ids() is None
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("tests.tracing")
    logger.addHandler(handler)
    try:
        logger.warning("untraced")
    finally:
        logger.removeHandler(handler)
    assert "trace_id" not in json.loads(out.getvalue())


def test_a_traceparents_trace_id_is_its_second_field_and_anything_else_has_none() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.trace_id_of(f"00-{trace}-00f067aa0ba902b7-01") == trace
    assert tracing.trace_id_of("") == tracing.trace_id_of(None) == ""
    assert tracing.trace_id_of("00-short-00f067aa0ba902b7-01") == ""
