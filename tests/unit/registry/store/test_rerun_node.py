"""Rerunning one node of a finished workflow run (`store.executions.rerun_node`, both backends): the
node alone runs again as a child of that run, for its date with its params, linked to the node's
previous attempt; a node outside the workflow, a run still live or a run that is no workflow run is
refused with RUN_NOT_RERUNNABLE and nothing is created. And a run's note is kept and shown."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from services.common.errors import FailedPrecondition, InvalidArgument, Reason
from services.registry.convert import execution_to_proto
from services.registry.db import Database, utcnow
from services.registry.models import ExecutionRow
from services.registry.store import executions as store
from services.registry.store import manual_runs
from services.registry.store import tasks as task_store


def new_task(db: Database, task_type: str, config: dict[str, object], now: datetime) -> int:
    fields = {"name": f"node_{uuid.uuid4().hex[:12]}", "task_type": task_type, "config": config}
    with db.session() as session:
        return task_store.create_task(session, fields, "admin", "UTC", now).id


def run(db: Database, task_id: int, status: str, now: datetime, parent: int = 0, **fields: object) -> int:
    """A run of `task_id` (a child of `parent`) already in `status`."""
    with db.session() as session:
        trigger = "workflow" if parent else "manual"
        new = store.NewExecution(
            task_id=task_id, trigger=trigger, scheduled_time=now, parent_execution_id=parent
        )
        row, _ = store.create_execution(session, new, now)
        values = {"status": status, **fields}
        session.execute(update(ExecutionRow).where(ExecutionRow.id == row.id).values(**values))
        return row.id


def finished_workflow_run(db: Database, status: str = "failed") -> tuple[int, list[int], int, list[int]]:
    """A serial workflow of three nodes and its run: the first node succeeded, the second failed,
    the third never started. Returns (workflow, nodes, run, the run's children)."""
    now = utcnow()
    nodes = [new_task(db, "example_task", {}, now) for _ in range(3)]
    config: dict[str, object] = {"workflow_type": "serial", "tasks": [{"task_id": node} for node in nodes]}
    workflow = new_task(db, "workflow", config, now)
    params = {"symbol": "600000"}
    workflow_run = run(db, workflow, status, now, logical_date="2024-02-08", params=params)
    children = [
        run(db, nodes[0], "success", now, workflow_run, logical_date="2024-02-08", params=params),
        run(db, nodes[1], "failed", now, workflow_run, logical_date="2024-02-08", params=params),
    ]
    return workflow, nodes, workflow_run, children


def rerun_node(db: Database, execution_id: int, node: int) -> ExecutionRow:
    with db.session(serialized=True) as session:
        return manual_runs.rerun_node(session, execution_id, node, utcnow(), "alice")


def count_runs(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(ExecutionRow)) or 0


def test_a_node_of_a_finished_workflow_run_reruns_alone_linked_to_its_previous_attempt(db: Database) -> None:
    _, nodes, workflow_run, children = finished_workflow_run(db)
    again = rerun_node(db, workflow_run, nodes[1])
    assert (again.task_id, again.status, again.trigger) == (nodes[1], "pending", "manual")
    assert again.parent_execution_id == workflow_run and again.rerun_of_id == children[1]
    assert (again.logical_date, again.params, again.triggered_by) == (
        "2024-02-08",
        {"symbol": "600000"},
        "alice",
    )
    with db.session() as session:
        assert store.get_execution(session, workflow_run).status == "failed"  # the run keeps its status
        assert store.get_execution(session, again.id).parent_execution_id == workflow_run


def test_a_node_that_never_ran_in_the_run_links_to_the_workflow_run(db: Database) -> None:
    _, nodes, workflow_run, _ = finished_workflow_run(db, status="terminated")
    assert rerun_node(db, workflow_run, nodes[2]).rerun_of_id == workflow_run


def test_a_succeeded_workflow_runs_node_can_be_rerun_too(db: Database) -> None:
    _, nodes, workflow_run, children = finished_workflow_run(db, status="success")
    assert rerun_node(db, workflow_run, nodes[0]).rerun_of_id == children[0]


def test_a_node_outside_the_workflow_a_live_run_and_a_plain_run_are_refused(db: Database) -> None:
    now = utcnow()
    _, nodes, workflow_run, _ = finished_workflow_run(db)
    stranger = new_task(db, "example_task", {}, now)
    before = count_runs(db)
    with pytest.raises(InvalidArgument) as outside:
        rerun_node(db, workflow_run, stranger)
    assert outside.value.reason == Reason.RUN_NOT_RERUNNABLE and str(stranger) in outside.value.message
    _, live_nodes, live_run, _ = finished_workflow_run(db, status="running")
    with pytest.raises(FailedPrecondition) as live:
        rerun_node(db, live_run, live_nodes[1])
    assert live.value.reason == Reason.RUN_NOT_RERUNNABLE
    plain = run(db, stranger, "failed", now)
    with pytest.raises(InvalidArgument) as not_a_workflow:
        rerun_node(db, plain, stranger)
    assert not_a_workflow.value.reason == Reason.RUN_NOT_RERUNNABLE
    assert count_runs(db) == before + 4  # the second workflow run, its two children, the plain run


def test_a_runs_note_is_stored_and_shown(db: Database) -> None:
    now = utcnow()
    task_id = new_task(db, "example_task", {}, now)
    note = "日历数据未覆盖: XSHG 的数据截至 2026-12-31，之后按工作日（周一至周五）执行"
    with db.session() as session:
        new = store.NewExecution(task_id=task_id, trigger="schedule", scheduled_time=now, note=note)
        row, _ = store.create_execution(session, new, now)
        plain, _ = store.create_execution(session, store.NewExecution(task_id, "manual", now), now)
    with db.session() as session:
        assert execution_to_proto(store.get_execution(session, row.id)).note == note
        assert execution_to_proto(store.get_execution(session, plain.id)).note == ""
