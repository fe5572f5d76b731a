"""Conversion between rows / domain values and protobuf messages, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, overload

from google.protobuf import struct_pb2, timestamp_pb2

from services.common.calendars import CalendarDefinition
from services.common.errors import DomainError
from services.common.structs import dict_to_struct, struct_to_dict
from services.common.tracing import trace_id_of
from services.registry.models import BackfillRow, CalendarRow, ExecutionRow, TaskRow, UserRow
from services.registry.runs.model import (
    Appended,
    Created,
    Declined,
    End,
    Ended,
    LogAppend,
    NewRun,
    OfferAnswer,
    Outcome,
    Report,
    Reported,
    Start,
    Started,
    Update,
)
from services.registry.store.backfills import Progress
from services.registry.store.calendars import DEFINITIONS, definition_of
from services.registry.store.executions import NewExecution
from services.registry.store.run_history import StatsRow
from services.registry.store.task_listing import LatestRun, next_run_time, schedule_status
from zquant.scheduler.v1 import backfill_service_pb2, status_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@overload
def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp: ...
@overload
def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None: ...


def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    # Exact integer arithmetic (the message's seconds and non-negative nanos), 3x faster than
    # Timestamp.FromDatetime: a snapshot converts five per task.
    since_epoch = moment - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since_epoch.days * 86_400 + since_epoch.seconds, nanos=since_epoch.microseconds * 1000
    )


def from_timestamp(message: timestamp_pb2.Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def task_to_proto(row: TaskRow, now: datetime, latest: LatestRun | None = None) -> task_pb2.Task:
    task = task_pb2.Task(
        **_scheduling_fields(row),
        description=row.description or "",
        created_at=to_timestamp(row.created_at),
        created_by=row.created_by,
        updated_by=row.updated_by,
        retention_days=row.retention_days,
        tags=row.tags or [],
    )
    next_run = next_run_time(row, now)
    if next_run is not None:
        task.next_run_time.CopyFrom(to_timestamp(next_run))
    task.schedule_status = schedule_status(row, latest, next_run)
    if latest is not None:
        if latest.time is not None:
            task.latest_execution_time.CopyFrom(to_timestamp(latest.time))
        task.latest_execution_status = latest.status
    return task


def _scheduling_fields(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "task_type": row.task_type,
        "cron_expression": row.cron_expression or "",
        "interval_seconds": row.interval_seconds or 0,
        "run_at": to_timestamp(row.run_at),
        "timezone": row.timezone,
        "enabled": row.enabled,
        "paused": row.paused,
        "config": dict_to_struct(row.config),
        "max_retries": row.max_retries,
        "retry_interval": row.retry_interval,
        "timeout_seconds": row.timeout_seconds,
        "concurrency_policy": row.concurrency_policy,
        "misfire_policy": row.misfire_policy,
        "misfire_grace_seconds": row.misfire_grace_seconds,
        "updated_at": to_timestamp(row.updated_at),
        "calendar": row.calendar or "",
        "calendar_shift": row.calendar_shift or 0,
        "calendar_holidays": row.calendar_holidays or "silent",
    }


def scheduling_task_to_proto(row: TaskRow) -> task_pb2.Task:
    """A task as scheduling needs it (`store.tasks.SCHEDULING_COLUMNS`), what the scheduler's snapshot sends:
    none of the fields only people read (description, who created and changed it, tags) nor the
    list's display fields (next_run_time, schedule_status, latest execution), for a fraction of the
    cost and of the scheduler's memory."""
    return task_pb2.Task(**_scheduling_fields(row))


def task_event(
    row: TaskRow, now: datetime, last_scheduled: datetime | None = None
) -> internal_pb2.WatchSchedulerEventsResponse:
    """The scheduler feed's task_upsert for a task row (with its custom calendar's definition)."""
    definition = DEFINITIONS.get(row.calendar) if row.calendar else None
    return internal_pb2.WatchSchedulerEventsResponse(
        type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT,
        task=task_to_proto(row, now),
        schedule_anchor=to_timestamp(row.schedule_anchor),
        last_scheduled_time=to_timestamp(last_scheduled),
        custom_calendar=definition_to_proto(definition) if definition else None,
    )


def snapshot_event(
    row: TaskRow, last_scheduled: datetime | None
) -> internal_pb2.WatchSchedulerEventsResponse:
    """A task_upsert of the snapshot's pages: the task as scheduling needs it (with its custom
    calendar's definition)."""
    definition = DEFINITIONS.get(row.calendar) if row.calendar else None
    return internal_pb2.WatchSchedulerEventsResponse(
        type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT,
        task=scheduling_task_to_proto(row),
        schedule_anchor=to_timestamp(row.schedule_anchor),
        last_scheduled_time=to_timestamp(last_scheduled),
        custom_calendar=definition_to_proto(definition) if definition else None,
    )


def definition_to_proto(definition: CalendarDefinition) -> task_pb2.Calendar:
    return task_pb2.Calendar(
        name=definition.name,
        source="custom",
        base=definition.base,
        added_dates=sorted(day.isoformat() for day in definition.added),
        removed_dates=sorted(day.isoformat() for day in definition.removed),
        data_end=definition.data_end.isoformat() if definition.data_end else "",
    )


def calendar_row_to_proto(row: CalendarRow) -> task_pb2.Calendar:
    """A custom calendar as listed: its definition, description and the data range it covers."""
    definition = definition_of(row)
    message = definition_to_proto(definition)
    message.description = row.description or ""
    # Its sessions as tasks use them (with its base's synced data, when there is some).
    calendar = DEFINITIONS.calendar(DEFINITIONS.get(row.name) or definition)
    message.data_start = calendar.covered_from.isoformat()
    message.data_end = calendar.covered_until.isoformat()
    return message


def execution_to_proto(
    row: ExecutionRow, task_name: str = "", live_result: struct_pb2.Struct | None = None
) -> task_pb2.Execution:
    """`live_result`: the newest progress of a running run, newer than the row's (the ProgressBuffer)."""
    return task_pb2.Execution(
        id=row.id,
        task_id=row.task_id,
        parent_execution_id=row.parent_execution_id or 0,
        status=row.status,
        trigger=row.trigger,
        scheduled_time=to_timestamp(row.scheduled_time),
        start_time=to_timestamp(row.start_time),
        end_time=to_timestamp(row.end_time),
        duration_seconds=row.duration_seconds or 0.0,
        result=live_result if live_result is not None else dict_to_struct(row.result),
        error_message=row.error_message or "",
        retry_count=row.retry_count,
        executor=row.executor or "",
        created_at=to_timestamp(row.created_at),
        task_name=task_name,
        logical_date=row.logical_date or "",
        params=dict_to_struct(row.params or {}),
        rerun_of_execution_id=row.rerun_of_id or 0,
        triggered_by=row.triggered_by or "",
        terminated_by=row.terminated_by or "",
        note=row.note or "",
        trace_id=trace_id_of(row.traceparent),
        traceparent=row.traceparent or "",
    )


def backfill_to_proto(row: BackfillRow, progress: Progress) -> backfill_service_pb2.Backfill:
    return backfill_service_pb2.Backfill(
        id=row.id,
        task_id=row.task_id,
        start=row.start_date,
        end=row.end_date,
        max_parallel=row.max_parallel,
        rerun_succeeded=row.rerun_succeeded,
        params=dict_to_struct(row.params),
        status=row.status,
        total=len(row.planned),
        skipped=row.skipped,
        created=progress.created,
        running=progress.running,
        succeeded=progress.succeeded,
        failed=progress.failed,
        created_at=to_timestamp(row.created_at),
        finished_at=to_timestamp(row.finished_at),
        created_by=row.created_by,
    )


def stats_to_proto(stats: StatsRow) -> task_pb2.Stats:
    return task_pb2.Stats(
        total_executions=stats.total,
        success_count=stats.success,
        failed_count=stats.failed,
        running_count=stats.running,
        pending_count=stats.pending,
        terminated_count=stats.terminated,
        skipped_count=stats.skipped,
        success_rate=stats.success_rate,
        avg_duration_seconds=stats.avg_duration,
        latest_execution_time=to_timestamp(stats.latest),
    )


def executor_state_dict(state: status_service_pb2.ExecutorState) -> dict[str, Any]:
    """An executor as the leader reported it, as stored on the leadership row."""
    return {
        "address": state.address,
        "reachable": state.reachable,
        "capacity": state.capacity,
        "active_runs": state.active_runs,
        "draining": state.draining,
    }


def executor_state_proto(stored: dict[str, Any]) -> status_service_pb2.ExecutorState:
    return status_service_pb2.ExecutorState(
        address=str(stored.get("address", "")),
        reachable=bool(stored.get("reachable", False)),
        capacity=int(stored.get("capacity", 0)),
        active_runs=int(stored.get("active_runs", 0)),
        draining=bool(stored.get("draining", False)),
    )


def user_to_proto(row: UserRow, locked_until: datetime | None = None) -> task_pb2.User:
    return task_pb2.User(
        username=row.username,
        role=row.role,
        disabled=row.disabled,
        created_at=to_timestamp(row.created_at),
        locked_until=to_timestamp(locked_until),
    )


# ---- run recording (RegistryInternalService) ------------------------------------------------------


def new_run_of(request: internal_pb2.CreateExecutionRequest) -> NewRun:
    new = NewExecution(
        task_id=request.task_id,
        trigger=request.trigger,
        scheduled_time=from_timestamp(request.scheduled_time) if request.HasField("scheduled_time") else None,
        status=request.status or "pending",
        error_message=request.error_message,
        parent_execution_id=request.parent_execution_id,
        retry_count=request.retry_count,
        dedup_key=request.dedup_key,
        logical_date=request.logical_date,
        params=struct_to_dict(request.params),
        note=request.note,
        traceparent=request.traceparent,
    )
    return NewRun(new, executor=request.start_executor, lease_seconds=request.lease_seconds)


def end_of(request: internal_pb2.FinishExecutionRequest) -> End:
    return End(request.execution_id, request.attempt, request.status, request.result, request.error_message)


def report_of(request: internal_pb2.ReportProgressRequest) -> Report:
    return Report(
        request.execution_id, request.attempt, request.result if request.HasField("result") else None
    )


def run_update_of(update: internal_pb2.RunUpdate) -> Update | None:
    """A RecordRuns update; None when it is empty."""
    kind = update.WhichOneof("update")
    if kind == "create":
        return new_run_of(update.create)
    if kind == "start":
        return start_of(update.start)
    if kind == "finish":
        return end_of(update.finish)
    if kind == "progress":
        return report_of(update.progress)
    if kind == "log":
        return LogAppend(update.log.execution_id, update.log.data)
    return None


def offer_answer_of(answer: internal_pb2.OfferAnswer) -> OfferAnswer:
    return OfferAnswer(answer.offer_id, answer.executor, answer.lease_seconds)


def start_of(request: internal_pb2.StartExecutionRequest) -> Start:
    return Start(request.execution_id, request.executor, request.lease_seconds, request.adopt)


def started_to_proto(started: Started) -> internal_pb2.StartExecutionResponse:
    return internal_pb2.StartExecutionResponse(
        execution=started.execution, attempt=started.attempt, task=started.task
    )


def created_to_proto(created: Created) -> internal_pb2.CreateExecutionResponse:
    return internal_pb2.CreateExecutionResponse(
        execution=created.execution, created=created.created, attempt=created.attempt
    )


def ended_to_proto(ended: Ended) -> internal_pb2.FinishExecutionResponse:
    return internal_pb2.FinishExecutionResponse(execution=ended.execution, retry=ended.retry)


def outcome_to_proto(outcome: Outcome) -> internal_pb2.RunUpdateResult:
    if isinstance(outcome, Created):
        return internal_pb2.RunUpdateResult(create=created_to_proto(outcome))
    if isinstance(outcome, Started):
        return internal_pb2.RunUpdateResult(start=started_to_proto(outcome))
    if isinstance(outcome, Ended):
        return internal_pb2.RunUpdateResult(finish=ended_to_proto(outcome))
    if isinstance(outcome, Reported):
        progress = internal_pb2.ReportProgressResponse(terminate_requested=outcome.terminate_requested)
        return internal_pb2.RunUpdateResult(progress=progress)
    if isinstance(outcome, Appended):
        return internal_pb2.RunUpdateResult(
            log=internal_pb2.AppendExecutionLogResponse(end_offset=outcome.end_offset)
        )
    if isinstance(outcome, Declined):
        return internal_pb2.RunUpdateResult()
    return internal_pb2.RunUpdateResult(
        code=outcome.code.value[0], message=outcome.message, reason=outcome.reason
    )


def batch_answer_to_proto(
    batch_id: int, answer: Sequence[Outcome] | DomainError
) -> internal_pb2.RecordRunStreamResponse:
    """A RecordRunStream batch's answer: its outcomes, or the error it failed with as a whole."""
    if isinstance(answer, DomainError):
        return internal_pb2.RecordRunStreamResponse(
            batch_id=batch_id, code=answer.code.value[0], message=answer.message, reason=answer.reason
        )
    return internal_pb2.RecordRunStreamResponse(
        batch_id=batch_id, results=[outcome_to_proto(outcome) for outcome in answer]
    )
