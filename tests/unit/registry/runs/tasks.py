"""Tasks in a registry's database, for run recording's tests."""

from __future__ import annotations

import secrets

from services.registry.app import RegistryApp
from services.registry.db import utcnow
from services.registry.store import tasks as task_store


def new_task_id(app: RegistryApp) -> int:
    """A new example task's id (a unique name)."""
    with app.db.session() as session:
        task = task_store.create_task(
            session,
            {"name": f"t_{secrets.token_hex(6)}", "task_type": "example_task"},
            "admin",
            "UTC",
            utcnow(),
        )
        return task.id
