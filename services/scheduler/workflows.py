"""Runs a workflow execution: every node is a child execution dispatched like any run.

The state of a workflow run lives in the database (its child executions), so a new scheduler resumes
a run where the old one left it. Each pass reads the children, skips what can no longer run, starts
what is ready (serial: one at a time in config order; parallel: up to max_parallelism), reports
progress (which also renews the run's lease), and finishes the run when every node is settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format

from services.scheduler.clients import RegistryClient
from zquant.scheduler.v1 import execution_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

ACTIVE = ("pending", "running")
SETTLED = ("success", "failed", "terminated", "skipped")
HEARTBEAT_SECONDS = 2.0
STATUS_LABELS = {"success": "成功", "failed": "失败", "terminated": "已终止", "skipped": "已跳过"}


@dataclass(frozen=True, slots=True)
class Node:
    task_id: int
    name: str
    dependencies: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    workflow_type: str
    nodes: tuple[Node, ...]
    on_failure: str
    max_parallelism: int

    @classmethod
    def parse(cls, config: dict[str, Any]) -> Plan:
        """Configs are validated on save; this only reads them (numbers arrive as floats)."""
        nodes = tuple(
            Node(
                task_id=int(item["task_id"]),
                name=str(item.get("name") or f"任务{int(item['task_id'])}"),
                dependencies=tuple(int(d) for d in item.get("dependencies") or []),
            )
            for item in config.get("tasks") or []
        )
        if not nodes:
            raise ValueError("编排任务配置中必须包含至少一个任务")
        return cls(
            workflow_type=str(config.get("workflow_type", "serial")),
            nodes=nodes,
            on_failure=str(config.get("on_failure", "stop")),
            max_parallelism=max(1, int(config.get("max_parallelism", 10))),
        )

    @property
    def limit(self) -> int:
        return 1 if self.workflow_type == "serial" else self.max_parallelism


def node_states(children: list[task_pb2.Execution]) -> dict[int, task_pb2.Execution]:
    """The newest child execution of each node (a retry is newer than the run it retries)."""
    latest: dict[int, task_pb2.Execution] = {}
    for child in sorted(children, key=lambda c: c.id):
        latest[child.task_id] = child
    return latest


def decide(
    plan: Plan, latest: dict[int, task_pb2.Execution], stopping: bool
) -> tuple[list[Node], list[tuple[Node, str]]]:
    """Which nodes to start now and which to skip (with the reason), given the node states."""
    status = {
        node.task_id: latest[node.task_id].status if node.task_id in latest else "" for node in plan.nodes
    }
    failed = any(s in ("failed", "terminated") for s in status.values())
    to_skip: list[tuple[Node, str]] = []
    blocked: set[int] = set()
    # Skips propagate along dependencies, which need not follow config order: loop to a fixpoint.
    changed = True
    while changed:
        changed = False
        for node in plan.nodes:
            if status[node.task_id] or node.task_id in blocked:
                continue
            reason = ""
            if stopping:
                reason = "编排任务已终止，未执行"
            elif failed and plan.on_failure == "stop":
                reason = "前序任务失败，编排已停止（on_failure=stop），未执行"
            elif any(
                status[d] in ("failed", "terminated", "skipped") or d in blocked for d in node.dependencies
            ):
                reason = "依赖的任务失败或被跳过，未执行"
            if reason:
                blocked.add(node.task_id)
                to_skip.append((node, reason))
                changed = True
    running = sum(1 for s in status.values() if s in ACTIVE)
    ready = [
        node
        for node in plan.nodes
        if not status[node.task_id]
        and node.task_id not in blocked
        and all(status.get(d) == "success" for d in node.dependencies)
    ]
    return ready[: max(0, plan.limit - running)], to_skip


def progress(plan: Plan, latest: dict[int, task_pb2.Execution], running: bool) -> dict[str, Any]:
    nodes = []
    counts = dict.fromkeys(SETTLED, 0)
    for node in plan.nodes:
        child = latest.get(node.task_id)
        state = child.status if child else "waiting"
        if state in counts:
            counts[state] += 1
        nodes.append(
            {
                "task_id": node.task_id,
                "name": node.name,
                "status": state,
                "execution_id": child.id if child else 0,
                "retry_count": child.retry_count if child else 0,
            }
        )
    total = len(plan.nodes)
    done = sum(counts.values())
    mode = "串行" if plan.workflow_type == "serial" else "并行"
    if running:
        message = f"{mode}执行中: 已完成 {done}/{total}"
    else:
        message = f"{mode}执行完成: 成功 {counts['success']}/{total}，失败 {counts['failed'] + counts['terminated']}"
        if counts["skipped"]:
            message += f"，跳过 {counts['skipped']}"
    return {
        "workflow_type": plan.workflow_type,
        "on_failure": plan.on_failure,
        "current_step": done,
        "total_steps": total,
        "progress_percent": done * 100 // total,
        "status": "running" if running else ("success" if counts["success"] == total else "failed"),
        "message": message,
        "total_tasks": total,
        "success_count": counts["success"],
        "failed_count": counts["failed"] + counts["terminated"],
        "skipped_count": counts["skipped"],
        "failed_task_ids": [n["task_id"] for n in nodes if n["status"] in ("failed", "terminated")],
        "nodes": nodes,
    }


class NodeTaskMissing(Exception):
    """A node's task was deleted (with force) after the workflow was saved."""


class WorkflowRun:
    """One workflow execution, driven until every node is settled."""

    def __init__(
        self,
        registry: RegistryClient,
        launch: Callable[[task_pb2.Execution], None],
        execution: task_pb2.Execution,
        wake: asyncio.Event,
    ) -> None:
        self._registry = registry
        self._launch = launch
        self._execution = execution
        self._wake = wake
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
        md = self._registry.metadata
        try:
            started: internal_pb2.StartExecutionResponse = await self._registry.internal.StartExecution(
                internal_pb2.StartExecutionRequest(
                    execution_id=self._execution.id,
                    executor="scheduler",
                    adopt=self._execution.status == "running",
                ),
                metadata=md,
                timeout=30,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return
            raise
        self.attempt = started.attempt
        try:
            plan = Plan.parse(json_format.MessageToDict(started.task.config))
        except (ValueError, KeyError, TypeError) as exc:
            await self._finish("failed", {}, f"编排任务配置无效: {exc}")
            return
        try:
            await self._drive(plan)
        except NodeTaskMissing as exc:
            await self._finish("failed", {}, f"编排中的任务 {exc} 不存在")

    async def _drive(self, plan: Plan) -> None:
        reported: dict[str, Any] | None = None
        while True:
            latest = node_states(await self._children())
            start, skip = decide(plan, latest, self.stopping)
            for node, reason in skip:
                await self._create_child(node, "skipped", reason)
            for node in start:
                child = await self._create_child(node, "pending", "")
                if child is not None and child.status == "pending":
                    self._launch(child)
            if skip or start:
                continue  # re-read: the new children are part of the state
            settled = all(latest.get(n.task_id) and latest[n.task_id].status in SETTLED for n in plan.nodes)
            result = progress(plan, latest, running=not settled)
            if settled:
                status = "terminated" if self.stopping else result["status"]
                error = "" if status == "success" else self._error(result, status)
                await self._finish(status, result, error)
                return
            if result != reported:
                if not await self._report(result):
                    return
                reported = result
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                if not await self._report(None):  # heartbeat keeps the lease
                    return
            self._wake.clear()

    @staticmethod
    def _error(result: dict[str, Any], status: str) -> str:
        if status == "terminated":
            return "编排任务已被终止"
        failed = [
            f"{n['name']}（{STATUS_LABELS.get(n['status'], n['status'])}）"
            for n in result["nodes"]
            if n["status"] in ("failed", "terminated")
        ]
        return "以下子任务失败: " + "、".join(failed) if failed else result["message"]

    async def _children(self) -> list[task_pb2.Execution]:
        response: execution_service_pb2.ListExecutionsResponse = (
            await self._registry.executions.ListExecutions(
                execution_service_pb2.ListExecutionsRequest(
                    parent_execution_id=self._execution.id, limit=1000
                ),
                metadata=self._registry.metadata,
                timeout=30,
            )
        )
        return list(response.executions)

    async def _create_child(self, node: Node, status: str, reason: str) -> task_pb2.Execution | None:
        request = internal_pb2.CreateExecutionRequest(
            task_id=node.task_id,
            trigger="workflow",
            status=status,
            error_message=reason,
            parent_execution_id=self._execution.id,
            dedup_key=f"w:{self._execution.id}:{node.task_id}",
        )
        try:
            response: internal_pb2.CreateExecutionResponse = await self._registry.internal.CreateExecution(
                request, metadata=self._registry.metadata, timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NodeTaskMissing(node.task_id) from exc
            raise
        return response.execution

    async def _report(self, result: dict[str, Any] | None) -> bool:
        request = internal_pb2.ReportProgressRequest(execution_id=self._execution.id, attempt=self.attempt)
        if result is not None:
            request.result.update(result)
        try:
            response = await self._registry.internal.ReportProgress(
                request, metadata=self._registry.metadata, timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return False  # finished or taken over elsewhere
            raise
        if response.terminate_requested:
            self.stopping = True
        return True

    async def _finish(self, status: str, result: dict[str, Any], error: str) -> None:
        request = internal_pb2.FinishExecutionRequest(
            execution_id=self._execution.id, attempt=self.attempt, status=status, error_message=error
        )
        request.result.update(result)
        try:
            await self._registry.internal.FinishExecution(
                request, metadata=self._registry.metadata, timeout=30
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                raise
