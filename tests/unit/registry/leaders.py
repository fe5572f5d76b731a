"""A scheduler leader in a registry's database, for tests of what happens only under one (the lease
reaper fails silent runs only while a leader is known alive: runs/reaper.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from services.registry.app import RegistryApp
from services.registry.models import SchedulerLeaderRow
from services.registry.store import leadership

CANDIDATE = "test-leader"
TERM_SECONDS = 3600


def lead(app: RegistryApp, in_office_since: datetime | None = None) -> leadership.Leadership:
    """Takes the leadership for the test's scheduler, or renews it: the leader is alive now. With
    `in_office_since`, its term counts as taken then."""
    with app.db.session() as session:
        state = leadership.acquire(session, CANDIDATE, TERM_SECONDS, app.clock())
        assert state.leader, f"{state.holder} leads, not {CANDIDATE}"
        if in_office_since is not None:
            session.execute(
                update(SchedulerLeaderRow)
                .where(SchedulerLeaderRow.id == leadership.ROW_ID)
                .values(taken_at=in_office_since)
            )
    return state


def step_down(app: RegistryApp) -> None:
    with app.db.session() as session:
        leadership.release(session, CANDIDATE, app.clock())
