from google.protobuf import struct_pb2 as _struct_pb2
from zquant.scheduler.v1 import task_pb2 as _task_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunRequest(_message.Message):
    __slots__ = ("execution_id", "attempt", "task")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    attempt: int
    task: _task_pb2.Task
    def __init__(self, execution_id: _Optional[int] = ..., attempt: _Optional[int] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("event_type", "result", "status", "error_message")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    result: _struct_pb2.Struct
    status: str
    error_message: str
    def __init__(self, event_type: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("execution_id", "grace_seconds")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    execution_id: int
    grace_seconds: int
    def __init__(self, execution_id: _Optional[int] = ..., grace_seconds: _Optional[int] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...
