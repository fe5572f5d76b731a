"""Tracing end to end (services/common/tracing.py): a stack whose services and Envoy export to an
OTLP collector run here (a real gRPC TraceService server); one REST trigger makes one trace with
spans from the gateway, the registry, the scheduler and the executor, the services' log lines
about the run (and the gateway's access log line) carry its trace id next to the request id, and
the job itself gets `TRACEPARENT`; a run the next scheduler leader re-attaches to after a failover
stays in its trigger's trace (the trace is stored on the run, Execution.traceparent); and a
backfill's runs are all in the trace of the call that asked for it.

One stack on SQLite: the propagation does not depend on the backend, and the cluster bus carries
the feed event whole (tests/unit/registry/live/test_cluster.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from stack import Stack
from tests.conftest import database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack, stop_and_check
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

SERVICES = {"zquant-gateway", "zquant-registry", "zquant-scheduler", "zquant-executor"}


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver keeping every span as (service, trace id, span id, parent, name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[dict[str, str]] = []

    def Export(self, request: Any, context: Any) -> Any:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self._spans.append(
                            {
                                "service": attributes.get("service.name", ""),
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "name": span.name,
                            }
                        )
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self._spans)


@pytest.fixture(scope="module")
def collector() -> Iterator[tuple[Collector, int]]:
    receiver = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(0)


@pytest.fixture(scope="module")
def traced_stack(
    collector: tuple[Collector, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("tracing")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector[1]}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export batches every 200 ms (default 5 s)
    }
    with database_url("sqlite", str(tmp)) as url:
        stack = start_stack(tmp, url, executors=1, extra_env=env)
        try:
            yield stack
        finally:
            stop_and_check(stack)


def log_lines(stack: Stack) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(Path(stack.data_dir / "logs").glob("*.log")):
        for text in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(text)
            except ValueError:
                continue
            if isinstance(entry, dict):
                lines.append(entry)
    return lines


def command_task(stack: Stack, *command: str) -> tuple[Api, dict[str, Any]]:
    """The admin's client and a new command task (no retries) running `command`."""
    admin = Api.login(stack.http_url, "admin", ADMIN_PASSWORD)
    task = admin.create_task(
        name=unique("traced"), task_type="common_task", config={"command": list(command)}, max_retries=0
    )
    return admin, task


def registry_span(receiver: Collector, method: str) -> dict[str, str]:
    """The registry's span of a call to `method` (e.g. "TaskService/TriggerTaskJson"), once exported."""
    spans: list[dict[str, str]] = wait_for(
        lambda: [s for s in receiver.spans() if s["name"].endswith(method)],
        30,
        f"the registry's span of {method}",
    )
    return spans[0]


def test_a_rest_trigger_is_one_trace_from_the_gateway_to_the_executors_job(
    traced_stack: Stack, collector: tuple[Collector, int]
) -> None:
    receiver = collector[0]
    admin, task = command_task(traced_stack, "/usr/bin/printenv", "TRACEPARENT")
    triggered = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})
    execution_id = triggered["execution_id"]
    run = admin.wait_execution(task["id"], execution_id, timeout=60)
    assert run["status"] == "success", run["error_message"]

    # The registry's span of the REST trigger names the trace; Envoy's span is its parent.
    trigger = registry_span(receiver, "TaskService/TriggerTaskJson")
    trace_id = trigger["trace_id"]

    def services_in_trace() -> set[str]:
        return {s["service"] for s in receiver.spans() if s["trace_id"] == trace_id}

    wait_for(lambda: services_in_trace() >= SERVICES, 30, f"spans of {SERVICES} in trace {trace_id}")
    in_trace = [s for s in receiver.spans() if s["trace_id"] == trace_id]
    gateway = [s for s in in_trace if s["service"] == "zquant-gateway"]
    assert trigger["parent"] in {s["span_id"] for s in gateway}
    executor_names = {s["name"] for s in in_trace if s["service"] == "zquant-executor"}
    assert any(name.endswith("ExecutorService/Run") for name in executor_names), executor_names

    # The run's record names its trace, for whoever starts from the history.
    assert run["trace_id"] == trace_id, run

    # The job's own output: its TRACEPARENT continues the same trace.
    log = admin.ok("GET", f"/executions/{execution_id}/log")["text"]
    assert f"00-{trace_id}-" in log, log

    # The services' JSON lines about this run carry the trace id; the registry's next to the
    # request id Envoy passed on.
    def lines_of_trace() -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {}
        for entry in log_lines(traced_stack):
            if entry.get("trace_id") == trace_id:
                found.setdefault(str(entry.get("service", "")).split("-")[0], []).append(entry)
        return found

    by_service = wait_for(
        lambda: (found := lines_of_trace()).keys() >= {"registry", "scheduler", "executor"} and found,
        15,
        "log lines of the trace from the registry, the scheduler and the executor",
    )
    triggered_line = next(e for e in by_service["registry"] if e["message"] == "task triggered")
    trigger_path = f"/tasks/{task['id']}/trigger"
    access = wait_for(  # Envoy writes its access log in batches
        lambda: [e for e in log_lines(traced_stack) if str(e.get("path", "")).endswith(trigger_path)],
        15,
        "the gateway's access log line of the trigger",
    )
    assert access and triggered_line["request_id"] == access[0]["request_id"], (triggered_line, access)
    assert access[0]["trace_id"] == trace_id  # the gateway's access log line too
    assert any(e.get("execution_id") == execution_id for e in by_service["executor"])


def test_every_run_of_a_rest_backfill_is_in_the_trace_of_the_call_that_asked_for_it(
    traced_stack: Stack, collector: tuple[Collector, int]
) -> None:
    receiver = collector[0]
    admin = Api.login(traced_stack.http_url, "admin", ADMIN_PASSWORD)
    task = admin.create_task(
        name=unique("traced-backfill"),
        task_type="common_task",
        config={"command": ["/usr/bin/printenv", "TRACEPARENT"]},
        cron_expression="0 18 * * *",
        enabled=False,  # backfilled only: no scheduled run joins the history meanwhile
        max_retries=0,
    )
    backfill = admin.ok(
        "POST",
        f"/tasks/{task['id']}/backfill",
        json={"start": "2024-01-01", "end": "2024-01-03", "max_parallel": 2},
    )
    wait_for(
        lambda: admin.ok("GET", f"/backfills/{backfill['id']}")["status"] != "running",
        60,
        "the backfill to end",
    )
    runs = admin.executions(task["id"], limit=10)
    assert len(runs) == 3 and {run["status"] for run in runs} == {"success"}, runs

    asked = registry_span(receiver, "BackfillService/CreateBackfillJson")
    trace_id = asked["trace_id"]
    # Each run's record and its job's TRACEPARENT name the backfill call's trace, whichever pass
    # (the call's own or the scheduler's) created the run.
    assert {run["trace_id"] for run in runs} == {trace_id}, runs
    for run in runs:
        assert f"00-{trace_id}-" in admin.ok("GET", f"/executions/{run['id']}/log")["text"]


def test_a_run_adopted_by_the_next_leader_after_a_failover_stays_in_its_triggers_trace(
    traced_stack: Stack, collector: tuple[Collector, int]
) -> None:
    receiver = collector[0]
    admin, task = command_task(traced_stack, "sh", "-c", "sleep 8; echo done")
    execution_id = admin.ok("POST", f"/tasks/{task['id']}/trigger", json={})["execution_id"]
    started = wait_for(
        lambda: (
            (run := admin.ok("GET", f"/tasks/{task['id']}/executions/{execution_id}"))["status"] == "running"
            and run
        ),
        20,
        "the run to start",
    )
    trace_id = started["trace_id"]
    assert len(trace_id) == 32, started
    # `running` is recorded when the run is claimed, a moment before the executor gets it: mid-run
    # means once the executor has said it started (its first line in the run's log).
    wait_for(
        lambda: "开始执行" in admin.ok("GET", f"/executions/{execution_id}/log")["text"],
        20,
        "the executor to start the run",
    )

    # The leader dies mid-run (its own span of the run never ends, so it is never exported); the
    # scheduler started next leads once the old term expires and re-attaches to the run.
    [scheduler] = traced_stack.config.scheduler_names
    traced_stack.kill(scheduler)
    time.sleep(0.5)
    traced_stack.start_service(scheduler)
    run = admin.wait_execution(task["id"], execution_id, timeout=60)
    assert run["status"] == "success", run["error_message"]
    assert run["trace_id"] == trace_id

    def scheduler_spans() -> set[str]:
        return {
            s["name"]
            for s in receiver.spans()
            if s["trace_id"] == trace_id and s["service"] == "zquant-scheduler"
        }

    # The new leader's takeover and its span of the run, in the trigger's trace.
    wait_for(
        lambda: scheduler_spans() >= {"adopt run", "run execution"},
        30,
        f"the new leader's spans in trace {trace_id}",
    )

    # Its log line handing the run (attempt 2: the takeover) to the executor carries the trace id.
    def reattached() -> list[dict[str, Any]]:
        return [
            e
            for e in log_lines(traced_stack)
            if e.get("message") == "run sent to an executor"
            and e.get("execution_id") == execution_id
            and e.get("attempt") == 2
        ]

    [line] = wait_for(reattached, 15, "the new leader's log line of the re-attached run")
    assert line["trace_id"] == trace_id, line
