"""Custom trading calendars: validation, CRUD, and the name -> calendar resolution tasks use.

A custom calendar is a library calendar (`base`) with session dates added and removed and an
optional later data end (``services.common.calendars.CalendarDefinition``). Definitions are few and
small; this process keeps them in memory (`Definitions`), refreshed from the database at start, on
every change made here and whenever a name is not found (another replica may have created it), so
resolving a task's calendar for its next run time never waits for the database.

A library calendar refreshed by `data_sync_trading_calendar` (its sessions stored in
``zq_task_calendar_syncs`` when the run succeeds, `record_synced`) is known here as a definition
over itself (`calendars.synced_definition`), and a custom calendar on it as one definition with
both (`calendars.combined`): `Definitions.get` gives what a task's calendar really is, the scheduler
feed sends it with the task, and the tasks using a synced calendar are re-sent like after an
admin's change.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.calendars import (
    CalendarDefinition,
    CalendarUnknown,
    SyncedSessions,
    TradingCalendar,
    builtin_calendar,
    builtin_names,
    combined,
    derive_calendar,
    synced_definition,
)
from services.common.data_sync import data_sync_type
from services.common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Reason
from services.common.input_checks import check_text, shown
from services.common.vocabulary import ExecutionStatus, TaskType
from services.registry.db import upsert_into
from services.registry.models import CalendarRow, CalendarSyncRow, ExecutionRow, TaskRow

log = logging.getLogger(__name__)

NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
MAX_DATES = 10_000
MAX_DESCRIPTION = 2000


def calendar_not_found(name: str) -> NotFound:
    return NotFound(f"日历 {shown(name)} 不存在", reason=Reason.CALENDAR_NOT_FOUND)


def definition_of(row: CalendarRow) -> CalendarDefinition:
    return CalendarDefinition.parse(row.name, row.base, row.added_dates, row.removed_dates, row.data_end)


@dataclass(frozen=True, slots=True)
class CalendarChange:
    """What a create or update sets, as the client sent it (validated by `_fields`)."""

    base: str
    added: Sequence[str]
    removed: Sequence[str]
    data_end: str
    description: str


def synced_of(row: CalendarSyncRow) -> SyncedSessions:
    return SyncedSessions(
        name=row.calendar,
        ranges=tuple((date.fromisoformat(first), date.fromisoformat(last)) for first, last in row.ranges),
        closed=frozenset(date.fromisoformat(day) for day in row.closed_dates),
        opened=frozenset(date.fromisoformat(day) for day in row.opened_dates),
    )


class Definitions:
    """The calendars of the database as this process last read them, and their sessions: custom
    ones, and library ones with synced data, each as the definition a task's schedule uses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, CalendarDefinition] = {}
        # The custom calendars' names (rows of zq_task_calendars), as opposed to synced library ones.
        self._custom: frozenset[str] = frozenset()
        self._derived: dict[CalendarDefinition, TradingCalendar] = {}
        # What the last reload read (a reload that reads the same skips the work).
        self._read: object = None

    def reload(self, session: Session) -> None:
        """Reads both tables (few, small rows); loads a synced library calendar the first time
        (blocking: from a worker thread)."""
        rows = session.scalars(select(CalendarRow)).all()
        syncs = session.scalars(select(CalendarSyncRow)).all()
        read = (
            [
                (row.name, row.base, tuple(row.added_dates), tuple(row.removed_dates), row.data_end)
                for row in rows
            ],
            [(sync.calendar, sync.execution_id, sync.updated_at) for sync in syncs],
        )
        if read == self._read:
            return
        synced: dict[str, CalendarDefinition] = {}
        for sync in syncs:
            try:
                synced[sync.calendar] = synced_definition(builtin_calendar(sync.calendar), synced_of(sync))
            except CalendarUnknown:  # a library without it (another version): its data cannot apply
                log.warning("synced data of a calendar this library lacks", extra={"calendar": sync.calendar})
        by_name = dict(synced)
        for row in rows:
            custom = definition_of(row)
            base = synced.get(custom.base)
            by_name[row.name] = combined(custom, base) if base is not None else custom
        kept = set(by_name.values())
        with self._lock:
            self._by_name = by_name
            self._custom = frozenset(row.name for row in rows)
            self._read = read
            # Sessions of definitions no calendar has any more (an earlier sync's) are dropped.
            self._derived = {key: value for key, value in self._derived.items() if key in kept}

    def get(self, name: str) -> CalendarDefinition | None:
        """The definition a task naming `name` uses; None for a library calendar without synced data."""
        return self._by_name.get(name)

    def is_custom(self, name: str) -> bool:
        """Whether `name` was a custom calendar (a row of its own) when this process last read them."""
        return name in self._custom

    def calendar(self, definition: CalendarDefinition) -> TradingCalendar:
        """The definition's sessions (derived once per definition; loads the base the first time)."""
        derived = self._derived.get(definition)
        if derived is None:
            derived = derive_calendar(builtin_calendar(definition.base), definition)
            with self._lock:
                self._derived[definition] = derived
        return derived


DEFINITIONS = Definitions()


def load_task_calendars(session: Session) -> None:
    """Reads the custom calendars and loads every calendar a task names (at start, in a worker
    thread), so that resolving one later never loads library data where it must not block."""
    DEFINITIONS.reload(session)
    names = session.scalars(select(TaskRow.calendar).where(TaskRow.calendar.is_not(None)).distinct())
    for name in names:
        if name:
            resolve(name)


def resolve(name: str) -> TradingCalendar | None:
    """A library or (known) custom calendar by name; None when neither knows it."""
    definition = DEFINITIONS.get(name)
    if definition is not None:
        return DEFINITIONS.calendar(definition)
    try:
        return builtin_calendar(name)
    except CalendarUnknown:
        return None


def resolve_or_refuse(session: Session, name: str) -> TradingCalendar:
    """The calendar a task names, re-reading custom calendars once when the name is unknown here;
    else 400 CALENDAR_UNKNOWN. A custom calendar's row is read FOR SHARE in the task's transaction
    (`_hold`), whatever this replica has loaded: a delete of the calendar then waits for the task to
    commit and finds it using the calendar, or commits first and the task is refused. Without the
    lock both could commit, leaving a task that names no calendar."""
    calendar = resolve(name)
    if calendar is None:
        DEFINITIONS.reload(session)
        calendar = resolve(name)
    if calendar is not None and DEFINITIONS.is_custom(name) and not _hold(session, name):
        calendar = None  # deleted since this replica loaded it
    if calendar is None:
        raise InvalidArgument(
            f"未知的交易日历: {shown(name)}（可用: GET /api/v1/scheduler/calendars）",
            reason=Reason.CALENDAR_UNKNOWN,
        )
    return calendar


def _hold(session: Session, name: str) -> bool:
    """Locks the custom calendar's row against a delete until the session's transaction ends (a
    shared lock: tasks naming it do not wait for each other); False when it does not exist. Once
    per calendar and transaction (an import of many tasks naming one calendar asks once)."""
    held: set[str] = session.info.setdefault("zq_calendars_held", set())
    if name not in held:
        locked = select(CalendarRow.id).where(CalendarRow.name == name).with_for_update(read=True)
        if session.scalar(locked) is None:
            return False
        held.add(name)
    return True


# ---- validation -------------------------------------------------------------------------------


def _dates(values: Sequence[str], label: str) -> list[str]:
    if len(values) > MAX_DATES:
        raise InvalidArgument(
            f"{label}最多{MAX_DATES}个，收到{len(values)}个", reason=Reason.CALENDAR_INVALID
        )
    days: set[date] = set()
    for value in values:
        try:
            if len(value) != len("YYYY-MM-DD"):
                raise ValueError(value)
            days.add(date.fromisoformat(value))
        except ValueError:
            raise InvalidArgument(
                f"{label}中的日期无效: {shown(value)}（格式 YYYY-MM-DD）", reason=Reason.CALENDAR_INVALID
            ) from None
    return sorted(day.isoformat() for day in days)


def _fields(change: CalendarChange) -> dict[str, Any]:
    base, data_end = change.base, change.data_end
    if base not in builtin_names():
        raise InvalidArgument(f"未知的基础日历: {shown(base)}", reason=Reason.CALENDAR_UNKNOWN)
    added_days, removed_days = _dates(change.added, "added_dates"), _dates(change.removed, "removed_dates")
    both = sorted(set(added_days) & set(removed_days))
    if both:
        raise InvalidArgument(
            f"日期不能同时增加和移除: {', '.join(both[:5])}", reason=Reason.CALENDAR_INVALID
        )
    end = _dates([data_end], "data_end")[0] if data_end else None
    text = check_text(
        change.description, "日历描述", MAX_DESCRIPTION, one_line=False, reason=Reason.CALENDAR_INVALID
    )
    return {
        "base": base,
        "added_dates": added_days,
        "removed_dates": removed_days,
        "data_end": end,
        "description": text or None,
    }


# ---- CRUD -------------------------------------------------------------------------------------


def create_calendar(
    session: Session, name: str, change: CalendarChange, actor: str, now: datetime
) -> CalendarRow:
    if not NAME.fullmatch(name):
        raise InvalidArgument(
            f"日历名称无效: {shown(name)}（字母开头，1-64个字母、数字、_ 或 -）",
            reason=Reason.CALENDAR_INVALID,
        )
    if name in builtin_names() or session.scalar(select(CalendarRow.id).where(CalendarRow.name == name)):
        raise AlreadyExists(f"日历名称 {shown(name)} 已存在", reason=Reason.CALENDAR_NAME_TAKEN)
    fields = _fields(change)
    row = CalendarRow(name=name, created_at=now, updated_at=now, updated_by=actor, **fields)
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        raise AlreadyExists(f"日历名称 {shown(name)} 已存在", reason=Reason.CALENDAR_NAME_TAKEN) from exc
    return row


def _locked_calendar(name: str) -> Select[CalendarRow]:
    """The custom calendar `name`, locked and read as it is once locked (as `db.locked`)."""
    return (
        select(CalendarRow)
        .where(CalendarRow.name == name)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def update_calendar(
    session: Session, name: str, change: CalendarChange, actor: str, now: datetime
) -> tuple[CalendarRow, list[TaskRow]]:
    """The changed calendar and the tasks naming it (to re-send to the scheduler)."""
    row = session.scalar(_locked_calendar(name))
    if row is None:
        raise calendar_not_found(name)
    for field, value in _fields(change).items():
        setattr(row, field, value)
    row.updated_at, row.updated_by = now, actor
    session.flush()
    return row, list(session.scalars(select(TaskRow).where(TaskRow.calendar == name)).all())


def delete_calendar(session: Session, name: str) -> None:
    # Locked first (PostgreSQL): a task naming the calendar in a transaction still open holds it
    # (`_hold`); once that commits, the check below sees the task.
    row = session.scalar(_locked_calendar(name))
    if row is None:
        raise calendar_not_found(name)
    users = session.scalars(select(TaskRow.name).where(TaskRow.calendar == name).limit(5)).all()
    if users:
        raise Conflict(f"日历 {shown(name)} 仍被任务使用: {', '.join(users)}", reason=Reason.CALENDAR_IN_USE)
    session.delete(row)
    session.flush()


def custom_calendars(session: Session) -> list[CalendarRow]:
    return list(session.scalars(select(CalendarRow).order_by(CalendarRow.name)).all())


# ---- data_sync_trading_calendar ---------------------------------------------------------------


SYNCS = cast(Table, CalendarSyncRow.__table__)


def _sync_row_locked(session: Session, name: str, now: datetime) -> CalendarSyncRow:
    """The calendar's sync row, locked until the transaction ends; created empty when it has none.
    Two first syncs ending at once: the second's insert waits for the first's commit and inserts
    nothing (the unique name), then the second locks the row and merges over it."""
    locked_row = select(CalendarSyncRow).where(CalendarSyncRow.calendar == name).with_for_update()
    stored = session.scalar(locked_row)
    if stored is None:
        empty = {
            "calendar": name,
            "ranges": [],
            "closed_dates": [],
            "opened_dates": [],
            "source": "",
            "updated_at": now,
        }
        dialect = session.get_bind().dialect.name
        session.execute(
            upsert_into(SYNCS, dialect).values(empty).on_conflict_do_nothing(index_elements=["calendar"])
        )
        stored = session.scalars(locked_row).one()
    return stored


def record_synced(session: Session, row: ExecutionRow, now: datetime) -> str | None:
    """When `row` is a successful data_sync_trading_calendar run, the sessions its result carries
    become its calendar's synced data (merged over what earlier runs stored, in the transaction
    that ends the run); returns the calendar's name, else None. A result without them (nothing
    fetched) changes nothing; a malformed one is logged and ignored, never fails the run's end."""
    result = row.result or {}
    if row.status != ExecutionStatus.SUCCESS or "holidays" not in result or "calendar" not in result:
        return None
    task = session.get(TaskRow, row.task_id)
    if (
        task is None
        or data_sync_type(task.task_type, task.config or {}) != TaskType.DATA_SYNC_TRADING_CALENDAR
    ):
        return None
    try:
        fetched = SyncedSessions.from_result(result)
        if fetched.name not in builtin_names():
            raise ValueError(f"unknown calendar {fetched.name}")
    except ValueError as exc:
        log.warning(
            "a trading calendar sync's result is not usable",
            extra={"execution_id": row.id, "error": str(exc)},
        )
        return None
    stored = _sync_row_locked(session, fetched.name, now)
    merged = synced_of(stored).merged(fetched)
    stored.ranges = [[first.isoformat(), last.isoformat()] for first, last in merged.ranges]
    stored.closed_dates = sorted(day.isoformat() for day in merged.closed)
    stored.opened_dates = sorted(day.isoformat() for day in merged.opened)
    stored.source = str(result.get("provider", ""))[:32]
    stored.execution_id = row.id
    stored.updated_at = now
    session.flush()
    return fetched.name


def tasks_using(session: Session, names: Sequence[str]) -> list[TaskRow]:
    """The tasks whose calendar is one of `names` or a custom calendar built on one of them."""
    customs = select(CalendarRow.name).where(CalendarRow.base.in_(names))
    query = select(TaskRow).where(or_(TaskRow.calendar.in_(names), TaskRow.calendar.in_(customs)))
    return list(session.scalars(query).all())
