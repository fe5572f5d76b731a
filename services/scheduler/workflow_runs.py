"""Workflow runs: the I/O shell around the pure plan functions of `workflows.py`.

A workflow execution runs in the scheduler, not on an executor: every node is a child execution
dispatched like any run. Its state lives in the database (the children), so a new scheduler resumes
a run where the old one left it. Each pass reads the children, lets `decide` say what to skip and
what to start, reports `progress` (which also renews the run's lease) and finishes the run when
every node is settled.

The run's updates go through the same `RunLedger` as a plain run's: children are created, progress
reported and the final status recorded in the batched RecordRuns path, and the final status is
retried through registry hiccups exactly as a plain run's is (`RunLedger.end`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format

from services.common import tracing
from services.common.vocabulary import FAILED_STATUSES, FINAL_STATUSES, Trigger
from services.common.vocabulary import ExecutionStatus as Status
from services.common.workflow_plan import Node, Plan
from services.scheduler.clients import REGISTRY_TIMEOUT_SECONDS, RegistryClient
from services.scheduler.ledger import RunLedger
from services.scheduler.reasons import run_is_gone, task_is_gone
from services.scheduler.workflows import (
    HEARTBEAT_SECONDS,
    STATUS_LABELS,
    decide,
    node_states,
    progress,
)
from zquant.scheduler.v1 import execution_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

# A workflow's children: its nodes and their retries.
MAX_CHILDREN = 1000


class NodeTaskMissing(Exception):
    """A node's task was deleted (with force) after the workflow was saved."""


class WorkflowRun:
    """One workflow execution, driven until every node is settled."""

    def __init__(
        self,
        registry: RegistryClient,
        ledger: RunLedger,
        launch: Callable[[task_pb2.Execution], None],
        execution: task_pb2.Execution,
    ) -> None:
        self._registry = registry
        self._ledger = ledger
        self._launch = launch
        self._execution = execution
        self._wake = asyncio.Event()
        self.attempt = 0
        self.stopping = False

    def wake(self) -> None:
        """A node's run ended: look at the state again now rather than at the next heartbeat."""
        self._wake.set()

    def stop(self) -> None:
        """Terminate requested: start nothing more, let running nodes end, finish as terminated."""
        self.stopping = True
        self._wake.set()

    async def run(self) -> None:
        try:
            started: internal_pb2.StartExecutionResponse = await self._registry.internal.StartExecution(
                internal_pb2.StartExecutionRequest(
                    execution_id=self._execution.id,
                    executor="scheduler",
                    adopt=self._execution.status == Status.RUNNING,
                ),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as exc:
            if run_is_gone(exc):  # terminated, deleted, or driven by another scheduler
                return
            raise
        self.attempt = started.attempt
        try:
            plan = Plan.parse(json_format.MessageToDict(started.task.config))
        except (ValueError, KeyError, TypeError) as exc:
            await self._finish(Status.FAILED, {}, f"编排任务配置无效: {exc}")
            return
        try:
            await self._drive(plan)
        except NodeTaskMissing as exc:
            await self._finish(Status.FAILED, {}, f"编排中的任务 {exc} 不存在")

    async def _drive(self, plan: Plan) -> None:
        reported: dict[str, Any] | None = None
        while True:
            latest = node_states(await self._children())
            start, skip = decide(plan, latest, self.stopping)
            for node, reason in skip:
                await self._create_child(node, Status.SKIPPED, reason)
            for node in start:
                child = await self._create_child(node, Status.PENDING, "")
                if child.status == Status.PENDING:
                    self._launch(child)
            if skip or start:
                continue  # re-read: the new children are part of the state
            settled = all(
                latest.get(n.task_id) and latest[n.task_id].status in FINAL_STATUSES for n in plan.nodes
            )
            result = progress(plan, latest, running=not settled)
            if settled:
                status = Status.TERMINATED if self.stopping else result["status"]
                error = "" if status == Status.SUCCESS else self._error(result, status)
                await self._finish(status, result, error)
                return
            if result != reported:
                if not await self._report(result):
                    return
                reported = result
            try:
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                if not await self._report(None):  # heartbeat keeps the lease
                    return
            self._wake.clear()

    @staticmethod
    def _error(result: dict[str, Any], status: str) -> str:
        if status == Status.TERMINATED:
            return "编排任务已被终止"
        failed = [
            f"{n['name']}（{STATUS_LABELS.get(n['status'], n['status'])}）"
            for n in result["nodes"]
            if n["status"] in FAILED_STATUSES
        ]
        return "以下子任务失败: " + "、".join(failed) if failed else result["message"]

    async def _children(self) -> list[task_pb2.Execution]:
        response: execution_service_pb2.ListExecutionsResponse = (
            await self._registry.executions.ListExecutions(
                execution_service_pb2.ListExecutionsRequest(
                    parent_execution_id=self._execution.id, limit=MAX_CHILDREN
                ),
                metadata=self._registry.metadata,
                timeout=REGISTRY_TIMEOUT_SECONDS,
            )
        )
        return list(response.executions)

    async def _create_child(self, node: Node, status: str, reason: str) -> task_pb2.Execution:
        """The node's child execution; the one already there when an earlier pass (or an earlier
        scheduler) created it."""
        request = internal_pb2.CreateExecutionRequest(
            task_id=node.task_id,
            trigger=Trigger.WORKFLOW,
            status=status,
            error_message=reason,
            parent_execution_id=self._execution.id,
            dedup_key=f"w:{self._execution.id}:{node.task_id}",
            # Every node runs for the workflow run's date, with its parameters.
            logical_date=self._execution.logical_date,
            params=self._execution.params,
            # In the workflow run's trace, under its span when tracing is on here.
            traceparent=tracing.current_traceparent() or self._execution.traceparent,
        )
        try:
            response = await self._ledger.create(request)
        except grpc.aio.AioRpcError as exc:
            if task_is_gone(exc):
                raise NodeTaskMissing(node.task_id) from exc
            raise
        return response.execution

    async def _report(self, result: dict[str, Any] | None) -> bool:
        """False when the registry no longer accepts this attempt (finished or taken over)."""
        request = internal_pb2.ReportProgressRequest(execution_id=self._execution.id, attempt=self.attempt)
        if result is not None:
            request.result.update(result)
        response = await self._ledger.report(request)
        if response is None:
            return False
        if response.terminate_requested:
            self.stopping = True
        return True

    async def _finish(self, status: str, result: dict[str, Any], error: str) -> None:
        request = internal_pb2.FinishExecutionRequest(
            execution_id=self._execution.id, attempt=self.attempt, status=status, error_message=error
        )
        request.result.update(result)
        await self._ledger.end(request)
