"""Proto <-> domain conversion, the only place that knows the executor's wire format."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

from services.executor.models import RunEvent, RunSpec
from zquant.scheduler.v1 import executor_service_pb2

# Integers round-trip through Struct (JSON numbers are doubles) only up to 2**53.
_MAX_EXACT_INT = 2**53


def _integral(value: Any) -> Any:
    """Struct numbers are doubles; give integral ones back as ints so `"steps": 5` stays 5."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= _MAX_EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    data: dict[str, Any] = _integral(json_format.MessageToDict(struct))
    return data


def dict_to_struct(data: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


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
