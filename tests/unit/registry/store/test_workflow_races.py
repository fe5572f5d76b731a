"""A task deleted while a workflow is being saved with it (PostgreSQL, two transactions at once):
whichever commits first, no workflow is left naming a task that does not exist. SQLite runs the two
one after the other (a workflow's create and a task's delete are serialized transactions).

Two workflows saved at once, each made to contain the other, deadlock on PostgreSQL (each save
holds its own row and waits for the other's): the one PostgreSQL aborts is answered 409
CONCURRENT_CHANGE, never an internal error, and neither workflow is left containing the other.

Each test holds one transaction open and runs the other in a thread (tests/unit/registry/races.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.errors import Reason
from services.common.workflow_plan import referenced_task_ids
from services.registry.db import Database, concurrent_change, locked
from services.registry.models import TaskRow
from services.registry.store import tasks as task_store
from tests.unit.registry.races import InThread, wait_until_waiting_on

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def fields(name: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "task_type": "common_task", "config": {"command": "echo hi"}, **more}


def new_task(db: Database, name: str) -> int:
    with db.session() as session:
        return task_store.create_task(session, fields(name), "admin", "UTC", NOW).id


def workflow_of(name: str, sub_task: int) -> dict[str, Any]:
    return {
        "name": name,
        "task_type": "workflow",
        "config": {"workflow_type": "serial", "tasks": [{"task_id": sub_task}]},
    }


def names_of(db: Database, *names: str) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(TaskRow.name).where(TaskRow.name.in_(names))))


def test_a_task_delete_waits_for_a_workflow_being_saved_with_it_and_then_finds_it_referenced(
    pg: Database,
) -> None:
    sub_task = new_task(pg, "step_a")
    with pg.session() as session:
        task_store.create_task(session, workflow_of("flow_a", sub_task), "admin", "UTC", NOW)
        delete = InThread(pg, lambda other: task_store.delete_task(other, sub_task, force=False))
        wait_until_waiting_on(pg, "zq_task_scheduled_tasks")
    delete.join()
    assert delete.error is not None and delete.error.reason == Reason.TASK_REFERENCED
    assert names_of(pg, "step_a", "flow_a") == ["flow_a", "step_a"]


def test_a_workflow_saved_with_a_task_being_deleted_waits_and_is_then_refused(pg: Database) -> None:
    sub_task = new_task(pg, "step_b")
    with pg.session() as session:
        task_store.delete_task(session, sub_task, force=False)
        save = InThread(
            pg,
            lambda other: task_store.create_task(other, workflow_of("flow_b", sub_task), "admin", "UTC", NOW),
        )
        wait_until_waiting_on(pg, "zq_task_scheduled_tasks")
    save.join()
    assert save.error is not None and "以下任务不存在" in save.error.message
    assert names_of(pg, "step_b", "flow_b") == []


def contain(session: Session, workflow: int, other: int) -> None:
    """Saves `workflow` as a serial workflow of `other` (a user's PUT of its config)."""
    config = {"workflow_type": "serial", "tasks": [{"task_id": other}]}
    task_store.update_task(session, workflow, {"config": config}, "admin", NOW)


def test_two_workflows_saved_at_once_each_containing_the_other_end_in_one_save_and_one_conflict(
    pg: Database,
) -> None:
    step = new_task(pg, "step_c")
    with pg.session() as session:
        first = task_store.create_task(session, workflow_of("flow_c1", step), "admin", "UTC", NOW).id
        second = task_store.create_task(session, workflow_of("flow_c2", step), "admin", "UTC", NOW).id
    failures: list[Exception] = []

    def save_second() -> None:
        try:
            with pg.session() as other:
                contain(other, second, first)
        except Exception as exc:
            failures.append(exc)

    try:
        with pg.session() as session:
            locked(session, TaskRow, first)  # the first save holds its own row, as update_task does
            thread = threading.Thread(target=save_second)
            thread.start()  # holds the second's row, then waits for the first's
            wait_until_waiting_on(pg, "zq_task_scheduled_tasks")
            contain(session, first, second)  # waits for the second's: a deadlock
    except Exception as exc:
        failures.append(exc)
    thread.join(30)
    assert not thread.is_alive()

    assert len(failures) == 1, failures
    conflict = concurrent_change(failures[0])
    assert conflict is not None and conflict.reason == Reason.CONCURRENT_CHANGE
    assert conflict.code.name == "ABORTED"  # HTTP 409
    with pg.session() as session:
        contains = {
            workflow: set(referenced_task_ids(task_store.get_task(session, workflow).config))
            for workflow in (first, second)
        }
    # Exactly one save went through: neither contains the other both ways.
    assert contains in ({first: {second}, second: {step}}, {first: {step}, second: {first}})


def test_an_error_the_database_did_not_abort_for_a_collision_is_not_a_concurrent_change() -> None:
    assert concurrent_change(ValueError("not a database error")) is None
