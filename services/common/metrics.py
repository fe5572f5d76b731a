"""Prometheus metrics. Each service serves them on ZQ_METRICS_PORT (0 = off, the local default:
several services share one host there; Kubernetes sets 9100).

Every metric is defined here, once, so the alert rules and the dashboard in `deploy/monitoring/` can
be checked against this catalogue (tests/unit/deploy/test_monitoring.py). What a service updates per
run or per call is an O(1) counter or histogram step; what needs a look over a collection (slots,
pool connections, connected executors) is a gauge computed by a function when Prometheus scrapes,
on the metrics server's thread, never on an event loop.

Names follow Prometheus conventions: `_seconds` for durations, `_total` for counters; a label's
values are from a small fixed set (methods, statuses, task types, reasons), never ids.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication as WSGIApp

log = logging.getLogger(__name__)

# Buckets for run-sized durations: a run can take milliseconds or hours.
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

# -- gRPC (every service) ---------------------------------------------------------------------------
RPC_DURATION = Histogram(
    "zq_rpc_duration_seconds",
    "Server-side duration of unary gRPC calls",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STREAM_DURATION = Histogram(
    "zq_stream_duration_seconds",
    "Server-side lifetime of server-streaming gRPC calls (watch streams, the change feed, runs)",
    ["method", "code"],
    buckets=(0.01, 0.1, 1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
STREAMS_ACTIVE = Gauge("zq_streams_active", "Server-streaming gRPC calls open now", ["method"])

# -- scheduler --------------------------------------------------------------------------------------
SCHEDULER_IS_LEADER = Gauge(
    "zq_scheduler_is_leader", "1 while this scheduler replica holds the leadership and runs the engine"
)
FIRES = Counter("zq_scheduler_fires_total", "Planned fire times handled by the scheduler", ["outcome"])
FIRE_LATENESS = Histogram(
    "zq_scheduler_fire_lateness_seconds",
    "Planned fire time to the scheduler handling it",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
PENDING_RUNS = Gauge(
    "zq_scheduler_pending_runs", "Runs the scheduler holds that are waiting for an executor or their due time"
)
ACTIVE_RUNS = Gauge("zq_scheduler_active_runs", "Runs the scheduler is relaying from executors")
EXECUTORS_CONNECTED = Gauge(
    "zq_executors_connected",
    "Executors the scheduler may dispatch to now (known, and not passed over after a refusal or failure)",
)
RUN_START_DELAY = Histogram(
    "zq_run_start_delay_seconds",
    "Planned time (fire time, retry due time, or creation of a manual run) to an executor accepting it",
    ["task_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUN_DURATION = Histogram(
    "zq_run_duration_seconds",
    "Executor accepting a run to its end, as the scheduler saw it",
    ["task_type", "status"],
    buckets=_RUN_BUCKETS,
)
LOST_EXECUTOR_RUNS = Counter(
    "zq_executor_lost_total",
    "Runs failed because their executor was lost: silent (no heartbeat), stream_ended, unreachable "
    "(scheduler), lease_expired (registry reaper)",
    ["reason"],
)

# -- registry ---------------------------------------------------------------------------------------
TRIGGER_OFFERS = Counter(
    "zq_registry_trigger_offers_total",
    "Manual triggers offered to the scheduler, by its answer: accepted (the run was created running on "
    "the executor it named), declined (no room, a workflow: created pending), expired (no answer in "
    "25 ms: created pending); withdrawn counts accepted answers the trigger had not taken within 1 s "
    "(stuck behind a lock: created pending)",
    ["outcome"],
)
RUNS_FINISHED = Counter("zq_runs_finished_total", "Executions that reached a final state", ["status"])
RETRIES = Counter(
    "zq_run_retries_total",
    "Retries created for failed runs, by why the run failed: lost_executor, timeout, failed, handed_back "
    "(an executor's drain outlasted; not counted against max_retries)",
    ["reason"],
)
DB_QUERY_DURATION = Histogram(
    "zq_db_query_duration_seconds",
    "Duration of database statements, by kind (select, insert, update, delete, other)",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_POOL_CONNECTIONS = Gauge(
    "zq_db_pool_connections", "Database connections of the pool: in_use, idle, and the pool's size", ["state"]
)
# Only a registry with a cluster bus (PostgreSQL) exports these; the label has one value so that a
# registry without one exports no sample at all (an alert on "0" would fire on every SQLite setup).
CLUSTER_BUS_CONNECTED = Gauge(
    "zq_cluster_bus_connected", "1 while the registry's cluster bus listens (LISTEN/NOTIFY)", ["transport"]
)
CLUSTER_BUS_BACKLOG = Gauge(
    "zq_cluster_bus_backlog", "Events queued for the other registry replicas, not yet sent", ["transport"]
)

# -- executor ---------------------------------------------------------------------------------------
EXECUTOR_SLOTS = Gauge(
    "zq_executor_slots",
    "Job slots of this executor: busy (running a job), free (may take one), draining (free but refused "
    "while stopping)",
    ["state"],
)
EXECUTOR_DRAINING = Gauge("zq_executor_draining", "1 while this executor refuses new runs to stop")
# The last day a trading calendar's session data covers (its end, 24:00 UTC), as a Unix time: alert on
# `zq_calendar_data_end_timestamp_seconds - time() < 30 * 86400` (30 days before it runs out).
CALENDAR_DATA_END = Gauge(
    "zq_calendar_data_end_timestamp_seconds",
    "End of the session data of each trading calendar a task of this scheduler uses",
    ["calendar"],
)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def with_readiness(metrics: WSGIApp, ready: Callable[[], bool]) -> WSGIApp:
    """`metrics`, and GET /ready: 200 while `ready()`, else 503."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/ready":
            return metrics(environ, start_response)
        answer = ready()
        start_response("200 OK" if answer else "503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"ready\n" if answer else b"not ready\n"]

    return app


def serve_metrics(host: str, port: int, ready: Callable[[], bool] | None = None) -> None:
    """/metrics on host:port (nothing when port is 0), and with `ready` also /ready (the registry's:
    Envoy's health check), from a thread named "metrics" that sleeps until a request arrives.
    prometheus_client's own server wakes every 0.5 s to look for a shutdown that never comes here:
    about 0.2 ms/s in each process of an idle stack."""
    if port <= 0:
        return
    app = make_wsgi_app() if ready is None else with_readiness(make_wsgi_app(), ready)

    class Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    # None: select() without a timeout (typeshed says float; socketserver hands it to select()).
    serve = functools.partial(server.serve_forever, poll_interval=None)  # type: ignore[arg-type]
    threading.Thread(target=serve, name="metrics", daemon=True).start()
    log.info("metrics on /metrics", extra={"address": f"{host}:{port}"})
