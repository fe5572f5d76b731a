"""A custom calendar deleted while a task is being given it (PostgreSQL, two transactions at once):
whichever commits first, no task is left naming a calendar that does not exist. Two first syncs of
a library calendar ending at once: both runs end, and the calendar keeps the sessions of both. SQLite runs the
two one after the other (both are serialized transactions), so the race is PostgreSQL's alone.

Each test holds one transaction open and runs the other in a thread (tests/unit/registry/races.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select

from services.common.calendars import SyncedSessions
from services.common.errors import Reason
from services.registry.db import Database
from services.registry.models import CalendarSyncRow, ExecutionRow, TaskRow
from services.registry.store import calendars
from services.registry.store import tasks as task_store
from tests.unit.registry.races import InThread, wait_until_waiting_on

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WEEKDAYS_AT_SIX = {"cron_expression": "0 18 * * 1-5"}


def new_calendar(db: Database, name: str) -> None:
    change = calendars.CalendarChange(base="XSHG", added=[], removed=[], data_end="", description="")
    with db.session() as session:
        calendars.create_calendar(session, name, change, "admin", NOW)


def new_task(db: Database, name: str) -> int:
    fields = {"name": name, "task_type": "common_task", "config": {"command": "echo hi"}, **WEEKDAYS_AT_SIX}
    with db.session() as session:
        return task_store.create_task(session, fields, "admin", "Asia/Shanghai", NOW).id


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
        wait_until_waiting_on(pg, "zq_task_calendars")
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
        wait_until_waiting_on(pg, "zq_task_calendars")
    update.join()
    assert update.error is not None and update.error.reason == Reason.CALENDAR_UNKNOWN
    assert calendar_of(pg, task_id) is None


def sync_task(db: Database, name: str) -> int:
    fields = {
        "name": name,
        "task_type": "data_sync_trading_calendar",
        "config": {
            "provider": "recorded",
            "calendar": "XSHG",
            "start_date": "2027-01-01",
            "end_date": "2027-12-31",
        },
    }
    with db.session() as session:
        return task_store.create_task(session, fields, "admin", "Asia/Shanghai", NOW).id


def sync_ended(task_id: int, execution_id: int, first: date, last: date) -> ExecutionRow:
    """A sync run of XSHG ending successfully with the sessions of first..last (weekdays)."""
    synced = SyncedSessions(name="XSHG", ranges=((first, last),), closed=frozenset(), opened=frozenset())
    return ExecutionRow(id=execution_id, task_id=task_id, status="success", result=synced.result_fields())


def test_two_first_syncs_of_a_calendar_ending_at_once_both_keep_their_sessions(pg: Database) -> None:
    task_id = sync_task(pg, "sync_race")
    january = (date(2027, 1, 1), date(2027, 1, 31))
    march = (date(2027, 3, 1), date(2027, 3, 31))
    with pg.session() as session:
        assert calendars.record_synced(session, sync_ended(task_id, 1, *january), NOW) == "XSHG"
        other = InThread(
            pg, lambda other: calendars.record_synced(other, sync_ended(task_id, 2, *march), NOW)
        )
        wait_until_waiting_on(pg, "zq_task_calendar_syncs")
    other.join()
    assert other.error is None
    with pg.session() as session:
        stored = session.scalars(select(CalendarSyncRow).where(CalendarSyncRow.calendar == "XSHG")).one()
        assert stored.ranges == [[day.isoformat() for day in january], [day.isoformat() for day in march]]
        assert stored.execution_id == 2
