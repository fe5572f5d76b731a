"""A custom calendar deleted while a task is being given it (PostgreSQL, two transactions at once):
whichever commits first, no task is left naming a calendar that does not exist. SQLite runs the
two one after the other (both are serialized transactions), so the race is PostgreSQL's alone.

Each test holds one transaction open, starts the other in a thread, waits until PostgreSQL shows it
waiting for a lock, then commits the first. Without the locks the second does not wait at all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.common.errors import DomainError, Reason
from services.registry.db import Database, migrate
from services.registry.models import TaskRow
from services.registry.store import calendars
from services.registry.store import tasks as task_store
from tests.conftest import postgres_schema_url

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WEEKDAYS_AT_SIX = {"cron_expression": "0 18 * * 1-5"}


@pytest.fixture(scope="module")
def pg() -> Iterator[Database]:
    with postgres_schema_url("zq_calendar_race") as url:
        db = Database(url)
        migrate(db.engine)
        yield db
        db.dispose()


def new_calendar(db: Database, name: str) -> None:
    change = calendars.CalendarChange(base="XSHG", added=[], removed=[], data_end="", description="")
    with db.session() as session:
        calendars.create_calendar(session, name, change, "admin", NOW)


def new_task(db: Database, name: str) -> int:
    fields = {"name": name, "task_type": "common_task", "config": {"command": "echo hi"}, **WEEKDAYS_AT_SIX}
    with db.session() as session:
        return task_store.create_task(session, fields, "admin", "Asia/Shanghai", NOW).id


class InThread:
    """`work` in a transaction of its own in another thread; `error` is what it raised."""

    def __init__(self, db: Database, work: Callable[[Session], object]) -> None:
        self.error: DomainError | None = None

        def run() -> None:
            try:
                with db.session() as session:
                    work(session)
            except DomainError as exc:
                self.error = exc

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive()


# A statement on the calendars table waiting for a lock (other tests may share the server).
WAITING_ON_A_CALENDAR = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE NOT l.granted AND a.query LIKE '%zq_task_calendars%'"
)


def wait_until_one_waits_for_a_lock(db: Database) -> None:
    deadline = time.monotonic() + 10
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(WAITING_ON_A_CALENDAR).scalar_one():
                return
            conn.rollback()
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited for the first")


def calendar_of(db: Database, task_id: int) -> str | None:
    with db.session() as session:
        return session.get_one(TaskRow, task_id).calendar


def test_a_calendar_delete_waits_for_a_task_being_given_it_and_then_finds_the_task_using_it(
    pg: Database,
) -> None:
    new_calendar(pg, "desk_a")
    task_id = new_task(pg, "race_a")
    with pg.session() as session:
        task_store.update_task(session, task_id, {"calendar": "desk_a"}, "admin", NOW)
        delete = InThread(pg, lambda other: calendars.delete_calendar(other, "desk_a"))
        wait_until_one_waits_for_a_lock(pg)
    delete.join()
    assert delete.error is not None and delete.error.reason == Reason.CALENDAR_IN_USE
    assert calendar_of(pg, task_id) == "desk_a"


def test_a_task_given_a_calendar_being_deleted_waits_and_is_then_refused(pg: Database) -> None:
    new_calendar(pg, "desk_b")  # this replica has it loaded: the task's check must not trust that
    task_id = new_task(pg, "race_b")
    with pg.session() as session:
        calendars.delete_calendar(session, "desk_b")
        update = InThread(
            pg, lambda other: task_store.update_task(other, task_id, {"calendar": "desk_b"}, "admin", NOW)
        )
        wait_until_one_waits_for_a_lock(pg)
    update.join()
    assert update.error is not None and update.error.reason == Reason.CALENDAR_UNKNOWN
    assert calendar_of(pg, task_id) is None
