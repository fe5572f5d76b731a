"""Prometheus metrics. Each service serves them on ZQ_METRICS_PORT (0 = off, the local default:
several services share one host there; Kubernetes sets 9100)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RPC_DURATION = Histogram(
    "zq_rpc_duration_seconds",
    "Server-side duration of gRPC calls",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
FIRES = Counter("zq_scheduler_fires_total", "Planned fire times handled by the scheduler", ["outcome"])
FIRE_LATENESS = Histogram(
    "zq_scheduler_fire_lateness_seconds",
    "Planned fire time to the scheduler handling it",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
RUNS_FINISHED = Counter("zq_runs_finished_total", "Executions that reached a final state", ["status"])
PENDING_RUNS = Gauge(
    "zq_scheduler_pending_runs", "Runs the scheduler holds that are waiting for an executor or their due time"
)
ACTIVE_RUNS = Gauge("zq_scheduler_active_runs", "Runs the scheduler is relaying from executors")
EXECUTOR_SLOTS_IN_USE = Gauge("zq_executor_slots_in_use", "Jobs running on this executor")
EXECUTOR_SLOTS = Gauge("zq_executor_slots", "Maximum concurrent jobs of this executor")


def serve_metrics(host: str, port: int) -> None:
    if port <= 0:
        return
    start_http_server(port, addr=host)
    log.info("metrics on /metrics", extra={"address": f"{host}:{port}"})
