"""The workflow plan: a config's shape, its structure (dependencies, self-reference, cycles) and
its topological order, with the user guide's messages and the reasons clients branch on."""

from __future__ import annotations

from typing import Any

import pytest

from services.common.errors import InvalidArgument, Reason
from services.common.vocabulary import FailurePolicy, WorkflowType
from services.common.workflow_plan import (
    Node,
    Plan,
    PlanInvalid,
    json_int,
    referenced_task_ids,
)


def config(tasks: list[Any], **fields: Any) -> dict[str, Any]:
    return {"workflow_type": "parallel", "tasks": tasks, **fields}


def chain(deps: dict[int, list[int]]) -> Plan:
    return Plan.parse(config([{"task_id": t, "dependencies": d} for t, d in deps.items()]))


def refusal(fn: Any, *args: Any) -> tuple[str, Reason]:
    with pytest.raises(InvalidArgument) as info:
        fn(*args)
    return info.value.message, info.value.reason


def test_a_config_becomes_a_frozen_plan_with_defaults() -> None:
    plan = Plan.parse(
        config([{"task_id": 1, "name": "拉取"}, {"task_id": 2, "dependencies": [1]}], workflow_type="serial")
    )
    assert plan == Plan(
        workflow_type=WorkflowType.SERIAL,
        nodes=(Node(1, "拉取", ()), Node(2, "任务2", (1,))),
        on_failure=FailurePolicy.STOP,
        max_parallelism=10,
    )
    assert plan.task_ids == [1, 2]
    assert plan.limit == 1
    assert Plan.parse(config([{"task_id": 1}], max_parallelism=4)).limit == 4


def test_numbers_arriving_as_floats_through_struct_are_read_as_ids() -> None:
    plan = Plan.parse(
        config([{"task_id": 1.0}, {"task_id": 2.0, "dependencies": [1.0, 1]}], max_parallelism=3.0)
    )
    assert plan.task_ids == [1, 2]
    assert plan.nodes[1].dependencies == (1,)  # named twice, one dependency
    assert plan.max_parallelism == 3


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), (3.0, 3), (3.5, None), (True, None), ("3", None), (None, None)]
)
def test_json_integers_are_whole_numbers_but_not_booleans(value: Any, expected: int | None) -> None:
    assert json_int(value) == expected


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"tasks": [{"task_id": 1}]}, "编排任务配置中缺少 workflow_type，支持的模式：serial, parallel"),
        (
            config([{"task_id": 1}], workflow_type="dag"),
            "不支持的执行模式: dag，支持的模式：serial, parallel",
        ),
        (
            config([{"task_id": 1}], workflow_type=["serial"]),
            "不支持的执行模式: ['serial']，支持的模式：serial, parallel",
        ),
        (config([]), "编排任务配置中必须包含至少一个任务"),
        (config({"task_id": 1}), "编排任务配置中必须包含至少一个任务"),  # type: ignore[arg-type]
        ({"workflow_type": "serial"}, "编排任务配置中必须包含至少一个任务"),
        (config([{"name": "x"}]), "任务配置中缺少 task_id"),
        (config([7]), "任务配置中缺少 task_id"),
        (config([{"task_id": "1"}]), "任务配置中缺少 task_id"),
        (config([{"task_id": 1}, {"task_id": 1.0}]), "任务 1 在编排中重复出现"),
        (config([{"task_id": 1, "dependencies": 2}]), "任务 1 的 dependencies 必须是任务ID列表"),
        (config([{"task_id": 1, "dependencies": ["2"]}]), "任务 1 的 dependencies 必须是任务ID列表"),
        (config([{"task_id": 1}], on_failure="retry"), "不支持的失败处理策略: retry，支持: stop, continue"),
        (config([{"task_id": 1}], max_parallelism=0), "max_parallelism 必须是1到1000之间的整数"),
        (config([{"task_id": 1}], max_parallelism=1001), "max_parallelism 必须是1到1000之间的整数"),
        (config([{"task_id": 1}], max_parallelism=2.5), "max_parallelism 必须是1到1000之间的整数"),
    ],
)
def test_a_malformed_config_is_refused_with_the_guides_message(bad: dict[str, Any], message: str) -> None:
    assert refusal(Plan.parse, bad) == (message, Reason.WORKFLOW_INVALID)


def test_a_duplicate_is_reported_before_a_later_nodes_bad_dependencies() -> None:
    bad = config([{"task_id": 1}, {"task_id": 1, "dependencies": "x"}])
    assert refusal(Plan.parse, bad)[0] == "任务 1 在编排中重复出现"


def test_a_plan_error_is_also_a_value_error_for_readers_of_stored_configs() -> None:
    with pytest.raises(ValueError, match="必须包含至少一个任务"):
        Plan.parse(config([]))


def test_dependencies_outside_the_plan_are_refused() -> None:
    plan = chain({1: [], 2: [1, 9, 8]})
    assert refusal(plan.check_structure) == (
        "任务 2 的依赖任务 [9, 8] 不在任务列表中",
        Reason.WORKFLOW_INVALID,
    )


def test_a_workflow_among_its_own_nodes_is_a_cycle() -> None:
    plan = chain({1: [], 5: []})
    assert refusal(plan.check_structure, 5) == (
        "检测到循环依赖，任务 5 存在循环依赖关系",
        Reason.WORKFLOW_CYCLE,
    )
    plan.check_structure(6)
    plan.check_structure()  # a new workflow (id 0) contains nothing of itself


def test_a_node_depending_on_itself_is_a_cycle() -> None:
    assert refusal(chain({1: [], 2: [2]}).check_structure) == (
        "检测到循环依赖，任务 2 存在循环依赖关系",
        Reason.WORKFLOW_CYCLE,
    )


def test_a_cycle_names_the_task_where_the_walk_in_config_order_closes_it() -> None:
    # 1 -> 2 -> 3 -> 1: walking from 1, the cycle closes when 3 reaches 1 again.
    assert (
        refusal(chain({1: [2], 2: [3], 3: [1]}).check_structure)[0]
        == "检测到循环依赖，任务 1 存在循环依赖关系"
    )
    assert (
        refusal(chain({4: [], 1: [2], 2: [1]}).check_structure)[0]
        == "检测到循环依赖，任务 1 存在循环依赖关系"
    )
    assert refusal(chain({2: [1], 1: [2]}).check_structure)[0] == "检测到循环依赖，任务 2 存在循环依赖关系"


def test_a_cycle_error_names_every_member_of_the_cycle_for_an_editor_to_mark() -> None:
    with pytest.raises(PlanInvalid) as info:
        chain({4: [], 1: [2], 2: [3], 3: [1]}).check_structure()
    assert info.value.task_ids == (1, 2, 3)
    with pytest.raises(PlanInvalid) as info:
        chain({1: [], 2: [2]}).check_structure()
    assert info.value.task_ids == (2,)


def test_dependencies_outside_the_plan_are_reported_before_cycles() -> None:
    assert refusal(chain({1: [2], 2: [1, 9]}).check_structure)[0] == "任务 2 的依赖任务 [9] 不在任务列表中"


def test_a_diamond_is_no_cycle() -> None:
    chain({1: [], 2: [1], 3: [1], 4: [2, 3]}).check_structure()


def test_topological_order_puts_dependencies_first_and_otherwise_keeps_config_order() -> None:
    plan = chain({4: [2, 3], 3: [1], 2: [], 1: [], 5: []})
    assert [node.task_id for node in plan.topological_order()] == [2, 1, 3, 4, 5]
    assert [n.task_id for n in chain({3: [], 1: [], 2: []}).topological_order()] == [3, 1, 2]


def test_topological_order_of_a_cyclic_plan_is_refused() -> None:
    assert refusal(chain({1: [2], 2: [1]}).topological_order) == (
        "检测到循环依赖，任务 1 存在循环依赖关系",
        Reason.WORKFLOW_CYCLE,
    )


def test_a_chain_longer_than_the_recursion_limit_is_checked_and_ordered() -> None:
    length = 5000
    plan = chain({t: [t - 1] if t > 1 else [] for t in range(length, 0, -1)})
    plan.check_structure()
    assert [node.task_id for node in plan.topological_order()] == list(range(1, length + 1))
    closed = chain({t: [t - 1] if t > 1 else [length] for t in range(1, length + 1)})
    assert refusal(closed.check_structure)[1] == Reason.WORKFLOW_CYCLE


def test_referenced_task_ids_read_a_stored_config_leniently() -> None:
    stored = {"tasks": [{"task_id": 3}, {"task_id": 4.0}, {"name": "no id"}, "junk", {"task_id": True}]}
    assert referenced_task_ids(stored) == [3, 4]
    assert (
        referenced_task_ids(None) == referenced_task_ids({}) == referenced_task_ids({"tasks": {"a": 1}}) == []
    )
