"""Conversion between rows / domain values and protobuf messages, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from google.protobuf import timestamp_pb2

from services.common.structs import dict_to_struct
from services.registry.models import ExecutionRow, TaskRow, UserRow
from services.registry.store.executions import StatsRow
from services.registry.store.tasks import LatestRun, next_run_time, schedule_status
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2


@overload
def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp: ...
@overload
def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None: ...


def to_timestamp(moment: datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(moment.astimezone(UTC))
    return message


def from_timestamp(message: timestamp_pb2.Timestamp) -> datetime:
    return message.ToDatetime(tzinfo=UTC)


def task_to_proto(row: TaskRow, now: datetime, latest: LatestRun | None = None) -> task_pb2.Task:
    next_run = next_run_time(row, now)
    return task_pb2.Task(
        id=row.id,
        name=row.name,
        task_type=row.task_type,
        cron_expression=row.cron_expression or "",
        interval_seconds=row.interval_seconds or 0,
        run_at=to_timestamp(row.run_at),
        timezone=row.timezone,
        enabled=row.enabled,
        paused=row.paused,
        description=row.description or "",
        config=dict_to_struct(row.config),
        max_retries=row.max_retries,
        retry_interval=row.retry_interval,
        timeout_seconds=row.timeout_seconds,
        concurrency_policy=row.concurrency_policy,
        misfire_policy=row.misfire_policy,
        misfire_grace_seconds=row.misfire_grace_seconds,
        created_at=to_timestamp(row.created_at),
        updated_at=to_timestamp(row.updated_at),
        created_by=row.created_by,
        updated_by=row.updated_by,
        next_run_time=to_timestamp(next_run),
        schedule_status=schedule_status(row, latest, next_run),
        latest_execution_time=to_timestamp(latest.time if latest else None),
        latest_execution_status=latest.status if latest else "",
    )


def task_event(
    row: TaskRow, now: datetime, last_scheduled: datetime | None = None
) -> internal_pb2.WatchSchedulerEventsResponse:
    """The scheduler feed's task_upsert for a task row."""
    return internal_pb2.WatchSchedulerEventsResponse(
        event_type="task_upsert",
        task=task_to_proto(row, now),
        schedule_anchor=to_timestamp(row.schedule_anchor),
        last_scheduled_time=to_timestamp(last_scheduled),
    )


def execution_to_proto(
    row: ExecutionRow, task_name: str = "", live_result: dict[str, Any] | None = None
) -> task_pb2.Execution:
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
        result=dict_to_struct(live_result if live_result is not None else row.result),
        error_message=row.error_message or "",
        retry_count=row.retry_count,
        executor=row.executor or "",
        created_at=to_timestamp(row.created_at),
        task_name=task_name,
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


def user_to_proto(row: UserRow) -> task_pb2.User:
    return task_pb2.User(
        username=row.username, role=row.role, disabled=row.disabled, created_at=to_timestamp(row.created_at)
    )
