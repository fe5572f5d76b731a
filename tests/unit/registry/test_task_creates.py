"""services.registry.task_creates on SQLite and PostgreSQL: single creates that arrive together are
stored in one transaction, and each still gets its own task or its own error."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from services.common.errors import AlreadyExists, InvalidArgument, Reason
from services.registry.convert import task_to_proto
from services.registry.db import Database
from services.registry.models import AuditRow, TaskRow
from services.registry.settings import RegistrySettings
from services.registry.store import task_batches
from services.registry.store.audit import Action, Actor
from services.registry.task_creates import TaskCreates

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor("admin", "10.0.0.1")


def fields(name: str, **more: Any) -> dict[str, Any]:
    schedule = {} if "cron_expression" in more else {"interval_seconds": 60}
    return {"name": name, "task_type": "common_task", "config": {"command": "true"}, **schedule, **more}


@pytest.fixture
def creates(db: Database) -> Iterator[TaskCreates]:
    settings = RegistrySettings.from_env({"ZQ_SERVICE_TOKEN": "t", "ZQ_DEFAULT_TIMEZONE": "Asia/Shanghai"})
    line = TaskCreates(db, settings, lambda: NOW)
    yield line
    line.close()


@pytest.fixture
def commits(db: Database) -> Iterator[list[int]]:
    """One entry per transaction committed while the test runs."""
    seen: list[int] = []

    def count(_conn: Any) -> None:
        seen.append(1)

    event.listen(db.engine, "commit", count)
    yield seen
    event.remove(db.engine, "commit", count)


async def create_all(creates: TaskCreates, items: list[dict[str, Any]]) -> list[TaskRow | BaseException]:
    return await asyncio.gather(*(creates.create(item, ADMIN) for item in items), return_exceptions=True)


def stored_names(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(TaskRow.name)))


def create_audits(db: Database) -> list[tuple[str, str]]:
    with db.session() as session:
        rows = session.execute(
            select(AuditRow.target_name, AuditRow.actor).where(AuditRow.action == Action.TASK_CREATE)
        )
        return sorted((name, actor) for name, actor in rows)


async def test_creates_that_arrive_together_share_one_transaction_and_each_gets_its_own_task(
    db: Database, creates: TaskCreates, commits: list[int]
) -> None:
    rows = await create_all(creates, [fields(f"t{i:02d}") for i in range(20)])
    assert [row.name for row in rows if isinstance(row, TaskRow)] == [f"t{i:02d}" for i in range(20)]
    assert len({row.id for row in rows if isinstance(row, TaskRow)}) == 20
    assert len(commits) == 1
    assert stored_names(db) == [f"t{i:02d}" for i in range(20)]
    assert create_audits(db) == [(f"t{i:02d}", "admin") for i in range(20)]


async def test_a_lone_create_goes_at_once_in_a_transaction_of_its_own(
    db: Database, creates: TaskCreates, commits: list[int]
) -> None:
    first = await creates.create(fields("first"), ADMIN)
    second = await creates.create(fields("second"), ADMIN)
    assert (first.name, second.name) == ("first", "second") and first.id < second.id
    assert len(commits) == 2


async def test_a_name_taken_before_fails_only_its_own_create(db: Database, creates: TaskCreates) -> None:
    await creates.create(fields("taken"), ADMIN)
    a, taken, b = await create_all(creates, [fields("a"), fields("taken"), fields("b")])
    assert isinstance(a, TaskRow) and isinstance(b, TaskRow)
    assert isinstance(taken, AlreadyExists) and taken.reason == Reason.TASK_NAME_TAKEN
    assert stored_names(db) == ["a", "b", "taken"]
    assert create_audits(db) == [("a", "admin"), ("b", "admin"), ("taken", "admin")]


async def test_two_creates_of_one_name_at_once_make_one_task(db: Database, creates: TaskCreates) -> None:
    first, second = await create_all(creates, [fields("same"), fields("same", interval_seconds=30)])
    assert isinstance(first, TaskRow) and first.interval_seconds == 60
    assert isinstance(second, AlreadyExists) and second.reason == Reason.TASK_NAME_TAKEN
    assert stored_names(db) == ["same"]


async def test_a_create_that_breaks_a_rule_fails_alone_with_its_reason(
    db: Database, creates: TaskCreates
) -> None:
    good, bad = await create_all(creates, [fields("good"), fields("bad", cron_expression="not a cron")])
    assert isinstance(good, TaskRow)
    assert isinstance(bad, InvalidArgument) and bad.reason == Reason.CRON_INVALID
    assert stored_names(db) == ["good"]


async def test_a_group_the_database_refuses_is_stored_again_one_create_at_a_time(
    db: Database, creates: TaskCreates, monkeypatch: pytest.MonkeyPatch, commits: list[int]
) -> None:
    def refused(*_args: Any) -> dict[str, int]:
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(task_batches, "insert_new", refused)  # the group's statement only
    rows = await create_all(creates, [fields("x"), fields("y"), fields("z")])
    assert [row.name for row in rows if isinstance(row, TaskRow)] == ["x", "y", "z"]
    assert len(commits) == 3  # each alone
    assert stored_names(db) == ["x", "y", "z"]
    assert create_audits(db) == [("x", "admin"), ("y", "admin"), ("z", "admin")]


async def test_a_create_in_a_group_answers_as_a_lone_create_would(db: Database, creates: TaskCreates) -> None:
    given = {"cron_expression": "0 18 * * 1-5", "tags": ["eod"], "description": "d", "max_retries": 1}
    alone = await creates.create(fields("alone", **given), ADMIN)
    grouped = (await create_all(creates, [fields("grouped", **given), fields("other")]))[0]
    assert isinstance(grouped, TaskRow)
    lone_task, grouped_task = task_to_proto(alone, NOW), task_to_proto(grouped, NOW)
    for task in (lone_task, grouped_task):
        task.ClearField("id")
        task.ClearField("name")
    assert grouped_task == lone_task


async def test_a_caller_gone_before_its_turn_creates_nothing(db: Database, creates: TaskCreates) -> None:
    first = asyncio.ensure_future(creates.create(fields("first"), ADMIN))
    await asyncio.sleep(0)  # the first is being stored
    gone = asyncio.ensure_future(creates.create(fields("gone"), ADMIN))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await first).name == "first"
    with pytest.raises(asyncio.CancelledError):
        await gone
    await creates.create(fields("after"), ADMIN)  # the line goes on
    assert stored_names(db) == ["after", "first"]


async def test_the_lines_transactions_run_on_a_thread_of_their_own(
    db: Database, creates: TaskCreates
) -> None:
    threads: set[str] = set()

    def note_thread(*_: Any) -> None:
        threads.add(threading.current_thread().name)

    event.listen(db.engine, "commit", note_thread)
    try:
        for name in ("own-thread-1", "own-thread-2", "own-thread-3"):  # one group each
            await creates.create(fields(name), ADMIN)
    finally:
        event.remove(db.engine, "commit", note_thread)
    assert len(threads) == 1 and next(iter(threads)).startswith("task-creates")
