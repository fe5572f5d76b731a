"""WorkflowRun against a scripted registry: its children, progress and final status go through the
RunLedger's batched path like a plain run's, so its final status survives a registry hiccup."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from services.common.structs import dict_to_struct
from services.scheduler.ledger import RunLedger
from services.scheduler.workflow_runs import WorkflowRun
from tests.unit.scheduler.run_stream import StreamOfCalls, stream_of_calls
from zquant.scheduler.v1 import execution_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2

pytestmark = pytest.mark.asyncio

WORKFLOW_ID = 50
PLAN = {"workflow_type": "serial", "tasks": [{"task_id": 7, "name": "下载"}, {"task_id": 8, "name": "计算"}]}


class ScriptedRegistry:
    """Holds the workflow's children; refuses children of `missing_tasks`; the first
    `failing_calls` RecordRuns calls with a final status fail as the network would. It has no
    single-update methods: every update must come batched."""

    def __init__(self, children: dict[int, str], missing_tasks: tuple[int, ...] = (), failing_calls: int = 0):
        self.children = {task_id: self._child(task_id, status) for task_id, status in children.items()}
        self.missing_tasks = missing_tasks
        self.failing_calls = failing_calls
        self.finishes: list[pb2.FinishExecutionRequest] = []
        self.reports: list[pb2.ReportProgressRequest] = []
        self.creates: list[pb2.CreateExecutionRequest] = []
        self.internal, self.executions, self.metadata = self, self, list[tuple[str, str]]()

    @staticmethod
    def _child(task_id: int, status: str) -> task_pb2.Execution:
        return task_pb2.Execution(
            id=100 + task_id, task_id=task_id, status=status, parent_execution_id=WORKFLOW_ID
        )

    async def StartExecution(
        self, request: pb2.StartExecutionRequest, **call: Any
    ) -> pb2.StartExecutionResponse:
        task = task_pb2.Task(id=1, task_type="workflow", config=dict_to_struct(PLAN))
        return pb2.StartExecutionResponse(attempt=1, task=task)

    async def ListExecutions(self, request: Any, **call: Any) -> execution_service_pb2.ListExecutionsResponse:
        return execution_service_pb2.ListExecutionsResponse(executions=list(self.children.values()))

    def RecordRunStream(self, **call: Any) -> StreamOfCalls:
        return stream_of_calls(self)

    async def RecordRuns(self, request: pb2.RecordRunsRequest, **call: Any) -> pb2.RecordRunsResponse:
        if self.failing_calls and any(u.WhichOneof("update") == "finish" for u in request.updates):
            self.failing_calls -= 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "connection reset", ""
            )
        return pb2.RecordRunsResponse(results=[self._apply(update) for update in request.updates])

    def _apply(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        kind = update.WhichOneof("update")
        if kind == "create":
            self.creates.append(update.create)
            task_id = update.create.task_id
            if task_id in self.missing_tasks:
                return pb2.RunUpdateResult(
                    code=grpc.StatusCode.NOT_FOUND.value[0], message="任务不存在", reason="TASK_NOT_FOUND"
                )
            child = self.children.setdefault(task_id, self._child(task_id, update.create.status or "pending"))
            return pb2.RunUpdateResult(create=pb2.CreateExecutionResponse(execution=child, created=True))
        if kind == "progress":
            self.reports.append(update.progress)
            return pb2.RunUpdateResult(progress=pb2.ReportProgressResponse())
        self.finishes.append(update.finish)
        return pb2.RunUpdateResult(finish=pb2.FinishExecutionResponse())


def workflow_run(
    registry: ScriptedRegistry, launch: Any = lambda child: None, traceparent: str = ""
) -> WorkflowRun:
    execution = task_pb2.Execution(id=WORKFLOW_ID, task_id=1, status="pending", traceparent=traceparent)
    ledger = RunLedger(registry)  # type: ignore[arg-type]  # a structural fake
    return WorkflowRun(registry, ledger, launch, execution)  # type: ignore[arg-type]


async def test_the_final_status_is_recorded_even_after_a_registry_hiccup() -> None:
    registry = ScriptedRegistry({7: "success", 8: "success"}, failing_calls=2)
    await asyncio.wait_for(workflow_run(registry).run(), 10)
    assert [(f.execution_id, f.attempt, f.status) for f in registry.finishes] == [(WORKFLOW_ID, 1, "success")]


async def test_nodes_are_started_in_order_and_progress_is_reported_until_all_are_settled() -> None:
    registry = ScriptedRegistry({})
    launched: list[int] = []

    def launch(child: task_pb2.Execution) -> None:
        # The node runs elsewhere and succeeds a little later; its end wakes the workflow.
        launched.append(child.task_id)
        asyncio.get_running_loop().call_later(0.05, succeed, child.task_id)

    def succeed(task_id: int) -> None:
        registry.children[task_id].status = "success"
        run.wake()

    run = workflow_run(registry, launch)
    await asyncio.wait_for(run.run(), 10)
    assert launched == [7, 8]
    assert registry.reports and all(r.attempt == 1 for r in registry.reports)
    [finish] = registry.finishes
    assert finish.status == "success" and finish.result.fields["success_count"].number_value == 2


async def test_a_node_whose_task_was_deleted_fails_the_workflow() -> None:
    registry = ScriptedRegistry({}, missing_tasks=(7,))
    await asyncio.wait_for(workflow_run(registry).run(), 10)
    [finish] = registry.finishes
    assert finish.status == "failed" and finish.error_message == "编排中的任务 7 不存在"


async def test_each_node_is_created_in_the_workflow_runs_trace() -> None:
    registry = ScriptedRegistry({7: "success"})
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    def launch(child: task_pb2.Execution) -> None:
        registry.children[child.task_id].status = "success"
        run.wake()

    run = workflow_run(registry, launch, traceparent=trace)
    await asyncio.wait_for(run.run(), 10)
    assert [create.task_id for create in registry.creates] == [8]  # node 7 had run already
    assert [create.traceparent for create in registry.creates] == [trace]
