"""services.registry.store.tasks on SQLite and PostgreSQL: what a create adds to the rules of a
task (a taken name is answered by the unique index)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from services.common.errors import AlreadyExists
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store import tasks

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def item(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "task_type": "common_task", "config": {"command": "true"}, **fields}


def test_a_single_create_of_a_taken_name_is_answered_by_the_unique_index(db: Database) -> None:
    with db.session() as session:
        tasks.create_task(session, item("once"), "admin", "UTC", NOW)
    with pytest.raises(AlreadyExists, match="任务名称 'once' 已存在"), db.session() as session:
        tasks.create_task(session, item("once"), "admin", "UTC", NOW)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(TaskRow)) == 1
