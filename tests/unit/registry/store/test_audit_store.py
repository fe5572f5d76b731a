"""services.registry.store.audit on SQLite and PostgreSQL: entries commit or roll back with the change
they describe, list newest first, page, and filter by actor, action and target; bad filters are 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import InvalidArgument, Reason
from services.registry.db import Database
from services.registry.store import audit
from services.registry.store.audit import Action, Actor, AuditQuery, Target

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADMIN = Actor("admin", "10.0.0.1")
OPERATOR = Actor("op", "10.0.0.2")


def fill(db: Database) -> None:
    with db.session() as session:
        audit.record(
            session,
            audit.entry(ADMIN, Action.TASK_CREATE, Target.TASK, 1, NOW, name="a", changes={"tags": ["x"]}),
        )
        audit.record(
            session,
            audit.entry(OPERATOR, Action.TASK_TRIGGER, Target.TASK, 1, NOW + timedelta(seconds=1), name="a"),
        )
        audit.record(
            session, audit.entry(OPERATOR, Action.EXECUTION_TERMINATE, Target.EXECUTION, 9, NOW, name="a")
        )
        audit.record(session, audit.entry(ADMIN, Action.USER_UNLOCK, Target.USER, "bob", NOW, name="bob"))


def listed(db: Database, **filters: object) -> list[tuple[str, str, str]]:
    with db.session() as session:
        rows, total = audit.list_entries(session, AuditQuery(**filters))  # type: ignore[arg-type]
        assert total >= len(rows)
        return [(row.actor, row.action, row.target_id) for row in rows]


def test_entries_list_newest_first_and_filter_by_actor_action_and_target(db: Database) -> None:
    fill(db)
    assert listed(db) == [
        ("admin", "user.unlock", "bob"),
        ("op", "execution.terminate", "9"),
        ("op", "task.trigger", "1"),
        ("admin", "task.create", "1"),
    ]
    assert listed(db, actor="op") == [("op", "execution.terminate", "9"), ("op", "task.trigger", "1")]
    assert listed(db, action="task.create") == [("admin", "task.create", "1")]
    assert listed(db, target_type="task", target_id="1") == [
        ("op", "task.trigger", "1"),
        ("admin", "task.create", "1"),
    ]
    assert listed(db, skip=1, limit=2) == [("op", "execution.terminate", "9"), ("op", "task.trigger", "1")]
    with db.session() as session:
        rows, total = audit.list_entries(session, AuditQuery(limit=1))
        assert total == 4 and rows[0].address == "10.0.0.1" and rows[0].target_name == "bob"


def test_an_entry_rolls_back_with_its_change(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        audit.record(session, audit.entry(ADMIN, Action.TASK_DELETE, Target.TASK, 1, NOW))
        raise RuntimeError("the change failed")
    assert listed(db) == []


@pytest.mark.parametrize(
    ("filters", "reason"),
    [
        ({"action": "task.explode"}, Reason.FILTER_INVALID),
        ({"target_type": "host"}, Reason.FILTER_INVALID),
        ({"limit": 501}, Reason.PAGE_INVALID),
        ({"skip": -1}, Reason.PAGE_INVALID),
    ],
)
def test_a_bad_filter_or_page_is_refused(db: Database, filters: dict[str, object], reason: Reason) -> None:
    with pytest.raises(InvalidArgument) as refused, db.session() as session:
        audit.list_entries(session, AuditQuery(**filters))  # type: ignore[arg-type]
    assert refused.value.reason == reason


def test_a_diff_holds_only_the_fields_that_changed() -> None:
    before = {"max_retries": 3, "tags": ["a"], "name": "x"}
    after = {"max_retries": 0, "tags": ["a"], "name": "x"}
    assert audit.diff(before, after) == {"max_retries": [3, 0]}
