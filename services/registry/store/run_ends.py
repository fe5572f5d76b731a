"""The one way to end runs in the database, whatever ended them (an executor's finish, the lease
reaper, a terminate, the scheduler), and the retry a failure earns, in the same transaction.

Ends whose start the caller holds are one Core statement for all of them; the rest read their row
first and say why they cannot end (not found, already ended, a stale attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from services.common.errors import FailedPrecondition, InvalidArgument, Reason
from services.common.run_params import logical_date_of
from services.common.vocabulary import (
    DRAIN_INTERRUPTED_MESSAGE,
    FINAL_STATUSES,
    LIVE_STATUSES,
    TaskType,
    Trigger,
)
from services.common.vocabulary import ExecutionStatus as Status
from services.registry.db import among
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store import alerts
from services.registry.store.executions import (
    EXECUTIONS,
    NewExecution,
    create_execution,
    create_executions,
    detached,
    execution_values,
    get_execution,
)
from services.registry.store.run_history import children_of


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How an attempt of a run ended (executor finish, lease reaper, terminate, scheduler).

    `started`: the run's start time when the caller holds it with the whole result (its live
    progress); such an end is one statement, and `result` replaces the stored one. Without it the
    row is read first and `result` is merged over the stored one."""

    execution_id: int
    attempt: int
    status: str
    result: dict[str, Any]
    error_message: str = ""
    started: datetime | None = None


@dataclass(frozen=True, slots=True)
class EndedRun:
    """A run after its end, and its retry when it failed with retries left."""

    row: ExecutionRow
    retry: ExecutionRow | None


def end_runs(session: Session, ends: Sequence[RunEnd], now: datetime) -> list[EndedRun]:
    """Ends runs, whatever ended them; retries of failed ones are created in the same transaction.
    Returns one EndedRun per end, in order.

    Ends with a known start go as one statement for all of them (an executemany, then one read of
    their rows). When one of those is no longer that attempt running, FailedPrecondition
    (ATTEMPT_STALE) is raised for the call as a whole and the transaction must be rolled back (the
    statement ended the others): a caller that needs each end's own answer ends them one by one. Any other end reads its row first and raises the reason it cannot end
    (not found, already ended, stale attempt). The alert events of the ends go to the outbox in
    the same transaction (store.alerts.enqueue_ends)."""
    for end in ends:
        if end.status not in FINAL_STATUSES:
            raise InvalidArgument(f"无效的结束状态: {end.status}", reason=Reason.RUN_UPDATE_INVALID)
    known = [end for end in ends if end.started is not None]
    ended: dict[int, ExecutionRow] = {}
    if len(known) == 1:
        row = _end_running(session, known[0], now)
        if row is not None:
            ended[known[0].execution_id] = row
    elif known:
        ended.update(_end_many_running(session, known, now))
    for end in ends:
        if end.execution_id not in ended:  # no start at hand, or the one-statement end missed
            ended[end.execution_id] = _end_read_row(session, end, now)
    runs = [
        EndedRun(row, schedule_retry(session, row, now) if row.status == Status.FAILED else None)
        for row in (ended[end.execution_id] for end in ends)
    ]
    # The alerts of these ends commit with them (the outbox), or not at all.
    alerts.enqueue_ends(session, [(run.row, run.retry is None) for run in runs], now)
    return runs


def _end_running(session: Session, end: RunEnd, now: datetime) -> ExecutionRow | None:
    updated = session.execute(_END_RUNNING.returning(*EXECUTIONS.c), _end_params(end, now)).first()
    return detached(updated) if updated is not None else None


def _end_many_running(session: Session, ends: list[RunEnd], now: datetime) -> dict[int, ExecutionRow]:
    updated = cast(CursorResult[Any], session.execute(_END_RUNNING, [_end_params(end, now) for end in ends]))
    if updated.rowcount != len(ends):
        raise FailedPrecondition("执行记录已结束或尝试已失效", reason=Reason.ATTEMPT_STALE)
    ids = [end.execution_id for end in ends]
    read = select(EXECUTIONS).where(among(EXECUTIONS.c.id, ids, session.get_bind().dialect.name))
    return {row.id: detached(row) for row in session.execute(read)}


def _end_read_row(session: Session, end: RunEnd, now: datetime) -> ExecutionRow:
    row = get_execution(session, end.execution_id)
    if row.status not in LIVE_STATUSES:
        raise FailedPrecondition(
            f"执行记录 {end.execution_id} 已结束（{row.status}）", reason=Reason.RUN_ALREADY_ENDED
        )
    if row.attempt != end.attempt:
        raise FailedPrecondition(
            f"执行记录 {end.execution_id} 的第 {end.attempt} 次尝试已失效（当前第 {row.attempt} 次）",
            reason=Reason.ATTEMPT_STALE,
        )
    row.status = end.status
    row.end_time = now
    if row.start_time is not None:
        row.duration_seconds = duration(row.start_time, now)
    row.result = {**(row.result or {}), **end.result}
    row.error_message = end.error_message or None
    row.lease_expires_at = None
    session.flush()
    return row


def _end_params(end: RunEnd, now: datetime) -> dict[str, Any]:
    assert end.started is not None
    return {
        "b_id": end.execution_id,
        "b_attempt": end.attempt,
        "b_status": end.status,
        "b_end": now,
        "b_duration": duration(end.started, now),
        "b_result": end.result,
        "b_error": end.error_message or None,
    }


def duration(started: datetime, ended: datetime) -> float:
    return round((ended - started).total_seconds(), 3)


_END_RUNNING = (
    update(EXECUTIONS)
    .where(
        EXECUTIONS.c.id == bindparam("b_id"),
        EXECUTIONS.c.attempt == bindparam("b_attempt"),
        EXECUTIONS.c.status == Status.RUNNING,
    )
    .values(
        status=bindparam("b_status"),
        end_time=bindparam("b_end"),
        duration_seconds=bindparam("b_duration"),
        result=bindparam("b_result"),
        error_message=bindparam("b_error"),
        lease_expires_at=None,
    )
)


def reuse_succeeded_nodes(session: Session, previous_id: int, workflow_run_id: int, now: datetime) -> None:
    """Records the nodes whose newest run under workflow run `previous_id` succeeded as successful
    children of `workflow_run_id` (its result and times, linked to it), so that run starts only
    the failed, skipped and not-started ones: a rerun from the failed step, or a workflow retry."""
    newest: dict[int, ExecutionRow] = {}
    for child in sorted(children_of(session, previous_id), key=lambda c: c.id):
        newest[child.task_id] = child
    rows = []
    for child in newest.values():
        if child.status != Status.SUCCESS:
            continue
        new = NewExecution(
            task_id=child.task_id,
            trigger=Trigger.WORKFLOW,
            scheduled_time=child.scheduled_time,
            parent_execution_id=workflow_run_id,
            dedup_key=f"w:{workflow_run_id}:{child.task_id}",
            logical_date=child.logical_date or "",
            params=child.params,
            rerun_of_id=child.id,
        )
        values = execution_values(new, now)
        values.update(
            status=Status.SUCCESS,
            start_time=child.start_time,
            end_time=child.end_time,
            duration_seconds=child.duration_seconds,
            result=child.result,
            executor=child.executor,
        )
        rows.append(values)
    if rows:
        create_executions(session, rows)


def run_logical_date(row: ExecutionRow, timezone: str) -> str:
    """The stored logical date, or (a run from before it was stored) its scheduled time's date."""
    if row.logical_date:
        return row.logical_date
    return logical_date_of(row.scheduled_time or row.created_at, timezone).isoformat()


def schedule_retry(session: Session, failed: ExecutionRow, now: datetime) -> ExecutionRow | None:
    task = session.get(TaskRow, failed.task_id)
    if task is None or failed.terminate_requested:
        return None
    # A run an executor's drain interrupted is handed back: run again at once, not counted as a retry.
    handed_back = failed.error_message == DRAIN_INTERRUPTED_MESSAGE
    if failed.retry_count >= task.max_retries and not handed_back:
        return None
    if not task.enabled and failed.trigger in ("schedule", "retry") and failed.parent_execution_id is None:
        return None
    retry, _ = create_execution(
        session,
        NewExecution(
            task_id=failed.task_id,
            trigger="retry",
            scheduled_time=now if handed_back else now + timedelta(seconds=task.retry_interval),
            parent_execution_id=failed.parent_execution_id or 0,
            retry_count=failed.retry_count if handed_back else failed.retry_count + 1,
            dedup_key=f"r:{failed.id}",
            # A retry is for the same date, with the same parameters, in the same backfill.
            logical_date=failed.logical_date or run_logical_date(failed, task.timezone),
            params=failed.params,
            backfill_id=failed.backfill_id or 0,
            rerun_of_id=failed.id,
            # The retry continues its failed run's trace (tracing.py): one trace for the whole try.
            traceparent=failed.traceparent or "",
        ),
        now,
    )
    if task.task_type == TaskType.WORKFLOW:  # a workflow retry resumes from its failed step
        reuse_succeeded_nodes(session, failed.id, retry.id, now)
    return retry
