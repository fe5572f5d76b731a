"""Workflows with real processes: the guide's three examples, the failure matrix, terminate, resume."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stack import Stack
from tests.integration.api import Api, unique
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
FAST = {"duration_seconds": 0.2, "steps": 1}
FAILING = {"duration_seconds": 0.1, "steps": 1, "success_rate": 0}


def node(task_id: int, *deps: int) -> dict[str, Any]:
    return {"task_id": task_id, "name": f"节点{task_id}", "dependencies": list(deps)}


def make_task(api: Api, config: dict[str, Any] = FAST, **fields: Any) -> int:
    task = api.create_task(name=unique("node"), config=config, max_retries=0, **fields)
    return int(task["id"])


def make_workflow(api: Api, kind: str, nodes: list[dict[str, Any]], on_failure: str) -> int:
    config = {"workflow_type": kind, "tasks": nodes, "on_failure": on_failure}
    task = api.create_task(name=unique("wf"), task_type="workflow", config=config, max_retries=0)
    return int(task["id"])


def run_workflow(
    api: Api, workflow_id: int, timeout: float = 60
) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """Triggers the workflow, waits for it, returns (its execution, the newest child run per node)."""
    execution_id = api.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    execution = api.wait_execution(workflow_id, execution_id, timeout)
    return execution, children(api, execution_id)


def children(api: Api, execution_id: int) -> dict[int, dict[str, Any]]:
    runs = api.ok("GET", "/executions", params={"parent_execution_id": execution_id, "limit": 1000})[
        "executions"
    ]
    latest: dict[int, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["id"]):
        latest[run["task_id"]] = run
    return latest


def span(run: dict[str, Any]) -> tuple[datetime, datetime]:
    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return parse(run["start_time"]), parse(run["end_time"])


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def before(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return span(a)[1] <= span(b)[0]


def test_the_guides_three_examples_run_in_their_documented_order(stack: Stack, admin: Api) -> None:
    env = stack.env_for("registry")
    init = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "init_scheduler.py"), "--workflow-only"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The script creates the tasks through the running registry, which tells the scheduler.
    assert f"通过运行中的注册中心创建任务 ({stack.registry_addr})" in init.stdout, init.stdout
    names = ("编排任务-串行执行示例", "编排任务-并行执行示例", "编排任务-混合执行示例")
    tasks = wait_for(
        lambda: (
            (page := admin.ok("GET", "/tasks", params={"task_type": "workflow", "limit": 100})["tasks"])
            and {t["name"]: t for t in page if t["name"] in names}
        ),
        10,
        "the example workflows",
    )
    ids = {
        t["name"]: t["id"]
        for t in admin.ok("GET", "/tasks", params={"include_children": True, "limit": 100})["tasks"]
    }
    quick, s1, s2, s3 = (
        ids[n] for n in ("示例任务-快速测试", "示例任务-步骤1", "示例任务-步骤2", "示例任务-步骤3")
    )

    serial, nodes = run_workflow(admin, tasks["编排任务-串行执行示例"]["id"])
    assert serial["status"] == "success", serial
    assert before(nodes[s1], nodes[s2]) and before(nodes[s2], nodes[s3])  # one at a time, in order

    parallel, nodes = run_workflow(admin, tasks["编排任务-并行执行示例"]["id"])
    assert parallel["status"] == "success", parallel
    assert (
        overlap(nodes[quick], nodes[s1])
        and overlap(nodes[s1], nodes[s2])
        and overlap(nodes[quick], nodes[s2])
    )

    mixed, nodes = run_workflow(admin, tasks["编排任务-混合执行示例"]["id"])
    assert mixed["status"] == "success", mixed
    assert overlap(nodes[quick], nodes[s1])  # stage 1 in parallel
    assert before(nodes[quick], nodes[s2]) and before(nodes[s1], nodes[s2])  # then 2, then 3
    assert before(nodes[s2], nodes[s3])
    result = mixed["result"]
    assert (result["total_tasks"], result["success_count"], result["progress_percent"]) == (4, 4, 100)
    assert [n["status"] for n in result["nodes"]] == ["success"] * 4
    # The DAG of the run is visible through the API (what the UI draws).
    workflow_nodes = admin.ok("GET", f"/tasks/{tasks['编排任务-混合执行示例']['id']}/workflow")["tasks"]
    assert [n["dependencies"] for n in workflow_nodes] == [[], [], [quick, s1], [s2]]


@pytest.mark.parametrize(
    ("kind", "on_failure", "expected"),
    [
        # nodes: 1 ok, 2 FAILS, 3 depends on 2, 4 independent, 5 depends on 3
        ("serial", "stop", ["success", "failed", "skipped", "skipped", "skipped"]),
        ("serial", "continue", ["success", "failed", "skipped", "success", "skipped"]),
        ("parallel", "stop", None),  # checked below: 4 may have started before 2 failed
        ("parallel", "continue", ["success", "failed", "skipped", "success", "skipped"]),
    ],
)
def test_failure_matrix(admin: Api, kind: str, on_failure: str, expected: list[str] | None) -> None:
    ok1, bad, dependent, independent = (
        make_task(admin),
        make_task(admin, FAILING),
        make_task(admin),
        make_task(admin),
    )
    grandchild = make_task(admin)
    workflow_id = make_workflow(
        admin,
        kind,
        [node(ok1), node(bad, ok1), node(dependent, bad), node(independent), node(grandchild, dependent)],
        on_failure,
    )
    execution, nodes = run_workflow(admin, workflow_id)
    statuses = [nodes[t]["status"] for t in (ok1, bad, dependent, independent, grandchild)]
    assert execution["status"] == "failed", execution
    assert execution["error_message"].startswith("以下子任务失败"), execution
    if expected is not None:
        assert statuses == expected
    else:
        # parallel + stop: no node starts after the failure; what already ran may finish.
        assert statuses[:3] == ["success", "failed", "skipped"] and statuses[4] == "skipped"
        assert statuses[3] in ("success", "skipped")
        if statuses[3] == "success":
            assert span(nodes[independent])[0] <= span(nodes[bad])[1]
    assert all(nodes[t]["trigger"] == "workflow" for t in nodes)
    assert execution["result"]["failed_task_ids"] == [bad]


def test_node_retries_follow_the_node_tasks_own_settings(admin: Api) -> None:
    flaky = make_task(admin, FAILING)
    admin.ok("PUT", f"/tasks/{flaky}", json={"max_retries": 2, "retry_interval": 0})
    workflow_id = make_workflow(admin, "serial", [node(flaky)], "stop")
    execution, _ = run_workflow(admin, workflow_id)
    runs = admin.ok("GET", "/executions", params={"parent_execution_id": execution["id"]})["executions"]
    assert sorted(r["retry_count"] for r in runs) == [0, 1, 2]
    assert execution["status"] == "failed"


def test_terminate_stops_a_running_workflow(admin: Api) -> None:
    slow = {"duration_seconds": 20, "steps": 20}
    first, second = make_task(admin, slow), make_task(admin, slow)
    workflow_id = make_workflow(admin, "serial", [node(first), node(second, first)], "stop")
    execution_id = admin.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    wait_for(
        lambda: children(admin, execution_id).get(first, {}).get("status") == "running", 15, "node 1 running"
    )
    admin.ok("POST", f"/executions/{execution_id}/terminate")
    execution = admin.wait_execution(workflow_id, execution_id, 30)
    nodes = children(admin, execution_id)
    assert execution["status"] == "terminated", execution
    assert nodes[first]["status"] == "terminated"
    assert nodes[second]["status"] == "skipped"


def test_a_workflow_resumes_after_a_scheduler_restart(stack: Stack, admin: Api) -> None:
    step = {"duration_seconds": 2, "steps": 2}
    a, b, c = make_task(admin, step), make_task(admin, step), make_task(admin, step)
    for task_id in (a, b, c):  # a node cut off by the restart is retried at once
        admin.ok("PUT", f"/tasks/{task_id}", json={"max_retries": 2, "retry_interval": 0})
    workflow_id = make_workflow(admin, "serial", [node(a), node(b, a), node(c, b)], "stop")
    execution_id = admin.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    wait_for(lambda: children(admin, execution_id).get(a, {}).get("status") == "success", 20, "node a done")
    stack.restart("scheduler")
    execution = admin.wait_execution(workflow_id, execution_id, 90)
    assert execution["status"] == "success", execution
    runs = admin.ok("GET", "/executions", params={"parent_execution_id": execution_id})["executions"]
    assert sum(1 for r in runs if r["task_id"] == a) == 1  # resumed, not started over
    assert {r["task_id"] for r in runs if r["status"] == "success"} == {a, b, c}
