"""Proto <-> domain conversion, the only place that knows the executor's wire format."""

from __future__ import annotations

from datetime import date

from services.common.run_params import RunDates, run_config
from services.common.structs import dict_to_struct, struct_to_dict
from services.executor.models import RunEvent, RunEventKind, RunSpec
from zquant.scheduler.v1 import executor_service_pb2


# Integers round-trip through Struct (JSON numbers are doubles) only up to 2**53.
def run_spec_from_proto(request: executor_service_pb2.RunRequest) -> RunSpec:
    task = request.task
    # A scheduler from before logical dates sends none: the run is for today.
    day = date.fromisoformat(request.logical_date) if request.logical_date else date.today()
    # A scheduler from before prev_trading_day sends none: the previous weekday.
    previous = date.fromisoformat(request.prev_trading_day) if request.prev_trading_day else None
    dates = RunDates.of(day, previous)
    return RunSpec(
        execution_id=request.execution_id,
        attempt=request.attempt,
        task_id=task.id,
        task_name=task.name,
        task_type=task.task_type,
        config=run_config(struct_to_dict(task.config), struct_to_dict(request.params), dates),
        timeout_seconds=task.timeout_seconds,
        logical_date=day,
        prev_trading_day=dates.prev_trading_day,
    )


_EVENT_TYPES = {
    RunEventKind.ACCEPTED: executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED,
    RunEventKind.PROGRESS: executor_service_pb2.RunResponse.EVENT_TYPE_PROGRESS,
    RunEventKind.HEARTBEAT: executor_service_pb2.RunResponse.EVENT_TYPE_HEARTBEAT,
    RunEventKind.FINISHED: executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED,
    RunEventKind.LOG: executor_service_pb2.RunResponse.EVENT_TYPE_LOG,
}


def event_to_proto(event: RunEvent) -> executor_service_pb2.RunResponse:
    response = executor_service_pb2.RunResponse(
        type=_EVENT_TYPES[event.kind], status=event.status, error_message=event.error_message, log=event.log
    )
    if event.result is not None:
        response.result.CopyFrom(dict_to_struct(event.result))
    return response


def events_to_proto(events: list[RunEvent]) -> executor_service_pb2.RunResponse:
    """Events ready together as one message: the first in its own fields, the rest in `then`."""
    response = event_to_proto(events[0])
    response.then.extend(event_to_proto(event) for event in events[1:])
    return response


def acknowledged_runs(request: executor_service_pb2.AcknowledgeRequest) -> list[tuple[int, int]]:
    """(execution_id, attempt) of each run acknowledged: the batch, plus the single form."""
    runs = [(run.execution_id, run.attempt) for run in request.runs]
    if request.execution_id:
        runs.append((request.execution_id, request.attempt))
    return runs
