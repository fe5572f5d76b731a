"""The pure rules of a workflow run: which nodes start now, which are skipped, and the run's progress.

Functions over the frozen plan (`services/common/workflow_plan.py`) and the newest child execution
of each node; no I/O. `workflow_runs.py` is the thin shell that reads the children, applies these
decisions and reports through the ledger, so a new scheduler resumes a run where the old one left it.
"""

from __future__ import annotations

from typing import Any

from services.common.vocabulary import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    LIVE_STATUSES,
    FailurePolicy,
    WorkflowType,
)
from services.common.vocabulary import ExecutionStatus as Status
from services.common.workflow_plan import Node, Plan
from zquant.scheduler.v1 import task_pb2

HEARTBEAT_SECONDS = 2.0
STATUS_LABELS = {
    Status.SUCCESS: "成功",
    Status.FAILED: "失败",
    Status.TERMINATED: "已终止",
    Status.SKIPPED: "已跳过",
}


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
    failed = any(s in FAILED_STATUSES for s in status.values())
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
            elif failed and plan.on_failure is FailurePolicy.STOP:
                reason = "前序任务失败，编排已停止（on_failure=stop），未执行"
            elif any(_ended_unsuccessfully(status[d]) or d in blocked for d in node.dependencies):
                reason = "依赖的任务失败或被跳过，未执行"
            if reason:
                blocked.add(node.task_id)
                to_skip.append((node, reason))
                changed = True
    running = sum(1 for s in status.values() if s in LIVE_STATUSES)
    ready = [
        node
        for node in plan.nodes
        if not status[node.task_id]
        and node.task_id not in blocked
        and all(status.get(d) == Status.SUCCESS for d in node.dependencies)
    ]
    return ready[: max(0, plan.limit - running)], to_skip


def _ended_unsuccessfully(status: str) -> bool:
    return status in FINAL_STATUSES and status != Status.SUCCESS


def progress(plan: Plan, latest: dict[int, task_pb2.Execution], running: bool) -> dict[str, Any]:
    nodes = []
    counts: dict[str, int] = dict.fromkeys(FINAL_STATUSES, 0)
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
    succeeded, skipped = counts[Status.SUCCESS], counts[Status.SKIPPED]
    failed = sum(counts[s] for s in FAILED_STATUSES)
    mode = "串行" if plan.workflow_type is WorkflowType.SERIAL else "并行"
    if running:
        message = f"{mode}执行中: 已完成 {done}/{total}"
    else:
        message = f"{mode}执行完成: 成功 {succeeded}/{total}，失败 {failed}"
        if skipped:
            message += f"，跳过 {skipped}"
    return {
        "workflow_type": plan.workflow_type,
        "on_failure": plan.on_failure,
        "current_step": done,
        "total_steps": total,
        "progress_percent": done * 100 // total,
        "status": Status.RUNNING if running else (Status.SUCCESS if succeeded == total else Status.FAILED),
        "message": message,
        "total_tasks": total,
        "success_count": succeeded,
        "failed_count": failed,
        "skipped_count": skipped,
        "failed_task_ids": [n["task_id"] for n in nodes if n["status"] in FAILED_STATUSES],
        "nodes": nodes,
    }
