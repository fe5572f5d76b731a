"""Proto <-> domain conversion, the only place that knows the executor's wire format."""

from __future__ import annotations

from services.common.structs import dict_to_struct, struct_to_dict
from services.executor.models import RunEvent, RunSpec
from zquant.scheduler.v1 import executor_service_pb2


# Integers round-trip through Struct (JSON numbers are doubles) only up to 2**53.
def run_spec_from_proto(request: executor_service_pb2.RunRequest) -> RunSpec:
    task = request.task
    return RunSpec(
        execution_id=request.execution_id,
        attempt=request.attempt,
        task_id=task.id,
        task_name=task.name,
        task_type=task.task_type,
        config=struct_to_dict(task.config),
        timeout_seconds=task.timeout_seconds,
    )


def event_to_proto(event: RunEvent) -> executor_service_pb2.RunResponse:
    response = executor_service_pb2.RunResponse(
        event_type=event.event_type, status=event.status, error_message=event.error_message
    )
    if event.result is not None:
        response.result.CopyFrom(dict_to_struct(event.result))
    return response
