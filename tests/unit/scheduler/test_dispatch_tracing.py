"""A run stays in the trace stored on it (Execution.traceparent) whichever scheduler drives it: a
new leader that re-attaches to a running run, or picks up a pending one (a retry, a run requeued
while no scheduler led), continues that trace instead of starting one of its own. Tracing on, with
the SDK exporting to memory; the executor's Run sees the context it is called in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common import tracing
from services.scheduler.clients import ExecutorPool
from services.scheduler.dispatch import Dispatcher
from services.scheduler.ledger import RunLedger
from tests.unit.scheduler.test_dispatch import (
    SETTINGS,
    TASK,
    Awaited,
    ScriptedCall,
    ScriptedExecutor,
    ScriptedRegistry,
)
from zquant.scheduler.v1 import executor_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

pytestmark = pytest.mark.asyncio

EXECUTOR = "127.0.0.1:1"
RUNNING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PENDING_TRACE = "0af7651916cd43dd8448eb211c80319c"


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing("scheduler", {"OTEL_TRACES_EXPORTER": "otlp"}, exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown_tracing()


class PreviousLeadersRuns(ScriptedRegistry):
    """The database as a new leader finds it: what ListActiveExecutions returns."""

    def __init__(self, *active: task_pb2.Execution) -> None:
        super().__init__()
        self.active = list(active)
        self.adopted: list[int] = []

    async def ListActiveExecutions(self, request: Any, **call: Any) -> Any:
        return internal_pb2.ListActiveExecutionsResponse(executions=self.active)

    async def StartExecution(self, request: internal_pb2.StartExecutionRequest, **call: Any) -> Any:
        if request.adopt:
            self.adopted.append(request.execution_id)
        return await super().StartExecution(request, **call)


class TracedExecutor(ScriptedExecutor):
    """Records the traceparent each Run call is made in (what its client interceptor sends)."""

    def __init__(self) -> None:
        super().__init__()
        self.traces: dict[int, str] = {}

    async def GetLoad(self, request: Any, **call: Any) -> Any:
        return executor_service_pb2.GetLoadResponse()

    def Run(self, request: executor_service_pb2.RunRequest, **call: Any) -> ScriptedCall:
        self.traces[request.execution_id] = tracing.trace_id_of(tracing.current_traceparent())
        return super().Run(request, **call)


async def take_over(registry: PreviousLeadersRuns, executor: TracedExecutor) -> None:
    """A new leader's adoption of the active runs, waited for until every run ended."""
    pool = ExecutorPool((EXECUTOR,), "token")
    handle = pool.handle_for(EXECUTOR)
    assert handle is not None
    handle.stub = executor
    background = Awaited()
    fake: Any = registry  # a structural fake
    dispatcher = Dispatcher(
        SETTINGS, fake, pool, RunLedger(fake), background, lambda task_id: TASK, lambda: datetime.now(UTC)
    )
    await dispatcher.adopt_active_runs()
    while pending := [task for task in background.spawned if not task.done()]:
        await asyncio.wait_for(asyncio.gather(*pending), 10)
    await background.stop()
    await pool.close()


def trace_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


async def test_a_run_adopted_by_a_new_leader_continues_the_trace_stored_on_it(
    spans: InMemorySpanExporter,
) -> None:
    running = task_pb2.Execution(
        id=7, task_id=TASK.id, status="running", executor=EXECUTOR, traceparent=traceparent(RUNNING_TRACE)
    )
    registry = PreviousLeadersRuns(running)
    executor = TracedExecutor()
    await take_over(registry, executor)

    assert registry.adopted == [7]
    assert executor.requests[0].attach  # re-attached, not started again
    assert executor.traces == {7: RUNNING_TRACE}
    tracing.shutdown_tracing()  # exports what is batched
    by_name = {span.name: trace_of(span) for span in spans.get_finished_spans()}
    assert by_name == {"adopt run": RUNNING_TRACE, "run execution": RUNNING_TRACE}


async def test_a_pending_run_picked_up_from_the_database_continues_its_trace_and_one_without_starts_its_own(
    spans: InMemorySpanExporter,
) -> None:
    retry = task_pb2.Execution(
        id=8, task_id=TASK.id, status="pending", trigger="retry", traceparent=traceparent(PENDING_TRACE)
    )
    untraced = task_pb2.Execution(id=9, task_id=TASK.id, status="pending", trigger="schedule")
    registry = PreviousLeadersRuns(retry, untraced)
    executor = TracedExecutor()
    await take_over(registry, executor)

    assert executor.traces[8] == PENDING_TRACE
    assert executor.traces[9] not in ("", PENDING_TRACE, RUNNING_TRACE)
    assert sorted((f.execution_id, f.status) for f in registry.finishes) == [(8, "success"), (9, "success")]


class RecordedCreates(ScriptedRegistry):
    """Keeps the creates a ledger sends."""

    def __init__(self) -> None:
        super().__init__()
        self.creates: list[internal_pb2.CreateExecutionRequest] = []

    async def RecordRuns(self, request: internal_pb2.RecordRunsRequest, **call: Any) -> Any:
        self.creates += [update.create for update in request.updates if update.HasField("create")]
        results = [
            internal_pb2.RunUpdateResult(
                create=internal_pb2.CreateExecutionResponse(execution=task_pb2.Execution(id=1), created=True)
            )
            for update in request.updates
        ]
        return internal_pb2.RecordRunsResponse(results=results)


async def test_a_scheduled_fire_creates_its_run_in_the_fires_trace(spans: InMemorySpanExporter) -> None:
    registry = RecordedCreates()
    fake: Any = registry
    ledger = RunLedger(fake)
    await ledger.record_fire(TASK, datetime(2026, 12, 3, 10, tzinfo=UTC))
    await ledger.record_fire(TASK, datetime(2026, 12, 3, 11, tzinfo=UTC))
    tracing.shutdown_tracing()
    fires = [trace_of(span) for span in spans.get_finished_spans() if span.name == "fire"]
    assert [tracing.trace_id_of(create.traceparent) for create in registry.creates] == fires
    assert len(set(fires)) == 2  # each fire its own trace


async def test_without_tracing_a_fire_sends_no_traceparent() -> None:
    registry = RecordedCreates()
    fake: Any = registry
    await RunLedger(fake).record_fire(TASK, datetime(2026, 12, 3, 10, tzinfo=UTC))
    assert [create.traceparent for create in registry.creates] == [""]
