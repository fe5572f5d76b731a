"""A task deleted while a workflow is being saved with it (PostgreSQL, two transactions at once):
whichever commits first, no workflow is left naming a task that does not exist. SQLite runs the two
one after the other (a workflow's create and a task's delete are serialized transactions).

Each test holds one transaction open and runs the other in a thread (tests/unit/registry/races.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from services.common.errors import Reason
from services.registry.db import Database
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
