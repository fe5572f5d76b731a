"""OpenTelemetry tracing: one trace from a REST call through Envoy, the registry, the scheduler and
the executor to the job's log lines. Off unless configured; when off nothing here runs on a call.

Turned on by the standard OpenTelemetry environment (read by the SDK itself):

- `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (e.g.
  `http://otel-collector:4317`): spans are exported over OTLP/gRPC (batched; the `OTEL_BSP_*`
  variables tune the batches, `OTEL_EXPORTER_OTLP_*` the exporter: headers, timeout, TLS);
- or `OTEL_TRACES_EXPORTER=otlp` with the exporter's default endpoint (localhost:4317);
- `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` turn it off even with an endpoint.
`OTEL_SERVICE_NAME` names the service (default `zquant-<service>`); `OTEL_RESOURCE_ATTRIBUTES` adds
resource attributes; `OTEL_TRACES_SAMPLER(_ARG)` picks the sampler (default: parent-based, always).

How the trace travels (W3C `traceparent`):

- Envoy starts the trace (or continues the client's `traceparent`) and passes it on to the registry
  as a header, which gRPC hands on as metadata (gateway/render.py renders Envoy's OpenTelemetry
  tracer from the same variables);
- every gRPC server span is made by the OpenTelemetry gRPC instrumentation's server interceptor
  (services/common/server.py), every client call of the scheduler carries the current context
  (its client interceptors, services/scheduler/clients.py);
- a manual trigger reaches the scheduler as a feed event, not a call: the registry stores the
  trigger's `traceparent` on the run's record (Execution.traceparent; a retry keeps its failed
  run's), and whichever scheduler drives the run (the one the event reached, or a new leader that
  picks it up from the database or re-attaches to it after a failover) runs it under a span
  continuing it (services/scheduler/dispatch.py). A scheduled fire starts its trace in the
  scheduler (a `fire` span) and creates its run with it stored, as a workflow does its nodes;
- the executor's job runs inside its `Run` call's span; command jobs get `TRACEPARENT` in their
  environment (the OpenTelemetry convention for processes);
- every JSON log line written inside a span carries `trace_id` and `span_id` next to `request_id`
  (services/common/logging.py).

Health checks and reflection make no spans (Envoy's health checks would drown the traces).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None
_provider: Any = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


# The variables otlp_endpoint reads.
OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def otlp_endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP endpoint traces go to, or None when tracing is off (see the module doc)."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return None
    exporters = [e.strip() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if "none" in exporters:
        return None
    endpoint = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )
    if endpoint:
        return endpoint
    return "http://localhost:4317" if "otlp" in exporters else None


def enabled() -> bool:
    return _tracer is not None


def configure_tracing(service: str, environ: Mapping[str, str] | None = None, exporter: Any = None) -> bool:
    """Sets up the SDK with the OTLP exporter when the environment asks for it; returns whether
    tracing is on. Call once, at start, before the server and channels are made. `exporter`: a
    span exporter to use instead of OTLP (a unit test's in-memory one)."""
    global _tracer, _provider
    env = os.environ if environ is None else environ
    endpoint = otlp_endpoint(env)
    if endpoint is None:
        return False
    # Imported only when on: the SDK and the exporter cost nothing to a service that does not trace.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = env.get("OTEL_SERVICE_NAME", "").strip() or f"zquant-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("zquant.scheduler")
    log.info("tracing on", extra={"otlp_endpoint": endpoint, "service_name": name})
    return True


def shutdown_tracing() -> None:
    """Exports what is still batched (at stop)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def _traced_method(method: str | bytes) -> bool:
    name = method.decode() if isinstance(method, bytes) else method
    return not name.startswith(("/grpc.health.", "/grpc.reflection."))


def server_interceptors() -> list[Any]:
    """The gRPC instrumentation's server interceptor when tracing is on (else none)."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(filter_=lambda details: _traced_method(details.method))]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any] | None:
    """The gRPC instrumentation's client interceptors when tracing is on (else None, as
    grpc.aio.insecure_channel's `interceptors` default)."""
    if not enabled():
        return None
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(filter_=lambda details: _traced_method(details.method)))  # type: ignore[no-untyped-call]


def current_traceparent() -> str:
    """The W3C traceparent of the current span ("" when tracing is off or no span is current)."""
    if not enabled():
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def trace_id_of(traceparent: str | None) -> str:
    """The trace id of a W3C traceparent (version-traceid-spanid-flags); "" for none or a malformed one."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return ""


@contextlib.contextmanager
def span(name: str, traceparent: str = "", **attributes: str | int) -> Iterator[None]:
    """A span for `name` made current, continuing `traceparent` when given (a new trace
    otherwise); does nothing when tracing is off."""
    if _tracer is None:
        yield
        return
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else None
    with _tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span in hex, for log lines; None when there is none."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
