"""Scheduler leader election in the database: one row, taken over only when expired. The leader's
renewals also carry the executors as it sees them (address, capacity, runs going on), kept on the
row for the status API; a release or a takeover replaces them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.registry.models import SchedulerLeaderRow

ROW_ID = 1


@dataclass(frozen=True, slots=True)
class Leadership:
    leader: bool
    holder: str
    term: int
    expires_at: datetime
    # What the leader last reported of each executor (see ExecutorState in status_service.proto).
    executors: tuple[dict[str, Any], ...] = ()


def acquire(
    session: Session,
    candidate: str,
    ttl_seconds: int,
    now: datetime,
    executors: Sequence[dict[str, Any]] = (),
) -> Leadership:
    """Renews for the holder, takes over when free or expired; each is one atomic statement.
    `executors`: the candidate's view of them, stored when it holds the leadership."""
    if not candidate or len(candidate) > 200:
        raise InvalidArgument("candidate 必须是1到200个字符", reason=Reason.LEADERSHIP_INVALID)
    expires = now + timedelta(seconds=ttl_seconds)
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SchedulerLeaderRow)
    session.execute(
        insert.values(id=ROW_ID, holder="", term=0, expires_at=now).on_conflict_do_nothing(
            index_elements=["id"]
        )
    )
    renewed = session.execute(
        update(SchedulerLeaderRow)
        .where(SchedulerLeaderRow.id == ROW_ID, SchedulerLeaderRow.holder == candidate)
        .values(expires_at=expires, executors=list(executors))
        .returning(SchedulerLeaderRow.id)
    ).scalar()
    if renewed is None:
        session.execute(
            update(SchedulerLeaderRow)
            .where(SchedulerLeaderRow.id == ROW_ID, SchedulerLeaderRow.expires_at <= now)
            .values(
                holder=candidate,
                term=SchedulerLeaderRow.term + 1,
                expires_at=expires,
                executors=list(executors),
            )
        )
    row = session.get(SchedulerLeaderRow, ROW_ID, populate_existing=True)
    assert row is not None
    return Leadership(
        leader=row.holder == candidate, holder=row.holder, term=row.term, expires_at=row.expires_at
    )


def release(session: Session, candidate: str, now: datetime) -> None:
    session.execute(
        update(SchedulerLeaderRow)
        .where(SchedulerLeaderRow.id == ROW_ID, SchedulerLeaderRow.holder == candidate)
        .values(holder="", expires_at=now, executors=[])
    )


def current_leader(session: Session, now: datetime) -> Leadership | None:
    """The holder of an unexpired term, or None when no scheduler leads (never elected, released
    on a graceful stop, or expired after a crash)."""
    row = session.get(SchedulerLeaderRow, ROW_ID)
    if row is None or not row.holder or row.expires_at <= now:
        return None
    return Leadership(
        leader=True,
        holder=row.holder,
        term=row.term,
        expires_at=row.expires_at,
        executors=tuple(row.executors or ()),
    )
