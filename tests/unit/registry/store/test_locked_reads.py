"""A row locked after the transaction read it already (PostgreSQL) is decided on as it is when
locked, not as first read: the ORM keeps the first read's values unless the locked read
overwrites them. The task servicer's update reads the task (for the audit's before) and then
locks it; another writer committing in between must not be overlooked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.common.errors import InvalidArgument, Reason
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store import tasks as task_store

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_an_update_is_decided_on_the_task_as_locked_not_as_first_read(pg: Database) -> None:
    with pg.session() as session:
        fields = {"name": "locked_read", "task_type": "common_task", "config": {"command": "x"}}
        task_id = task_store.create_task(
            session, {**fields, "cron_expression": "0 18 * * 1-5"}, "admin", "UTC", NOW
        ).id
    with pytest.raises(InvalidArgument) as refused, pg.session() as session:  # a calendar needs a cron
        # Read first, as the servicer does, and held (the session keeps an object only while
        # something refers to it).
        _first_read = task_store.get_task(session, task_id)
        with pg.engine.begin() as other:  # another writer gives it a calendar meanwhile
            other.execute(
                text("UPDATE zq_task_scheduled_tasks SET calendar = 'XSHG' WHERE id = :id"), {"id": task_id}
            )
        changes = {"cron_expression": None, "interval_seconds": 60}
        task_store.update_task(session, task_id, changes, "admin", NOW)
    assert refused.value.reason == Reason.TASK_INVALID
    with pg.session() as session:
        row = session.get_one(TaskRow, task_id)
        assert (row.cron_expression, row.interval_seconds, row.calendar) == ("0 18 * * 1-5", None, "XSHG")
