"""Runs a user starts or stops: manual triggers (with params and a logical date), reruns of a
failed run, of a workflow run from its failed step or of one of its nodes, and terminations.

Each is a check then a write that must not interleave with another: the callers' sessions are
`serialized` (SQLite) and the task or run rows are locked (PostgreSQL); the rows themselves are made
by the one path of `executions` (`create_execution`, `execution_values`).

A trigger is on the timed path from a click to a running run, so it reads its task as the Core
columns scheduling needs, not as an ORM entity: on a process that sat idle, loading the entity and
its unit of work cost more Python than the statement's round trip. It may create its run already
running on an executor the scheduler named meanwhile (`start`; see `live/trigger_offers.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, NamedTuple

from google.rpc import error_details_pb2
from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from services.common.errors import Conflict, FailedPrecondition, InvalidArgument, Reason
from services.common.job_config import ConfigInvalid, check_task_config
from services.common.run_params import logical_date_of
from services.common.vocabulary import (
    FAILED_STATUSES,
    FINAL_STATUSES,
    LIVE_STATUSES,
    ConcurrencyPolicy,
    TaskType,
    Trigger,
)
from services.common.vocabulary import ExecutionStatus as Status
from services.common.workflow_plan import Plan, PlanInvalid
from services.registry.models import ExecutionRow
from services.registry.store.executions import (
    TERMINATED_BY_USER,
    Claim,
    NewExecution,
    create_execution,
    execution_values,
    get_execution,
    insert_execution_unless_live,
)
from services.registry.store.run_ends import RunEnd, end_runs, reuse_succeeded_nodes, run_logical_date
from services.registry.store.run_history import children_of
from services.registry.store.tasks import SCHEDULING_COLUMNS, TASKS, get_task, task_not_found


def run_already_active(task_id: int, execution_id: int) -> Conflict:
    error = Conflict(
        f"任务 {task_id} 的执行 {execution_id} 仍在等待或运行，并发策略为 forbid，不能再次触发",
        reason=Reason.RUN_ALREADY_ACTIVE,
    )
    error.details = (
        error_details_pb2.ResourceInfo(resource_type="execution", resource_name=str(execution_id)),
    )
    return error


# The task of a trigger, locked (PostgreSQL; see `trigger_execution`): the columns scheduling needs
# (a run started at once is answered with them), as a Core row. Built once, so compiled once.
_LOCKED_TASK = (
    select(*(TASKS.c[name] for name in SCHEDULING_COLUMNS))
    .where(TASKS.c.id == bindparam("task_id"))
    .with_for_update()
)


class Triggered(NamedTuple):
    """A manual run and its task as the trigger read it (a Core row of SCHEDULING_COLUMNS: the
    caller's audit names it, and a run started at once is answered with it, without reading it
    again)."""

    run: ExecutionRow
    task: Row[Any]


def trigger_execution(
    session: Session,
    task_id: int,
    now: datetime,
    params: Mapping[str, Any] | None = None,
    logical_date: date | None = None,
    rerun_of_id: int = 0,
    actor: str = "",
    traceparent: str = "",
    start: Callable[[], Claim | None] | None = None,
) -> Triggered:
    """A manual run of the task by `actor` (in the trace `traceparent`), unless its policy is forbid and a run of it is live
    (Conflict); for `logical_date` (default: today in the task's zone), with `params` over its
    config. `start`, called once the task is locked and the trigger checked, just before the
    insert, may name the executor the run is created running on (a trigger offer's answer).

    The check and the insert must not interleave with another trigger's: the task row is locked
    (PostgreSQL), and the caller's session is `serialized` (SQLite takes the write lock at BEGIN).
    """
    task = session.execute(_LOCKED_TASK, {"task_id": task_id}).first()
    if task is None:
        raise task_not_found(task_id)
    check_params_fit(task.task_type, task.config, params)
    day = logical_date or logical_date_of(now, task.timezone)
    new = NewExecution(
        task_id=task_id,
        trigger=Trigger.MANUAL,
        scheduled_time=now,
        logical_date=day.isoformat(),
        params=params,
        rerun_of_id=rerun_of_id,
        triggered_by=actor,
        traceparent=traceparent,
    )
    claim = start() if start is not None else None
    if task.concurrency_policy != ConcurrencyPolicy.FORBID:
        return Triggered(create_execution(session, new, now, claim)[0], task)
    # Forbid: the check and the insert are one statement (a round trip less on the trigger's path).
    values = execution_values(new, now, claim)
    while (row := insert_execution_unless_live(session, values)) is None:
        live = session.scalar(
            select(ExecutionRow.id)
            .where(ExecutionRow.task_id == task_id, ExecutionRow.status.in_(LIVE_STATUSES))
            .order_by(ExecutionRow.id)
            .limit(1)
        )
        if live is not None:
            raise run_already_active(task_id, live)
        # The live run ended between the two statements (PostgreSQL): the insert is tried again.
    return Triggered(row, task)


def rerun_execution(
    session: Session, execution_id: int, from_failed: bool, now: datetime, traceparent: str = ""
) -> ExecutionRow:
    """A failed or terminated run again, as a new manual run for the same date with the same
    params, linked to it, in the trace `traceparent` (the rerun call's, as a trigger's); a workflow
    run from its failed step reuses the nodes that succeeded."""
    original = get_execution(session, execution_id)
    if original.status not in FAILED_STATUSES:
        raise FailedPrecondition(
            f"执行记录 {execution_id} 的状态是 {original.status}，只有失败或已终止的执行可以重跑",
            reason=Reason.RUN_NOT_RERUNNABLE,
        )
    task = get_task(session, original.task_id)
    day = date.fromisoformat(run_logical_date(original, task.timezone))
    row = trigger_execution(
        session, task.id, now, original.params, day, rerun_of_id=original.id, traceparent=traceparent
    ).run
    if from_failed and task.task_type == TaskType.WORKFLOW:
        reuse_succeeded_nodes(session, original.id, row.id, now)
    return row


def rerun_node(
    session: Session, execution_id: int, node_task_id: int, now: datetime, actor: str, traceparent: str = ""
) -> ExecutionRow:
    """One node of a finished workflow run again, alone: a new manual run of the node's task for
    the workflow run's date with its params, recorded as a child of that run (its DAG view shows
    the newest attempt of each node, so this one) and linked to the node's previous attempt there
    (`rerun_of_id`; the workflow run itself when the node never ran in it). The workflow run keeps
    its status; a later rerun of it from the failed step reuses this node if it succeeded. In the
    trace `traceparent` (the rerun call's).

    The node must be one of the workflow's (as defined now, or as the run ran it): InvalidArgument
    otherwise; a run still live: FailedPrecondition, both with RUN_NOT_RERUNNABLE."""
    original = get_execution(session, execution_id)
    workflow = get_task(session, original.task_id)
    if workflow.task_type != TaskType.WORKFLOW or original.parent_execution_id is not None:
        raise InvalidArgument(
            f"执行记录 {execution_id} 不是编排任务的执行，不能重跑单个节点", reason=Reason.RUN_NOT_RERUNNABLE
        )
    if original.status not in FINAL_STATUSES:
        raise FailedPrecondition(
            f"编排执行 {execution_id} 的状态是 {original.status}，结束后才能重跑单个节点",
            reason=Reason.RUN_NOT_RERUNNABLE,
        )
    previous = [child for child in children_of(session, original.id) if child.task_id == node_task_id]
    try:
        planned = node_task_id in Plan.parse(workflow.config or {}).task_ids
    except PlanInvalid:
        planned = False
    if not previous and not planned:
        raise InvalidArgument(
            f"任务 {node_task_id} 不是编排任务 {workflow.id} 的节点", reason=Reason.RUN_NOT_RERUNNABLE
        )
    day = date.fromisoformat(run_logical_date(original, workflow.timezone))
    linked = max(previous, key=lambda child: child.id).id if previous else original.id
    row = trigger_execution(
        session,
        node_task_id,
        now,
        original.params,
        day,
        rerun_of_id=linked,
        actor=actor,
        traceparent=traceparent,
    ).run
    session.execute(
        update(ExecutionRow).where(ExecutionRow.id == row.id).values(parent_execution_id=original.id)
    )
    row.parent_execution_id = original.id
    return row


def check_params_fit(
    task_type: str, config: Mapping[str, Any] | None, params: Mapping[str, Any] | None
) -> None:
    """A task's config with `params` over it must still run (checked as on save)."""
    if not params or task_type == TaskType.WORKFLOW:  # a workflow passes them on to its nodes
        return
    try:
        check_task_config(task_type, {**(config or {}), **params})
    except ConfigInvalid as exc:
        raise InvalidArgument(f"params 无效: {exc.message}", reason=Reason.RUN_PARAMS_INVALID) from None


def request_termination(
    session: Session, execution_id: int, now: datetime, actor: str = ""
) -> tuple[ExecutionRow, bool]:
    """Pending runs end at once; running ones are flagged for the scheduler to stop. `actor`: who
    asked, kept on the run.

    Returns (row, needs_stop): needs_stop when an executor must be told to cancel.
    """
    row = get_execution(session, execution_id)
    if row.status in LIVE_STATUSES:
        row.terminated_by = actor
    if row.status == Status.PENDING:
        row.terminate_requested = True
        end = RunEnd(execution_id, row.attempt, Status.TERMINATED, {}, TERMINATED_BY_USER)
        return end_runs(session, [end], now)[0].row, False
    if row.status == Status.RUNNING:
        row.terminate_requested = True
        return row, True
    raise FailedPrecondition(
        f"执行记录 {execution_id} 已结束（{row.status}），无法终止", reason=Reason.RUN_ALREADY_ENDED
    )


def terminate_with_children(
    session: Session, execution_id: int, now: datetime, actor: str = ""
) -> list[tuple[ExecutionRow, bool]]:
    """`request_termination` of the run, then of its live children (a workflow's): each (row,
    needs_stop), the run first."""
    row, needs_stop = request_termination(session, execution_id, now, actor)
    stopped = [(row, needs_stop)]
    stopped += [
        request_termination(session, child.id, now, actor)
        for child in children_of(session, row.id)
        if child.status in LIVE_STATUSES
    ]
    return stopped
