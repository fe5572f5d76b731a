"""A workflow's plan: which tasks it runs, in which mode, after which others. Pure, no I/O.

The registry checks a plan when a workflow is saved and the scheduler follows it when the workflow
runs; both read the config with ``Plan.parse``, so they cannot disagree on what it says.

Checking is in two parts because the registry puts its database checks between them (tasks that
do not exist or are disabled are reported before the plan's own structure):

- ``Plan.parse``: the config's shape (mode, nodes, duplicates, failure policy, parallelism);
- ``Plan.check_structure``: dependencies inside the plan, no workflow among its own nodes, no cycles.

Errors are ``InvalidArgument`` with the user guide's messages and ``WORKFLOW_INVALID`` or
``WORKFLOW_CYCLE`` as the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument, Reason
from services.common.vocabulary import FailurePolicy, WorkflowType, listed, word_of

DEFAULT_PARALLELISM = 10
MAX_PARALLELISM = 1000


class PlanInvalid(InvalidArgument, ValueError):
    """A config that is no valid plan. Also a ValueError: a reader of stored configs (the
    scheduler) treats it as any other bad value, without the registry's error types."""

    default_reason = Reason.WORKFLOW_INVALID

    def __init__(self, message: str, reason: Reason | None = None, task_ids: tuple[int, ...] = ()) -> None:
        super().__init__(message, reason)
        # The nodes at fault (a cycle's members, missing or disabled tasks), for an editor to mark.
        self.task_ids = task_ids


@dataclass(frozen=True, slots=True)
class Node:
    task_id: int
    name: str
    dependencies: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    workflow_type: WorkflowType
    nodes: tuple[Node, ...]
    on_failure: FailurePolicy
    max_parallelism: int

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> Plan:
        """The plan a config describes; raises PlanInvalid when its shape is wrong."""
        kinds = listed(WorkflowType)
        raw_type = config.get("workflow_type")
        if raw_type is None:
            raise PlanInvalid(f"编排任务配置中缺少 workflow_type，支持的模式：{kinds}")
        workflow_type = word_of(WorkflowType, raw_type)
        if workflow_type is None:
            raise PlanInvalid(f"不支持的执行模式: {raw_type}，支持的模式：{kinds}")
        items = config.get("tasks")
        if not isinstance(items, list) or not items:
            raise PlanInvalid("编排任务配置中必须包含至少一个任务")
        nodes: list[Node] = []
        seen: set[int] = set()
        for item in items:
            task_id = json_int(item.get("task_id")) if isinstance(item, dict) else None
            if task_id is None:
                raise PlanInvalid("任务配置中缺少 task_id")
            if task_id in seen:
                raise PlanInvalid(f"任务 {task_id} 在编排中重复出现")
            seen.add(task_id)
            nodes.append(_node(task_id, item))
        raw_policy = config.get("on_failure", FailurePolicy.STOP)
        on_failure = word_of(FailurePolicy, raw_policy)
        if on_failure is None:
            raise PlanInvalid(f"不支持的失败处理策略: {raw_policy}，支持: {listed(FailurePolicy)}")
        parallelism = json_int(config.get("max_parallelism", DEFAULT_PARALLELISM))
        if parallelism is None or not 1 <= parallelism <= MAX_PARALLELISM:
            raise PlanInvalid(f"max_parallelism 必须是1到{MAX_PARALLELISM}之间的整数")
        return cls(workflow_type, tuple(nodes), on_failure, parallelism)

    @property
    def task_ids(self) -> list[int]:
        return [node.task_id for node in self.nodes]

    @property
    def limit(self) -> int:
        """How many nodes may run at once."""
        return 1 if self.workflow_type is WorkflowType.SERIAL else self.max_parallelism

    def check_structure(self, workflow_id: int = 0) -> None:
        """Dependencies point inside the plan, the workflow (`workflow_id`, 0 for a new one) is
        not one of its own nodes, and nothing depends on itself, directly or around a cycle."""
        inside = set(self.task_ids)
        for node in self.nodes:
            outside = [dep for dep in node.dependencies if dep not in inside]
            if outside:
                raise PlanInvalid(
                    f"任务 {node.task_id} 的依赖任务 {outside} 不在任务列表中", task_ids=(node.task_id,)
                )
        if workflow_id and workflow_id in inside:
            raise cycle_error(workflow_id)
        _, cycle = _depth_first(self.nodes)
        if cycle is not None:
            raise cycle_error(cycle[0], cycle)

    def topological_order(self) -> tuple[Node, ...]:
        """Every node after its dependencies, otherwise in config order; raises on a cycle."""
        order, cycle = _depth_first(self.nodes)
        if cycle is not None:
            raise cycle_error(cycle[0], cycle)
        by_id = {node.task_id: node for node in self.nodes}
        return tuple(by_id[task_id] for task_id in order)


def json_int(value: Any) -> int | None:
    """An integer from JSON config (a task id, a count): an int, or a whole float (numbers arrive
    as floats through google.protobuf.Struct); None for anything else, booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def referenced_task_ids(config: Mapping[str, Any] | None) -> list[int]:
    """The task ids a stored config names, read leniently (no validation): for lookups."""
    items = (config or {}).get("tasks") or []
    if not isinstance(items, list):
        return []
    return [
        task_id
        for item in items
        if isinstance(item, dict) and (task_id := json_int(item.get("task_id"))) is not None
    ]


def _node(task_id: int, item: dict[str, Any]) -> Node:
    raw = item.get("dependencies") or []
    dependencies = [json_int(d) for d in raw] if isinstance(raw, list) else [None]
    if None in dependencies:
        raise PlanInvalid(f"任务 {task_id} 的 dependencies 必须是任务ID列表")
    name = item.get("name")
    return Node(
        task_id=task_id,
        name=str(name) if name else f"任务{task_id}",
        # A dependency named twice is one dependency.
        dependencies=tuple(dict.fromkeys(d for d in dependencies if d is not None)),
    )


def cycle_error(task_id: int, cycle: tuple[int, ...] = ()) -> PlanInvalid:
    """The error naming a task found on a dependency cycle (`cycle`: its members, when known)."""
    return PlanInvalid(
        f"检测到循环依赖，任务 {task_id} 存在循环依赖关系",
        reason=Reason.WORKFLOW_CYCLE,
        task_ids=cycle or (task_id,),
    )


def _depth_first(nodes: tuple[Node, ...]) -> tuple[list[int], tuple[int, ...] | None]:
    """Post-order of a depth-first walk from each node in config order (a topological order:
    dependencies first), or the first cycle found, starting with the task id that closes it. Iterative, so a long chain
    cannot exhaust the stack; dependencies outside the plan are ignored."""
    dependencies = {node.task_id: node.dependencies for node in nodes}
    on_path: set[int] = set()
    done: set[int] = set()
    order: list[int] = []
    for root in dependencies:
        if root in done:
            continue
        on_path.add(root)
        stack = [(root, iter(dependencies[root]))]
        while stack:
            task_id, pending = stack[-1]
            for dep in pending:
                if dep in on_path:
                    path = [on_stack for on_stack, _ in stack]
                    return order, tuple(path[path.index(dep) :])
                if dep in dependencies and dep not in done:
                    on_path.add(dep)
                    stack.append((dep, iter(dependencies[dep])))
                    break
            else:
                stack.pop()
                on_path.discard(task_id)
                done.add(task_id)
                order.append(task_id)
    return order, None
