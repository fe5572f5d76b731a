"""Workflow config validation with the user guide's messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument
from services.registry.models import TaskRow

WORKFLOW_TYPES = ("serial", "parallel")
FAILURE_POLICIES = ("stop", "continue")


@dataclass(frozen=True, slots=True)
class WorkflowNode:
    task_id: int
    name: str
    dependencies: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WorkflowConfig:
    workflow_type: str
    nodes: tuple[WorkflowNode, ...]
    on_failure: str
    max_parallelism: int

    @property
    def task_ids(self) -> list[int]:
        return [node.task_id for node in self.nodes]


def _int(value: Any) -> int | None:
    # JSON numbers arrive as floats through google.protobuf.Struct.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_workflow(config: Mapping[str, Any]) -> WorkflowConfig:
    """Checks the shape of a workflow config; raises InvalidArgument with the guide's messages."""
    workflow_type = config.get("workflow_type")
    if workflow_type is None:
        raise InvalidArgument("编排任务配置中缺少 workflow_type，支持的模式：serial, parallel")
    if workflow_type not in WORKFLOW_TYPES:
        raise InvalidArgument(f"不支持的执行模式: {workflow_type}，支持的模式：serial, parallel")
    items = config.get("tasks")
    if not isinstance(items, list) or not items:
        raise InvalidArgument("编排任务配置中必须包含至少一个任务")
    nodes: list[WorkflowNode] = []
    seen: set[int] = set()
    for item in items:
        task_id = _int(item.get("task_id")) if isinstance(item, dict) else None
        if task_id is None:
            raise InvalidArgument("任务配置中缺少 task_id")
        if task_id in seen:
            raise InvalidArgument(f"任务 {task_id} 在编排中重复出现")
        seen.add(task_id)
        raw_deps = item.get("dependencies") or []
        if not isinstance(raw_deps, list) or any(_int(d) is None for d in raw_deps):
            raise InvalidArgument(f"任务 {task_id} 的 dependencies 必须是任务ID列表")
        name = item.get("name")
        nodes.append(
            WorkflowNode(
                task_id=task_id,
                name=str(name) if name else f"任务{task_id}",
                dependencies=tuple(dict.fromkeys(_int(d) or 0 for d in raw_deps)),
            )
        )
    on_failure = config.get("on_failure", "stop")
    if on_failure not in FAILURE_POLICIES:
        raise InvalidArgument(f"不支持的失败处理策略: {on_failure}，支持: stop, continue")
    max_parallelism = config.get("max_parallelism", 10)
    parallelism = _int(max_parallelism)
    if parallelism is None or not 1 <= parallelism <= 1000:
        raise InvalidArgument("max_parallelism 必须是1到1000之间的整数")
    return WorkflowConfig(
        workflow_type=str(workflow_type),
        nodes=tuple(nodes),
        on_failure=str(on_failure),
        max_parallelism=parallelism,
    )


def _find_cycle(nodes: tuple[WorkflowNode, ...]) -> int | None:
    """A task id on a dependency cycle, or None."""
    deps = {node.task_id: node.dependencies for node in nodes}
    state: dict[int, int] = {}  # 1 = on the current path, 2 = done

    def visit(task_id: int) -> int | None:
        state[task_id] = 1
        for dep in deps.get(task_id, ()):
            if state.get(dep) == 1:
                return dep
            if dep not in state and (found := visit(dep)) is not None:
                return found
        state[task_id] = 2
        return None

    for node in nodes:
        if node.task_id not in state and (found := visit(node.task_id)) is not None:
            return found
    return None


def validate_workflow(session: Session, config: Mapping[str, Any], workflow_id: int = 0) -> WorkflowConfig:
    """Full validation, in the original's order, plus self-reference and nested cycles."""
    workflow = parse_workflow(config)
    ids = workflow.task_ids
    rows = {row.id: row for row in session.scalars(select(TaskRow).where(TaskRow.id.in_(ids)))}
    missing = sorted(set(ids) - set(rows))
    if missing:
        raise InvalidArgument(f"以下任务不存在: {{{', '.join(map(str, missing))}}}")
    disabled = [task_id for task_id in ids if not rows[task_id].enabled]
    if disabled:
        raise InvalidArgument(f"以下任务未启用: {disabled}")
    for node in workflow.nodes:
        outside = [dep for dep in node.dependencies if dep not in rows]
        if outside:
            raise InvalidArgument(f"任务 {node.task_id} 的依赖任务 {outside} 不在任务列表中")
    if workflow_id and workflow_id in rows:
        raise InvalidArgument(f"检测到循环依赖，任务 {workflow_id} 存在循环依赖关系")
    cycle = _find_cycle(workflow.nodes)
    if cycle is not None:
        raise InvalidArgument(f"检测到循环依赖，任务 {cycle} 存在循环依赖关系")
    _check_nested(session, rows, workflow_id)
    return workflow


def _referenced_ids(config: Mapping[str, Any] | None) -> list[int]:
    items = (config or {}).get("tasks") or []
    return [
        task_id
        for item in items
        if isinstance(item, dict) and (task_id := _int(item.get("task_id"))) is not None
    ]


def _check_nested(session: Session, rows: dict[int, TaskRow], workflow_id: int) -> None:
    """No nested workflow may (transitively) contain the workflow being saved."""
    pending = [row for row in rows.values() if row.task_type == "workflow"]
    seen: set[int] = set()
    while pending:
        row = pending.pop()
        if row.id in seen:
            continue
        seen.add(row.id)
        for child_id in _referenced_ids(row.config):
            if child_id == workflow_id:
                raise InvalidArgument(f"检测到循环依赖，任务 {row.id} 存在循环依赖关系")
            child = session.get(TaskRow, child_id)
            if child is not None and child.task_type == "workflow":
                pending.append(child)


def child_task_ids(session: Session) -> set[int]:
    """Ids of every task referenced by some workflow (hidden from the default task list)."""
    configs = session.scalars(select(TaskRow.config).where(TaskRow.task_type == "workflow"))
    return {task_id for config in configs for task_id in _referenced_ids(config)}
