"""services.registry.store.manual_runs.trigger_execution on SQLite and PostgreSQL: `forbid` applies
to manual triggers, triggers racing each other in separate transactions start exactly one run, and
a trigger given an executor (a trigger offer's answer) creates its run running there."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.rpc import error_details_pb2
from sqlalchemy import event, func, select, update

from services.common.errors import Conflict, DomainError, Reason
from services.registry.db import Database
from services.registry.models import ExecutionRow
from services.registry.store import manual_runs, tasks
from services.registry.store.executions import Claim

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def new_task(db: Database, name: str, policy: str) -> int:
    fields = {
        "name": name,
        "task_type": "manual_task",
        "config": {"command": "true"},
        "concurrency_policy": policy,
    }
    with db.session() as session:
        return tasks.create_task(session, fields, "admin", "UTC", NOW).id


def trigger(db: Database, task_id: int) -> int:
    with db.session(serialized=True) as session:
        return manual_runs.trigger_execution(session, task_id, NOW).run.id


def test_a_forbid_task_with_a_live_run_refuses_a_trigger_naming_the_run(db: Database) -> None:
    task_id = new_task(db, "forbid", "forbid")
    first = trigger(db, task_id)
    with pytest.raises(Conflict) as refused:
        trigger(db, task_id)
    assert refused.value.reason == Reason.RUN_ALREADY_ACTIVE and str(first) in refused.value.message
    (resource,) = refused.value.details
    assert isinstance(resource, error_details_pb2.ResourceInfo) and resource.resource_name == str(first)


def test_an_allow_task_takes_every_trigger(db: Database) -> None:
    task_id = new_task(db, "allow", "allow")
    assert len({trigger(db, task_id) for _ in range(3)}) == 3


def test_racing_triggers_of_a_forbid_task_start_exactly_one_run(db: Database) -> None:
    task_id = new_task(db, "race", "forbid")

    def attempt(_: int) -> str:
        try:
            trigger(db, task_id)
        except DomainError as exc:
            return exc.reason
        return "started"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("started") == 1 and outcomes.count(Reason.RUN_ALREADY_ACTIVE) == 19, outcomes
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ExecutionRow)) == 1


def test_a_forbid_trigger_checks_for_a_live_run_and_inserts_in_one_statement(db: Database) -> None:
    task_id = new_task(db, "one-statement", "forbid")
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "zq_task_task_executions" in statement:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        trigger(db, task_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert len(statements) == 1 and statements[0].lstrip().startswith("INSERT"), statements


def test_a_trigger_of_a_forbid_task_after_its_run_ended_starts_a_new_one(db: Database) -> None:
    task_id = new_task(db, "ended", "forbid")
    first = trigger(db, task_id)
    with db.session() as session:
        session.execute(update(ExecutionRow).where(ExecutionRow.id == first).values(status="success"))
    assert trigger(db, task_id) > first


@pytest.mark.parametrize("policy", ["allow", "forbid"])
def test_a_trigger_given_an_executor_creates_its_run_running_there_from_the_moment_it_was_named(
    db: Database, policy: str
) -> None:
    task_id = new_task(db, f"started-{policy}", policy)
    named = NOW + timedelta(milliseconds=3)
    asked: list[str] = []

    def start() -> Claim:
        with db.engine.connect() as other:  # asked before the insert: no run yet
            asked.append(str(other.scalar(select(func.count()).select_from(ExecutionRow))))
        return Claim("10.0.0.7:50052", named + timedelta(seconds=15), started_at=named)

    with db.session(serialized=True) as session:
        triggered = manual_runs.trigger_execution(session, task_id, NOW, start=start)
        run_id = triggered.run.id
    assert asked == ["0"] and triggered.task.name == f"started-{policy}"
    with db.session() as session:
        row = session.get(ExecutionRow, run_id)
        assert row is not None
        assert (row.status, row.executor, row.attempt) == ("running", "10.0.0.7:50052", 1)
        assert (row.created_at, row.start_time, row.lease_expires_at) == (
            NOW,
            named,
            named + timedelta(seconds=15),
        )


def test_a_trigger_refused_by_forbid_creates_nothing_though_an_executor_was_named(db: Database) -> None:
    task_id = new_task(db, "refused-started", "forbid")
    trigger(db, task_id)
    with pytest.raises(Conflict), db.session(serialized=True) as session:
        manual_runs.trigger_execution(
            session, task_id, NOW, start=lambda: Claim("10.0.0.7:50052", NOW + timedelta(seconds=15))
        )
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(ExecutionRow)) == 1
