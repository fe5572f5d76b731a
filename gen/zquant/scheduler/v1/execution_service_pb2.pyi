from google.api import annotations_pb2 as _annotations_pb2
from zquant.scheduler.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListExecutionsRequest(_message.Message):
    __slots__ = ("task_id", "skip", "limit", "status", "start_time_from", "start_time_to", "parent_execution_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SKIP_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FROM_FIELD_NUMBER: _ClassVar[int]
    START_TIME_TO_FIELD_NUMBER: _ClassVar[int]
    PARENT_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    skip: int
    limit: int
    status: str
    start_time_from: str
    start_time_to: str
    parent_execution_id: int
    def __init__(self, task_id: _Optional[int] = ..., skip: _Optional[int] = ..., limit: _Optional[int] = ..., status: _Optional[str] = ..., start_time_from: _Optional[str] = ..., start_time_to: _Optional[str] = ..., parent_execution_id: _Optional[int] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "total")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[_task_pb2.Execution]
    total: int
    def __init__(self, executions: _Optional[_Iterable[_Union[_task_pb2.Execution, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("task_id", "execution_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    execution_id: int
    def __init__(self, task_id: _Optional[int] = ..., execution_id: _Optional[int] = ...) -> None: ...

class WatchExecutionRequest(_message.Message):
    __slots__ = ("task_id", "execution_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: int
    execution_id: int
    def __init__(self, task_id: _Optional[int] = ..., execution_id: _Optional[int] = ...) -> None: ...

class WatchExecutionResponse(_message.Message):
    __slots__ = ("event_type", "execution")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    execution: _task_pb2.Execution
    def __init__(self, event_type: _Optional[str] = ..., execution: _Optional[_Union[_task_pb2.Execution, _Mapping]] = ...) -> None: ...

class TerminateExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    def __init__(self, execution_id: _Optional[int] = ...) -> None: ...
