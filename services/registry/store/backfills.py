"""Backfills: the planned times of a date range, run at most `max_parallel` at once.

A backfill is fixed when it is created: its planned times (the task's schedule over the range,
`services/common/schedule.planned_times_on_dates`, less those that already ran successfully unless
asked) are stored with it. Its progress lives in its runs, the executions with its `backfill_id`:
the leading scheduler calls `advance_backfills` every second, which creates the next runs in order
(each planned time's run keyed "b:{backfill}:{planned}", so a repeated or concurrent call, or a new
scheduler after a restart, never creates one twice) while fewer than `max_parallel` are live, and
finishes a backfill whose runs all ended. Counting is done in SQL, grouped by status and trigger.

A run whose planned date lies beyond its task's calendar data (the weekday policy applied) carries
the same note as such a scheduled fire, 日历数据未覆盖 with where the data ends
(`calendars.uncovered_note`), judged by the calendar's data when the run is created.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.calendars import TradingCalendar, uncovered_note
from services.common.errors import InvalidArgument, NotFound, Reason
from services.common.run_params import check_params, logical_date_of, parse_logical_date
from services.common.schedule import planned_times_on_dates
from services.common.vocabulary import FAILED_STATUSES, LIVE_STATUSES, BackfillStatus, Trigger
from services.common.vocabulary import ExecutionStatus as Status
from services.registry.db import locked
from services.registry.models import BackfillRow, ExecutionRow
from services.registry.store.executions import NewExecution, create_executions, execution_values
from services.registry.store.manual_runs import check_params_fit, terminate_with_children
from services.registry.store.task_rules import timing_of
from services.registry.store.tasks import get_task

MAX_BACKFILL_RUNS = 10_000
MAX_PARALLEL = 100
MAX_LIST = 100


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    task_id: int
    start: str
    end: str
    max_parallel: int
    rerun_succeeded: bool
    params: Mapping[str, Any]
    # The W3C traceparent of the call that asks for it ("" = none): every run of it joins that trace.
    traceparent: str = ""


@dataclass(frozen=True, slots=True)
class Progress:
    """What a backfill's runs say: planned times started, live runs, and how the ended ones ended."""

    created: int = 0
    running: int = 0
    succeeded: int = 0
    # Failed or terminated with no retry after them.
    failed: int = 0


def backfill_not_found(backfill_id: int) -> NotFound:
    return NotFound(f"回填 {backfill_id} 不存在", reason=Reason.BACKFILL_NOT_FOUND)


def create_backfill(
    session: Session, request: BackfillRequest, actor: str, now: datetime, *, privileged: bool
) -> BackfillRow:
    """Checks everything before storing anything; InvalidArgument / NotFound otherwise."""
    first = parse_logical_date(request.start, "start", Reason.BACKFILL_INVALID)
    last = parse_logical_date(request.end, "end", Reason.BACKFILL_INVALID)
    if first > last:
        raise InvalidArgument(f"回填范围无效: start {first} 晚于 end {last}", reason=Reason.BACKFILL_INVALID)
    max_parallel = request.max_parallel or 1
    if not 1 <= max_parallel <= MAX_PARALLEL:
        raise InvalidArgument(f"max_parallel 必须在 1 到 {MAX_PARALLEL} 之间", reason=Reason.BACKFILL_INVALID)
    params = check_params(dict(request.params), privileged=privileged)
    task = get_task(session, request.task_id)
    check_params_fit(task.task_type, task.config, params)
    timing = timing_of(task)
    if not (timing.cron_expression or timing.interval_seconds or timing.run_at is not None):
        raise InvalidArgument(
            f"任务 {task.id} 没有调度（Cron、间隔或一次性时间），无法回填", reason=Reason.BACKFILL_INVALID
        )
    planned = planned_times_on_dates(timing, first, last, MAX_BACKFILL_RUNS)
    if planned is None:
        raise InvalidArgument(
            f"回填范围内的计划执行超过 {MAX_BACKFILL_RUNS} 次，请缩小范围", reason=Reason.BACKFILL_INVALID
        )
    succeeded = set() if request.rerun_succeeded or not planned else _succeeded(session, task.id, planned)
    to_run = [moment for moment in planned if moment not in succeeded]
    row = BackfillRow(
        task_id=task.id,
        start_date=first.isoformat(),
        end_date=last.isoformat(),
        max_parallel=max_parallel,
        rerun_succeeded=request.rerun_succeeded,
        params=params,
        planned=[moment.isoformat() for moment in to_run],
        skipped=len(planned) - len(to_run),
        status=BackfillStatus.RUNNING,
        created_at=now,
        created_by=actor,
        traceparent=request.traceparent or None,
    )
    session.add(row)
    session.flush()
    return row


def _succeeded(session: Session, task_id: int, planned: list[datetime]) -> set[datetime]:
    """The planned times among `planned` that already have a successful run of the task."""
    times = session.scalars(
        select(ExecutionRow.scheduled_time).where(
            ExecutionRow.task_id == task_id,
            ExecutionRow.status == Status.SUCCESS,
            ExecutionRow.scheduled_time.between(planned[0], planned[-1]),
        )
    )
    return {moment for moment in times if moment is not None}


def get_backfill(session: Session, backfill_id: int) -> BackfillRow:
    row = session.get(BackfillRow, backfill_id)
    if row is None:
        raise backfill_not_found(backfill_id)
    return row


def list_backfills(session: Session, task_id: int, limit: int) -> list[BackfillRow]:
    query = select(BackfillRow).order_by(BackfillRow.id.desc()).limit(min(max(limit, 1), MAX_LIST))
    if task_id:
        query = query.where(BackfillRow.task_id == task_id)
    return list(session.scalars(query))


def progress_of(session: Session, backfill_ids: Iterable[int]) -> dict[int, Progress]:
    """Each backfill's progress from its runs, one grouped query."""
    ids = list(backfill_ids)
    counts: defaultdict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if ids:
        rows = session.execute(
            select(ExecutionRow.backfill_id, ExecutionRow.status, ExecutionRow.trigger, func.count())
            .where(ExecutionRow.backfill_id.in_(ids))
            .group_by(ExecutionRow.backfill_id, ExecutionRow.status, ExecutionRow.trigger)
        )
        for backfill_id, status, trigger, count in rows:
            tally = counts[backfill_id or 0]  # never None: filtered by id
            tally["created"] += count if trigger == Trigger.BACKFILL else 0
            tally["retries"] += count if trigger == Trigger.RETRY else 0
            tally["running"] += count if status in LIVE_STATUSES else 0
            tally["succeeded"] += count if status == Status.SUCCESS else 0
            tally["ended_badly"] += count if status in FAILED_STATUSES else 0
    return {
        backfill_id: Progress(
            created=counts[backfill_id]["created"],
            running=counts[backfill_id]["running"],
            succeeded=counts[backfill_id]["succeeded"],
            # Every retry follows exactly one failed run: those failures were not the last word.
            failed=max(0, counts[backfill_id]["ended_badly"] - counts[backfill_id]["retries"]),
        )
        for backfill_id in ids
    }


def any_running(session: Session) -> bool:
    return (
        session.scalar(select(BackfillRow.id).where(BackfillRow.status == BackfillStatus.RUNNING).limit(1))
        is not None
    )


def advance_backfills(session: Session, now: datetime) -> list[ExecutionRow]:
    """Creates the next runs of every running backfill (at most max_parallel live each) and
    finishes those whose runs all ended; returns the runs created. Call in a serialized session."""
    running = list(
        session.scalars(
            select(BackfillRow).where(BackfillRow.status == BackfillStatus.RUNNING).with_for_update()
        )
    )
    progress = progress_of(session, (row.id for row in running))
    created: list[ExecutionRow] = []
    for backfill in running:
        done = progress[backfill.id]
        room = backfill.max_parallel - done.running
        upcoming = backfill.planned[done.created : done.created + max(room, 0)]
        if upcoming:
            task = get_task(session, backfill.task_id)
            calendar = timing_of(task).calendar
            rows = [
                _run_values(backfill, datetime.fromisoformat(text), task.timezone, calendar, now)
                for text in upcoming
            ]
            created.extend(create_executions(session, rows).values())
        elif done.running == 0 and done.created >= len(backfill.planned):
            backfill.status = BackfillStatus.FAILED if done.failed else BackfillStatus.SUCCESS
            backfill.finished_at = now
    return created


def _run_values(
    backfill: BackfillRow, planned: datetime, timezone: str, calendar: TradingCalendar | None, now: datetime
) -> dict[str, Any]:
    note = uncovered_note(calendar, [planned], ZoneInfo(timezone)) if calendar is not None else ""
    new = NewExecution(
        task_id=backfill.task_id,
        trigger=Trigger.BACKFILL,
        scheduled_time=planned,
        dedup_key=f"b:{backfill.id}:{planned.isoformat()}",
        logical_date=logical_date_of(planned, timezone).isoformat(),
        params=backfill.params,
        backfill_id=backfill.id,
        note=note,
        traceparent=backfill.traceparent or "",
    )
    return execution_values(new, now)


def cancel_backfill(
    session: Session, backfill_id: int, now: datetime
) -> tuple[BackfillRow, list[tuple[ExecutionRow, bool]]]:
    """Stops a running backfill: no run starts any more, its live runs are terminated (pending
    ones at once, running ones flagged). Returns it and each terminated run with whether an
    executor must be told to stop it."""
    row = locked(session, BackfillRow, backfill_id)
    if row is None:
        raise backfill_not_found(backfill_id)
    if row.status != BackfillStatus.RUNNING:
        return row, []
    row.status = BackfillStatus.CANCELLED
    row.finished_at = now
    live = session.scalars(
        select(ExecutionRow.id).where(
            ExecutionRow.backfill_id == backfill_id, ExecutionRow.status.in_(LIVE_STATUSES)
        )
    )
    stopped: list[tuple[ExecutionRow, bool]] = []
    for execution_id in list(live):
        stopped += terminate_with_children(session, execution_id, now)
    return row, stopped
