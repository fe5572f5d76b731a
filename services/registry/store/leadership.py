"""Scheduler leader election in the database: one row, taken over only when expired. The leader's
renewals also carry the executors as it sees them (address, capacity, runs going on), kept on the
row for the status API; a release or a takeover replaces them. The row also says when the term was
taken and last renewed: the lease reaper fails a silent run only under a leader known to be alive
(runs/reaper.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, and_, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.registry.db import upsert_into
from services.registry.models import SchedulerLeaderRow

ROW_ID = 1


@dataclass(frozen=True, slots=True)
class Leadership:
    leader: bool
    holder: str
    term: int
    expires_at: datetime
    # When the holder took the term (a takeover, or a renewal after its term had run out), and last
    # renewed it; None for a row written before these were kept.
    taken_at: datetime | None = None
    renewed_at: datetime | None = None
    # What the leader last reported of each executor (see ExecutorState in status_service.proto).
    executors: tuple[dict[str, Any], ...] = ()


def acquire(
    session: Session,
    candidate: str,
    ttl_seconds: int,
    now: datetime,
    executors: Sequence[dict[str, Any]] = (),
) -> Leadership:
    """Renews for the holder, takes over when free or expired: one atomic statement (a new term on
    a takeover). `executors`: the candidate's view of them, stored when it holds the leadership.

    A renewal runs every few seconds for as long as the stack is up, idle or not
    (live/leadership.py): it is one Core statement, and the row is read back only when the
    candidate does not lead (or before the first election ever, when the row is created)."""
    if not candidate or len(candidate) > 200:
        raise InvalidArgument("candidate 必须是1到200个字符", reason=Reason.LEADERSHIP_INVALID)
    params = {
        "candidate": candidate,
        "expires": now + timedelta(seconds=ttl_seconds),
        "now": now,
        "executors": list(executors),
    }
    taken = session.execute(_TAKE, params).first()
    if taken is None:
        current = session.execute(_READ).first()
        if current is not None:
            return _not_leading(current)
        # Never elected: create the row, then compete for it like any other candidate.
        _create_row(session, now)
        taken = session.execute(_TAKE, params).first()
        if taken is None:
            return _not_leading(session.execute(_READ).one())
    return Leadership(
        leader=True,
        holder=candidate,
        term=taken.term,
        expires_at=taken.expires_at,
        taken_at=taken.taken_at,
        renewed_at=now,
    )


def _not_leading(current: Any) -> Leadership:
    return Leadership(leader=False, holder=current.holder, term=current.term, expires_at=current.expires_at)


_LEADER = cast(Table, SchedulerLeaderRow.__table__)
# Renewal (the holder: same term) or takeover (a free or expired term: the next term), in one. A
# holder renewing after its own term ran out (it was stuck, and nobody took over) starts afresh: for
# the reaper its term begins now.
_NOW = bindparam("now", type_=_LEADER.c.expires_at.type)
_RENEWAL = and_(_LEADER.c.holder == bindparam("candidate"), _LEADER.c.expires_at > _NOW)
_TAKE = (
    update(_LEADER)
    .where(
        _LEADER.c.id == ROW_ID,
        or_(_LEADER.c.holder == bindparam("candidate"), _LEADER.c.expires_at <= _NOW),
    )
    .values(
        holder=bindparam("candidate"),
        term=case((_LEADER.c.holder == bindparam("candidate"), _LEADER.c.term), else_=_LEADER.c.term + 1),
        expires_at=bindparam("expires"),
        taken_at=case((_RENEWAL, _LEADER.c.taken_at), else_=_NOW),
        renewed_at=_NOW,
        executors=bindparam("executors", type_=_LEADER.c.executors.type),
    )
    .returning(_LEADER.c.term, _LEADER.c.expires_at, _LEADER.c.taken_at)
)
_READ = select(_LEADER.c.holder, _LEADER.c.term, _LEADER.c.expires_at).where(_LEADER.c.id == ROW_ID)


def _create_row(session: Session, now: datetime) -> None:
    """The row of a database no scheduler has led yet: free since `now`."""
    insert = upsert_into(_LEADER, session.get_bind().dialect.name)
    session.execute(
        insert.values(id=ROW_ID, holder="", term=0, expires_at=now, executors=[]).on_conflict_do_nothing(
            index_elements=["id"]
        )
    )


def release(session: Session, candidate: str, now: datetime, renewed_until: datetime | None = None) -> bool:
    """Frees the leadership if `candidate` holds it; with `renewed_until`, only if the term still
    ends then: a hold that ended (live/leadership.py) does not free a term that another hold of the
    same candidate renewed since. True when it was freed."""
    conditions = [SchedulerLeaderRow.id == ROW_ID, SchedulerLeaderRow.holder == candidate]
    if renewed_until is not None:
        conditions.append(SchedulerLeaderRow.expires_at == renewed_until)
    result = cast(
        CursorResult[Any],
        session.execute(
            update(SchedulerLeaderRow).where(*conditions).values(holder="", expires_at=now, executors=[])
        ),
    )
    return result.rowcount > 0


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
        taken_at=row.taken_at,
        renewed_at=row.renewed_at,
        executors=tuple(row.executors or ()),
    )
