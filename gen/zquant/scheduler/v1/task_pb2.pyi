import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(_message.Message):
    __slots__ = ("id", "name", "task_type", "cron_expression", "interval_seconds", "run_at", "timezone", "enabled", "paused", "description", "config", "max_retries", "retry_interval", "timeout_seconds", "concurrency_policy", "misfire_policy", "misfire_grace_seconds", "created_at", "updated_at", "created_by", "updated_by", "next_run_time", "schedule_status", "latest_execution_time", "latest_execution_status", "dependencies", "node_name", "calendar", "calendar_shift", "calendar_holidays", "tags", "retention_days")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    CRON_EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_POLICY_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_POLICY_FIELD_NUMBER: _ClassVar[int]
    MISFIRE_GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_STATUS_FIELD_NUMBER: _ClassVar[int]
    LATEST_EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    LATEST_EXECUTION_STATUS_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_SHIFT_FIELD_NUMBER: _ClassVar[int]
    CALENDAR_HOLIDAYS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    task_type: str
    cron_expression: str
    interval_seconds: int
    run_at: _timestamp_pb2.Timestamp
    timezone: str
    enabled: bool
    paused: bool
    description: str
    config: _struct_pb2.Struct
    max_retries: int
    retry_interval: int
    timeout_seconds: int
    concurrency_policy: str
    misfire_policy: str
    misfire_grace_seconds: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    created_by: str
    updated_by: str
    next_run_time: _timestamp_pb2.Timestamp
    schedule_status: str
    latest_execution_time: _timestamp_pb2.Timestamp
    latest_execution_status: str
    dependencies: _containers.RepeatedScalarFieldContainer[int]
    node_name: str
    calendar: str
    calendar_shift: int
    calendar_holidays: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    retention_days: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., task_type: _Optional[str] = ..., cron_expression: _Optional[str] = ..., interval_seconds: _Optional[int] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timezone: _Optional[str] = ..., enabled: _Optional[bool] = ..., paused: _Optional[bool] = ..., description: _Optional[str] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., max_retries: _Optional[int] = ..., retry_interval: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., concurrency_policy: _Optional[str] = ..., misfire_policy: _Optional[str] = ..., misfire_grace_seconds: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., updated_by: _Optional[str] = ..., next_run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., schedule_status: _Optional[str] = ..., latest_execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest_execution_status: _Optional[str] = ..., dependencies: _Optional[_Iterable[int]] = ..., node_name: _Optional[str] = ..., calendar: _Optional[str] = ..., calendar_shift: _Optional[int] = ..., calendar_holidays: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., retention_days: _Optional[int] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("id", "task_id", "parent_execution_id", "status", "trigger", "scheduled_time", "start_time", "end_time", "duration_seconds", "result", "error_message", "retry_count", "executor", "created_at", "task_name", "logical_date", "params", "rerun_of_execution_id", "triggered_by", "terminated_by", "note", "trace_id", "traceparent")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_DATE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    RERUN_OF_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGERED_BY_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    task_id: int
    parent_execution_id: int
    status: str
    trigger: str
    scheduled_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration_seconds: float
    result: _struct_pb2.Struct
    error_message: str
    retry_count: int
    executor: str
    created_at: _timestamp_pb2.Timestamp
    task_name: str
    logical_date: str
    params: _struct_pb2.Struct
    rerun_of_execution_id: int
    triggered_by: str
    terminated_by: str
    note: str
    trace_id: str
    traceparent: str
    def __init__(self, id: _Optional[int] = ..., task_id: _Optional[int] = ..., parent_execution_id: _Optional[int] = ..., status: _Optional[str] = ..., trigger: _Optional[str] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_seconds: _Optional[float] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error_message: _Optional[str] = ..., retry_count: _Optional[int] = ..., executor: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_name: _Optional[str] = ..., logical_date: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., rerun_of_execution_id: _Optional[int] = ..., triggered_by: _Optional[str] = ..., terminated_by: _Optional[str] = ..., note: _Optional[str] = ..., trace_id: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("total_executions", "success_count", "failed_count", "running_count", "pending_count", "terminated_count", "skipped_count", "success_rate", "avg_duration_seconds", "latest_execution_time")
    TOTAL_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RUNNING_COUNT_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    AVG_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATEST_EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    total_executions: int
    success_count: int
    failed_count: int
    running_count: int
    pending_count: int
    terminated_count: int
    skipped_count: int
    success_rate: float
    avg_duration_seconds: float
    latest_execution_time: _timestamp_pb2.Timestamp
    def __init__(self, total_executions: _Optional[int] = ..., success_count: _Optional[int] = ..., failed_count: _Optional[int] = ..., running_count: _Optional[int] = ..., pending_count: _Optional[int] = ..., terminated_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., success_rate: _Optional[float] = ..., avg_duration_seconds: _Optional[float] = ..., latest_execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("username", "role", "disabled", "created_at", "locked_until")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCKED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    username: str
    role: str
    disabled: bool
    created_at: _timestamp_pb2.Timestamp
    locked_until: _timestamp_pb2.Timestamp
    def __init__(self, username: _Optional[str] = ..., role: _Optional[str] = ..., disabled: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., locked_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Calendar(_message.Message):
    __slots__ = ("name", "source", "data_start", "data_end", "base", "added_dates", "removed_dates", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DATA_START_FIELD_NUMBER: _ClassVar[int]
    DATA_END_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    ADDED_DATES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_DATES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    data_start: str
    data_end: str
    base: str
    added_dates: _containers.RepeatedScalarFieldContainer[str]
    removed_dates: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., data_start: _Optional[str] = ..., data_end: _Optional[str] = ..., base: _Optional[str] = ..., added_dates: _Optional[_Iterable[str]] = ..., removed_dates: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...
