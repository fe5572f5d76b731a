from google.protobuf import struct_pb2 as _struct_pb2
from zquant.scheduler.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("execution_id", "attempt", "task", "attach", "logical_date", "params", "prev_trading_day", "batch_events")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTACH_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_DATE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    PREV_TRADING_DAY_FIELD_NUMBER: _ClassVar[int]
    BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    task: _task_pb2.Task
    attach: bool
    logical_date: str
    params: _struct_pb2.Struct
    prev_trading_day: str
    batch_events: bool
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., attach: _Optional[bool] = ..., logical_date: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., prev_trading_day: _Optional[str] = ..., batch_events: _Optional[bool] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("type", "result", "status", "error_message", "log", "then")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[RunResponse.EventType]
        EVENT_TYPE_ACCEPTED: _ClassVar[RunResponse.EventType]
        EVENT_TYPE_PROGRESS: _ClassVar[RunResponse.EventType]
        EVENT_TYPE_HEARTBEAT: _ClassVar[RunResponse.EventType]
        EVENT_TYPE_FINISHED: _ClassVar[RunResponse.EventType]
        EVENT_TYPE_LOG: _ClassVar[RunResponse.EventType]
    EVENT_TYPE_UNSPECIFIED: RunResponse.EventType
    EVENT_TYPE_ACCEPTED: RunResponse.EventType
    EVENT_TYPE_PROGRESS: RunResponse.EventType
    EVENT_TYPE_HEARTBEAT: RunResponse.EventType
    EVENT_TYPE_FINISHED: RunResponse.EventType
    EVENT_TYPE_LOG: RunResponse.EventType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    THEN_FIELD_NUMBER: _ClassVar[int]
    type: RunResponse.EventType
    result: _struct_pb2.Struct
    status: str
    error_message: str
    log: bytes
    then: _containers.RepeatedCompositeFieldContainer[RunResponse]
    def __init__(self, type: _Optional[_Union[RunResponse.EventType, str]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[str] = ..., error_message: _Optional[str] = ..., log: _Optional[bytes] = ..., then: _Optional[_Iterable[_Union[RunResponse, _Mapping]]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("execution_id", "grace_seconds", "attempt")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    grace_seconds: int
    attempt: int
    def __init__(self, execution_id: _Optional[int] = ..., grace_seconds: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("execution_id", "attempt", "runs")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    runs: _containers.RepeatedCompositeFieldContainer[RunAttempt]
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ..., runs: _Optional[_Iterable[_Union[RunAttempt, _Mapping]]] = ...) -> None: ...

class RunAttempt(_message.Message):
    __slots__ = ("execution_id", "attempt")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class GetLoadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetLoadResponse(_message.Message):
    __slots__ = ("capacity", "active_runs", "draining")
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    capacity: int
    active_runs: int
    draining: bool
    def __init__(self, capacity: _Optional[int] = ..., active_runs: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...

class AcknowledgeResponse(_message.Message):
    __slots__ = ("forgotten", "forgotten_count")
    FORGOTTEN_FIELD_NUMBER: _ClassVar[int]
    FORGOTTEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    forgotten: bool
    forgotten_count: int
    def __init__(self, forgotten: _Optional[bool] = ..., forgotten_count: _Optional[int] = ...) -> None: ...
