"""A workflow run's decisions over the common plan: which nodes start, which are skipped, and the
progress summary."""

from __future__ import annotations

import pytest

from services.common.workflow_plan import Plan
from services.scheduler.workflows import decide, node_states, progress
from zquant.scheduler.v1 import task_pb2


def plan(kind: str, deps: dict[int, list[int]], on_failure: str = "stop", parallelism: int = 10) -> Plan:
    return Plan.parse(
        {
            "workflow_type": kind,
            "on_failure": on_failure,
            "max_parallelism": float(parallelism),  # numbers arrive as floats through Struct
            "tasks": [
                {"task_id": float(t), "name": f"n{t}", "dependencies": [float(d) for d in ds]}
                for t, ds in deps.items()
            ],
        }
    )


def states(**by_task: str) -> dict[int, task_pb2.Execution]:
    return {
        int(key[1:]): task_pb2.Execution(id=i + 1, task_id=int(key[1:]), status=status)
        for i, (key, status) in enumerate(by_task.items())
    }


def started(result: tuple[list, list]) -> list[int]:  # type: ignore[type-arg]
    return [node.task_id for node in result[0]]


def skipped(result: tuple[list, list]) -> list[int]:  # type: ignore[type-arg]
    return [node.task_id for node, _ in result[1]]


MIXED = {1: [], 2: [], 3: [1, 2], 4: [3]}


def test_serial_runs_one_node_at_a_time_in_config_order() -> None:
    p = plan("serial", {2: [], 1: [], 3: [2]})
    assert started(decide(p, {}, False)) == [2]
    assert started(decide(p, states(t2="running"), False)) == []
    assert started(decide(p, states(t2="success"), False)) == [1]
    assert started(decide(p, states(t2="success", t1="success"), False)) == [3]


def test_parallel_starts_every_ready_node_up_to_the_limit() -> None:
    assert started(decide(plan("parallel", MIXED), {}, False)) == [1, 2]
    assert started(decide(plan("parallel", {1: [], 2: [], 3: []}, parallelism=2), {}, False)) == [1, 2]
    assert started(decide(plan("parallel", MIXED), states(t1="success", t2="running"), False)) == []
    assert started(decide(plan("parallel", MIXED), states(t1="success", t2="success"), False)) == [3]


def test_stop_skips_every_unstarted_node_after_a_failure_and_lets_running_ones_finish() -> None:
    p = plan("parallel", {1: [], 2: [], 3: [], 4: [1]}, "stop", parallelism=2)
    result = decide(p, states(t1="failed", t2="running"), False)
    assert started(result) == []
    assert skipped(result) == [3, 4]


def test_continue_skips_only_dependents_of_the_failed_node_transitively() -> None:
    p = plan("parallel", {1: [], 2: [], 3: [1], 4: [3], 5: [2]}, "continue")
    result = decide(p, states(t1="failed", t2="success"), False)
    assert skipped(result) == [3, 4]
    assert started(result) == [5]


def test_serial_continue_goes_on_with_independent_nodes() -> None:
    p = plan("serial", {1: [], 2: [1], 3: []}, "continue")
    result = decide(p, states(t1="failed"), False)
    assert skipped(result) == [2]
    assert started(result) == [3]


def test_terminating_skips_all_unstarted_nodes() -> None:
    result = decide(plan("parallel", MIXED), states(t1="running"), True)
    assert started(result) == []
    assert skipped(result) == [2, 3, 4]


def test_the_newest_child_of_a_node_wins() -> None:
    failed = task_pb2.Execution(id=5, task_id=1, status="failed")
    retry = task_pb2.Execution(id=9, task_id=1, status="pending", retry_count=1)
    assert node_states([retry, failed])[1].status == "pending"


@pytest.mark.parametrize(
    ("node_status", "expected_status", "percent"),
    [
        ({"t1": "success", "t2": "success"}, "success", 100),
        ({"t1": "success", "t2": "failed"}, "failed", 100),
    ],
)
def test_progress_summary(node_status: dict[str, str], expected_status: str, percent: int) -> None:
    p = plan("parallel", {1: [], 2: []})
    result = progress(p, states(**node_status), running=False)
    assert (result["status"], result["progress_percent"], result["total_tasks"]) == (
        expected_status,
        percent,
        2,
    )
    assert [n["status"] for n in result["nodes"]] == [node_status["t1"], node_status["t2"]]


def test_progress_while_running_counts_finished_nodes() -> None:
    result = progress(
        plan("serial", {1: [], 2: [1], 3: [2]}), states(t1="success", t2="running"), running=True
    )
    assert (result["current_step"], result["total_steps"], result["progress_percent"]) == (1, 3, 33)
    assert result["message"] == "串行执行中: 已完成 1/3"


def test_a_terminated_or_skipped_dependency_blocks_its_dependents_like_a_failed_one() -> None:
    p = plan("parallel", {1: [], 2: [], 3: [1], 4: [2], 5: []}, "continue")
    result = decide(p, states(t1="terminated", t2="skipped", t5="success"), False)
    assert skipped(result) == [3, 4]
    assert started(result) == []


def test_progress_counts_terminated_nodes_as_failed_and_names_the_skipped() -> None:
    p = plan("parallel", {1: [], 2: [], 3: [], 4: []}, "continue")
    result = progress(p, states(t1="success", t2="terminated", t3="failed", t4="skipped"), running=False)
    assert (result["status"], result["failed_count"], result["skipped_count"]) == ("failed", 2, 1)
    assert result["failed_task_ids"] == [2, 3]
    assert result["message"] == "并行执行完成: 成功 1/4，失败 2，跳过 1"
