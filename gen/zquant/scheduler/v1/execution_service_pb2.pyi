from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from zquant.scheduler.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RerunExecutionRequest(_message.Message):
    __slots__ = ("execution_id", "rerun_from", "node_task_id")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    RERUN_FROM_FIELD_NUMBER: _ClassVar[int]
    NODE_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    rerun_from: str
    node_task_id: int
    def __init__(self, execution_id: _Optional[int] = ..., rerun_from: _Optional[str] = ..., node_task_id: _Optional[int] = ...) -> None: ...

class RerunExecutionJsonRequest(_message.Message):
    __slots__ = ("execution_id", "body")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    body: _httpbody_pb2.HttpBody
    def __init__(self, execution_id: _Optional[int] = ..., body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

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

class TerminateExecutionJsonRequest(_message.Message):
    __slots__ = ("execution_id", "body")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    body: _httpbody_pb2.HttpBody
    def __init__(self, execution_id: _Optional[int] = ..., body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class GetExecutionLogRequest(_message.Message):
    __slots__ = ("execution_id", "offset", "limit")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    offset: int
    limit: int
    def __init__(self, execution_id: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetExecutionLogResponse(_message.Message):
    __slots__ = ("text", "next_offset", "size", "complete")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    text: str
    next_offset: int
    size: int
    complete: bool
    def __init__(self, text: _Optional[str] = ..., next_offset: _Optional[int] = ..., size: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class StreamExecutionLogRequest(_message.Message):
    __slots__ = ("execution_id", "offset")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    offset: int
    def __init__(self, execution_id: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class StreamExecutionLogResponse(_message.Message):
    __slots__ = ("event_type", "text", "offset", "next_offset", "status")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    text: str
    offset: int
    next_offset: int
    status: str
    def __init__(self, event_type: _Optional[str] = ..., text: _Optional[str] = ..., offset: _Optional[int] = ..., next_offset: _Optional[int] = ..., status: _Optional[str] = ...) -> None: ...
