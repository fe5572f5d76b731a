"""Reruns through the real stack (issue 13): a failed workflow run rerun from its failed step runs
only that step and those after it, reusing the nodes that succeeded; from the start it runs every
node; a workflow's own retry resumes from the failed step; every attempt links to the one it reruns.

Each node's command appends its name to a log the job user can write, so the log says exactly
which nodes ran, in order."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.api import Api, unique
from tests.waiting import wait_for


@pytest.fixture
def records() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="zq-rerun-"))
    directory.chmod(0o777)  # the job user of a root executor writes here
    yield directory
    shutil.rmtree(directory)


def node_task(admin: Api, records: Path, name: str, then: str = "true") -> int:
    script = f'echo {name} >> "$DIR/runs.log"; {then}'
    config = {"command": ["sh", "-c", script], "env": {"DIR": str(records)}}
    task = admin.create_task(name=unique(name), task_type="common_task", config=config, max_retries=0)
    return int(task["id"])


def four_node_chain(
    admin: Api, records: Path, third_fails_while: str, **fields: Any
) -> tuple[int, list[int]]:
    """A → B → C → D; C fails while the shell test `third_fails_while` holds."""
    nodes = [
        node_task(admin, records, "A"),
        node_task(admin, records, "B"),
        node_task(admin, records, "C", f"if {third_fails_while}; then exit 1; fi"),
        node_task(admin, records, "D"),
    ]
    chain = [
        {
            "task_id": task_id,
            "name": f"节点{index}",
            "dependencies": nodes[index - 1 : index] if index else [],
        }
        for index, task_id in enumerate(nodes)
    ]
    config = {"workflow_type": "serial", "tasks": chain, "on_failure": "stop"}
    workflow = admin.create_task(name=unique("wf"), task_type="workflow", config=config, **fields)
    return int(workflow["id"]), nodes


def ran(records: Path) -> list[str]:
    path = records / "runs.log"
    return path.read_text().split() if path.exists() else []


def children(admin: Api, execution_id: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = admin.ok(
        "GET", "/executions", params={"parent_execution_id": execution_id, "limit": 100}
    )["executions"]
    return sorted(runs, key=lambda run: run["id"])


def test_a_failed_workflow_rerun_from_the_failed_step_runs_only_the_third_and_fourth_nodes(
    admin: Api, records: Path
) -> None:
    workflow_id, nodes = four_node_chain(admin, records, f'[ ! -f "{records}/fixed" ]', max_retries=0)
    first_id = admin.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    first = admin.wait_execution(workflow_id, first_id, 60)
    assert first["status"] == "failed", first
    assert ran(records) == ["A", "B", "C"]
    (records / "fixed").touch()

    rerun = admin.ok("POST", f"/executions/{first_id}/rerun", json={"from": "failed"})
    assert rerun["rerun_of_execution_id"] == first_id
    assert rerun["logical_date"] == first["logical_date"]
    assert admin.wait_execution(workflow_id, rerun["id"], 60)["status"] == "success"
    assert ran(records) == ["A", "B", "C", "C", "D"]
    first_nodes = {run["task_id"]: run for run in children(admin, first_id)}
    rerun_nodes = {run["task_id"]: run for run in children(admin, rerun["id"])}
    assert [rerun_nodes[n]["status"] for n in nodes] == ["success"] * 4
    # The reused nodes link to the runs whose success they reuse; the rerun nodes ran anew.
    assert [rerun_nodes[n]["rerun_of_execution_id"] for n in nodes] == [
        first_nodes[nodes[0]]["id"],
        first_nodes[nodes[1]]["id"],
        0,
        0,
    ]
    history = {run["id"]: run for run in admin.executions(workflow_id)}
    assert history[rerun["id"]]["rerun_of_execution_id"] == first_id

    from_start = admin.ok("POST", f"/executions/{first_id}/rerun", json={"from": "start"})
    assert admin.wait_execution(workflow_id, from_start["id"], 60)["status"] == "success"
    assert ran(records) == ["A", "B", "C", "C", "D", "A", "B", "C", "D"]


def test_a_workflow_retry_resumes_from_the_failed_step(admin: Api, records: Path) -> None:
    once = f'[ ! -f "{records}/tried" ] && touch "{records}/tried"'
    workflow_id, _ = four_node_chain(admin, records, once, max_retries=1, retry_interval=0)
    first_id = admin.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    assert admin.wait_execution(workflow_id, first_id, 60)["status"] == "failed"
    retry = wait_for(
        lambda: next((r for r in admin.executions(workflow_id) if r["trigger"] == "retry"), None),
        30,
        "the workflow's retry",
    )
    assert retry["rerun_of_execution_id"] == first_id
    assert admin.wait_execution(workflow_id, retry["id"], 60)["status"] == "success"
    assert ran(records) == ["A", "B", "C", "C", "D"]


def test_only_a_failed_or_terminated_run_can_be_rerun_and_from_must_be_known(
    admin: Api, records: Path
) -> None:
    task_id = node_task(admin, records, "E")
    execution_id = admin.ok("POST", f"/tasks/{task_id}/trigger")["execution_id"]
    assert admin.wait_execution(task_id, execution_id)["status"] == "success"
    succeeded = admin.post(f"/executions/{execution_id}/rerun", json={})
    assert succeeded.status_code == 400, succeeded.text
    assert succeeded.json()["reason"] == "RUN_NOT_RERUNNABLE"
    for body in ({"from": "middle"}, {"from": 1}, {"start": "failed"}):
        response = admin.post(f"/executions/{execution_id}/rerun", json=body)
        assert (response.status_code, response.json()["reason"]) == (400, "INVALID_ARGUMENT"), body
    assert len(admin.executions(task_id)) == 1


def test_one_node_of_a_finished_workflow_run_reruns_alone_and_a_node_outside_it_is_refused(
    admin: Api, records: Path
) -> None:
    workflow_id, nodes = four_node_chain(admin, records, f'[ ! -f "{records}/fixed" ]', max_retries=0)
    first_id = admin.ok("POST", f"/tasks/{workflow_id}/trigger")["execution_id"]
    assert admin.wait_execution(workflow_id, first_id, 60)["status"] == "failed"
    (records / "fixed").touch()
    stranger = node_task(admin, records, "X")
    refused = admin.post(f"/executions/{first_id}/rerun", json={"from": "node", "task_id": stranger})
    assert (refused.status_code, refused.json()["reason"]) == (400, "RUN_NOT_RERUNNABLE"), refused.text
    for body in (
        {"from": "node"},
        {"from": "failed", "task_id": nodes[2]},
        {"from": "node", "task_id": str(nodes[2])},
    ):
        response = admin.post(f"/executions/{first_id}/rerun", json=body)
        assert (response.status_code, response.json()["reason"]) == (400, "INVALID_ARGUMENT"), body
    failed_node = {run["task_id"]: run for run in children(admin, first_id)}[nodes[2]]

    again = admin.ok("POST", f"/executions/{first_id}/rerun", json={"from": "node", "task_id": nodes[2]})
    assert (again["task_id"], again["parent_execution_id"]) == (nodes[2], first_id)
    assert again["rerun_of_execution_id"] == failed_node["id"]
    assert admin.wait_execution(nodes[2], again["id"], 60)["status"] == "success"
    assert ran(records) == ["A", "B", "C", "C"]
    # The run's DAG (its children, newest per node) shows the node's new attempt; the run keeps its status.
    newest = {run["task_id"]: run for run in children(admin, first_id)}
    assert (newest[nodes[2]]["id"], newest[nodes[2]]["status"]) == (again["id"], "success")
    assert admin.ok("GET", f"/tasks/{workflow_id}/executions/{first_id}")["status"] == "failed"
